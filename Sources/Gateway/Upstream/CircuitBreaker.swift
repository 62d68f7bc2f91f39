import Foundation
import NIOConcurrencyHelpers

/// Stops sending to a Triton that refuses connections, and lets one probe
/// through after a pause so that a Triton that came back is noticed.
public final class CircuitBreaker: Sendable {
    public enum Permit: Sendable, Equatable {
        case allowed
        /// This call is the half-open probe; its outcome decides the state.
        case probe
        case rejected(retryAfterSeconds: Int)
    }

    enum State {
        case closed(consecutiveFailures: Int)
        case open(until: Date)
        case halfOpen
    }

    private let state = NIOLockedValueBox(State.closed(consecutiveFailures: 0))
    let failureThreshold: Int
    let openSeconds: Double

    public init(failureThreshold: Int, openSeconds: Double) {
        self.failureThreshold = failureThreshold
        self.openSeconds = openSeconds
    }

    public func permit(now: Date = Date()) -> Permit {
        state.withLockedValue { state in
            switch state {
            case .closed: return .allowed
            case .open(let until):
                if now >= until {
                    state = .halfOpen
                    return .probe
                }
                return .rejected(retryAfterSeconds: Int(until.timeIntervalSince(now).rounded(.up)))
            case .halfOpen:
                return .rejected(retryAfterSeconds: 1)
            }
        }
    }

    /// Triton answered (any HTTP status): it is reachable.
    public func recordSuccess() {
        state.withLockedValue { $0 = .closed(consecutiveFailures: 0) }
    }

    /// Triton could not be reached.
    public func recordFailure(now: Date = Date()) {
        state.withLockedValue { state in
            switch state {
            case .closed(let failures):
                state = failures + 1 >= failureThreshold ? .open(until: now.addingTimeInterval(openSeconds)) : .closed(consecutiveFailures: failures + 1)
            case .halfOpen, .open:
                state = .open(until: now.addingTimeInterval(openSeconds))
            }
        }
    }

    /// A probe that ended without telling us anything (cancelled): let another try.
    public func releaseProbe(now: Date = Date()) {
        state.withLockedValue { state in
            if case .halfOpen = state { state = .open(until: now) }
        }
    }

    public var isOpen: Bool {
        state.withLockedValue { if case .closed = $0 { return false } else { return true } }
    }
}

/// Caps upstream calls in flight; a call that finds no slot is refused at once.
public final class ConcurrencyLimiter: Sendable {
    private let inFlight = NIOLockedValueBox(0)
    public let limit: Int
    public init(limit: Int) { self.limit = limit }

    public func tryAcquire() -> Bool {
        inFlight.withLockedValue { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    public func release() {
        inFlight.withLockedValue { $0 -= 1 }
    }

    public var current: Int { inFlight.withLockedValue { $0 } }
}

/// Retries are allowed as a fraction of recent requests plus a small floor,
/// so a down Triton is not hammered by retries (a token bucket fed by requests).
public final class RetryBudget: Sendable {
    struct Bucket {
        var tokens: Double
        var updated: Date
    }
    private let bucket: NIOLockedValueBox<Bucket>
    let ratio: Double
    let minPerSecond: Double
    let cap: Double

    public init(ratio: Double, minPerSecond: Double, now: Date = Date()) {
        self.ratio = ratio
        self.minPerSecond = minPerSecond
        self.cap = max(10, minPerSecond * 10)
        self.bucket = NIOLockedValueBox(Bucket(tokens: minPerSecond, updated: now))
    }

    private func refill(_ b: inout Bucket, now: Date) {
        b.tokens = min(cap, b.tokens + max(0, now.timeIntervalSince(b.updated)) * minPerSecond)
        b.updated = now
    }

    /// Every first try deposits `ratio` of a retry.
    public func deposit(now: Date = Date()) {
        bucket.withLockedValue { b in
            refill(&b, now: now)
            b.tokens = min(cap, b.tokens + ratio)
        }
    }

    public func tryWithdraw(now: Date = Date()) -> Bool {
        bucket.withLockedValue { b in
            refill(&b, now: now)
            guard b.tokens >= 1 else { return false }
            b.tokens -= 1
            return true
        }
    }
}
