/// The answer of `RateLimiter.acquire`.
public enum RateDecision: Sendable, Equatable {
    /// Let the request through; `remaining` whole requests are left in the bucket.
    case allowed(remaining: Int)
    /// Answer 429 with `Retry-After: retryAfterSeconds` (always at least 1).
    case limited(retryAfterSeconds: Int)

    public var isAllowed: Bool {
        if case .allowed = self { return true }
        return false
    }
}

/// A token bucket per subject: `burst` requests at once, refilled at
/// `ratePerSecond`. Memory is bounded by `maxSubjects`: when a new subject
/// arrives at the cap, buckets that have refilled completely (idle subjects,
/// indistinguishable from new ones) are dropped first, then the longest idle.
public final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    public let ratePerSecond: Double
    public let burst: Int
    public let maxSubjects: Int
    private let buckets = Locked<[String: Bucket]>([:])

    /// Values out of range are clamped (rate to at least 0.001/s, burst and maxSubjects to at least 1);
    /// the configuration loader is expected to refuse them first.
    public init(ratePerSecond: Double, burst: Int, maxSubjects: Int = 100_000) {
        self.ratePerSecond = ratePerSecond.isFinite ? max(ratePerSecond, 0.001) : 0.001
        self.burst = max(burst, 1)
        self.maxSubjects = max(maxSubjects, 1)
    }

    /// Takes one request from `subject`'s bucket at time `now`.
    public func acquire(subject: String, now: ContinuousClock.Instant = .now) -> RateDecision {
        buckets.withLock { buckets in
            var bucket: Bucket
            if let existing = buckets[subject] {
                bucket = existing
                refill(&bucket, now: now)
            } else {
                if buckets.count >= maxSubjects { evict(&buckets, now: now) }
                bucket = Bucket(tokens: Double(burst), updated: now)
            }
            let decision: RateDecision
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                decision = .allowed(remaining: Int(bucket.tokens))
            } else {
                decision = self.decision(for: bucket)
            }
            buckets[subject] = bucket
            return decision
        }
    }

    /// What `acquire` would answer for `subject` at `now`, without taking anything
    /// (and without tracking a subject it has not seen).
    public func peek(subject: String, now: ContinuousClock.Instant = .now) -> RateDecision {
        buckets.withLock { buckets in
            guard var bucket = buckets[subject] else { return .allowed(remaining: burst) }
            refill(&bucket, now: now)
            return decision(for: bucket)
        }
    }

    private func decision(for bucket: Bucket) -> RateDecision {
        if bucket.tokens >= 1 { return .allowed(remaining: Int(bucket.tokens)) }
        let wait = (1 - bucket.tokens) / ratePerSecond
        return .limited(retryAfterSeconds: max(1, Int(wait.rounded(.up))))
    }

    /// Number of subjects currently tracked.
    public var trackedSubjects: Int {
        buckets.withLock { $0.count }
    }

    private func refill(_ bucket: inout Bucket, now: ContinuousClock.Instant) {
        guard now > bucket.updated else { return }  // a clock that goes backwards adds nothing
        let elapsed = Self.seconds(now - bucket.updated)
        bucket.tokens = min(Double(burst), bucket.tokens + elapsed * ratePerSecond)
        bucket.updated = now
    }

    /// Makes room for at least an eighth of `maxSubjects`, so the whole table is walked
    /// at most once per that many new subjects (not once per new subject when only a few
    /// buckets had refilled): refilled buckets go first, then the longest idle.
    private func evict(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant) {
        let fullAfter = Double(burst) / ratePerSecond
        buckets = buckets.filter { _, bucket in
            let idle = now > bucket.updated ? Self.seconds(now - bucket.updated) : 0
            return bucket.tokens + idle * ratePerSecond < Double(burst) && idle < fullAfter
        }
        let keep = maxSubjects - max(1, maxSubjects / 8)
        guard buckets.count > keep else { return }
        let oldest = buckets.sorted { $0.value.updated < $1.value.updated }.prefix(buckets.count - keep)
        for (subject, _) in oldest { buckets.removeValue(forKey: subject) }
    }

    private static func seconds(_ duration: Duration) -> Double {
        let components = duration.components
        return Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
