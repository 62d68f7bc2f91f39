import Testing

@testable import Gateway

@Suite("Auth: per-subject rate limiter")
struct AuthRateLimiterTests {
    let start = ContinuousClock.now

    func at(_ seconds: Double) -> ContinuousClock.Instant {
        start.advanced(by: .milliseconds(Int64((seconds * 1000).rounded())))
    }

    @Test("a subject gets its burst, then 429 with Retry-After, then refills at the rate")
    func burstThenRefill() {
        let limiter = RateLimiter(ratePerSecond: 2, burst: 3)
        #expect(limiter.acquire(subject: "alice", now: at(0)) == .allowed(remaining: 2))
        #expect(limiter.acquire(subject: "alice", now: at(0)) == .allowed(remaining: 1))
        #expect(limiter.acquire(subject: "alice", now: at(0)) == .allowed(remaining: 0))
        #expect(limiter.acquire(subject: "alice", now: at(0)) == .limited(retryAfterSeconds: 1))
        // Half a second at 2/s refills one request.
        #expect(limiter.acquire(subject: "alice", now: at(0.5)).isAllowed)
        #expect(!limiter.acquire(subject: "alice", now: at(0.5)).isAllowed)
        // Long idle refills only up to the burst.
        #expect(limiter.acquire(subject: "alice", now: at(100)) == .allowed(remaining: 2))
    }

    @Test("Retry-After is the whole seconds until one request is available, at least 1")
    func retryAfter() {
        let slow = RateLimiter(ratePerSecond: 0.1, burst: 1)
        #expect(slow.acquire(subject: "s", now: at(0)).isAllowed)
        #expect(slow.acquire(subject: "s", now: at(0)) == .limited(retryAfterSeconds: 10))
        #expect(slow.acquire(subject: "s", now: at(7.5)) == .limited(retryAfterSeconds: 3))
        #expect(slow.acquire(subject: "s", now: at(10)).isAllowed)

        let fast = RateLimiter(ratePerSecond: 1000, burst: 1)
        #expect(fast.acquire(subject: "f", now: at(0)).isAllowed)
        #expect(fast.acquire(subject: "f", now: at(0)) == .limited(retryAfterSeconds: 1))
    }

    @Test("subjects have separate buckets")
    func separateSubjects() {
        let limiter = RateLimiter(ratePerSecond: 1, burst: 1)
        #expect(limiter.acquire(subject: "a", now: at(0)).isAllowed)
        #expect(!limiter.acquire(subject: "a", now: at(0)).isAllowed)
        #expect(limiter.acquire(subject: "b", now: at(0)).isAllowed)
    }

    @Test("a clock that goes backwards grants nothing extra")
    func backwardsClock() {
        let limiter = RateLimiter(ratePerSecond: 1, burst: 1)
        #expect(limiter.acquire(subject: "a", now: at(10)).isAllowed)
        #expect(!limiter.acquire(subject: "a", now: at(5)).isAllowed)
        #expect(!limiter.acquire(subject: "a", now: at(10)).isAllowed)
        #expect(limiter.acquire(subject: "a", now: at(11)).isAllowed)
    }

    @Test("memory stays bounded; idle subjects are evicted before busy ones")
    func boundedMemory() {
        let limiter = RateLimiter(ratePerSecond: 1, burst: 2, maxSubjects: 100)
        // A busy subject that has used up its bucket.
        #expect(limiter.acquire(subject: "busy", now: at(0)).isAllowed)
        #expect(limiter.acquire(subject: "busy", now: at(0)).isAllowed)
        for index in 0..<99 { _ = limiter.acquire(subject: "idle-\(index)", now: at(0)) }
        #expect(limiter.trackedSubjects == 100)
        // Later, the idle buckets have refilled completely; "busy" was used again just now.
        #expect(!limiter.acquire(subject: "busy", now: at(0.5)).isAllowed)
        for index in 0..<1000 { _ = limiter.acquire(subject: "new-\(index)", now: at(5)) }
        #expect(limiter.trackedSubjects <= 100)
        // A flood of new subjects at one instant (no idle buckets) is bounded too.
        for index in 0..<1000 { _ = limiter.acquire(subject: "flood-\(index)", now: at(5)) }
        #expect(limiter.trackedSubjects <= 100)
    }

    @Test("a busy subject keeps its drained bucket when idle ones are evicted")
    func busyStateSurvivesEviction() {
        let limiter = RateLimiter(ratePerSecond: 0.01, burst: 2, maxSubjects: 10)
        #expect(limiter.acquire(subject: "busy", now: at(0)).isAllowed)
        #expect(limiter.acquire(subject: "busy", now: at(0)).isAllowed)
        for index in 0..<9 { _ = limiter.acquire(subject: "old-\(index)", now: at(0)) }
        // 100 s later (0.01/s) the old buckets are full again; "busy" has earned one request and spends it.
        #expect(limiter.acquire(subject: "busy", now: at(100)).isAllowed)
        _ = limiter.acquire(subject: "newcomer", now: at(100))
        #expect(limiter.trackedSubjects == 2)
        // Had "busy" been evicted it would start over with a full bucket.
        #expect(limiter.acquire(subject: "busy", now: at(100)) == .limited(retryAfterSeconds: 100))
    }

    @Test("at the cap, eviction frees an eighth at once (longest idle first), so new subjects do not each walk the table")
    func evictionMakesRoomInBulk() {
        let limiter = RateLimiter(ratePerSecond: 0.001, burst: 1, maxSubjects: 80)
        // 80 subjects, each drained (busy), the i-th last seen at i seconds.
        for index in 0..<80 { #expect(limiter.acquire(subject: "s\(index)", now: at(Double(index))).isAllowed) }
        #expect(limiter.trackedSubjects == 80)
        _ = limiter.acquire(subject: "new-0", now: at(100))
        #expect(limiter.trackedSubjects == 71, "10 dropped for the newcomer and the next nine")
        for index in 1..<10 { _ = limiter.acquire(subject: "new-\(index)", now: at(100)) }
        #expect(limiter.trackedSubjects == 80)
        // The ten longest idle went (they start again with a full bucket); the rest keep their drained bucket.
        #expect(limiter.acquire(subject: "s9", now: at(100)).isAllowed)
        #expect(!limiter.acquire(subject: "s79", now: at(100)).isAllowed)
    }

    @Test("concurrent callers never get more than the burst")
    func concurrency() async {
        let limiter = RateLimiter(ratePerSecond: 0.001, burst: 50)
        let now = at(0)
        let allowed = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<400 {
                group.addTask { limiter.acquire(subject: "shared", now: now).isAllowed ? 1 : 0 }
            }
            return await group.reduce(0, +)
        }
        #expect(allowed == 50)
    }
}
