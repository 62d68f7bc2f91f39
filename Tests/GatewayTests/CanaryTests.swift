import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import Gateway

/// A clock tests move by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var now = Date(timeIntervalSince1970: 1_800_000_000)

    var read: TrafficClock { { [self] in self.current } }

    var current: Date {
        lock.lock()
        defer { lock.unlock() }
        return now
    }

    func advance(_ seconds: Double) {
        lock.lock()
        now = now.addingTimeInterval(seconds)
        lock.unlock()
    }
}

func canaryYAML(candidateWeight: Int = 10, steps: String? = nil, failureLimit: Int = 2) -> String {
    let baselineWeight = 100 - candidateWeight
    return """
        routes:
          moderation:
            variants:
              - {name: baseline, model: moderation, version: 1, weight: \(baselineWeight)}
              - {name: candidate, model: moderation, version: 2, weight: \(candidateWeight)}
            canary:
              candidate: candidate
              baseline: baseline
              window_seconds: 10
              min_requests: 20
              max_error_rate: 0.05
              max_p95_latency_ratio: 1.5
              failure_limit: \(failureLimit)
        \(steps.map { "      promotion_steps: \($0)" } ?? "")
        """
}

struct CanaryFixture {
    let clock = ManualClock()
    let events = CollectedAdminEvents()
    let stateFile: URL
    let router: TrafficRouter

    init(_ yaml: String, stateFile: URL? = nil, instance: String = "replica-a", storage: CanaryStateStorage = .fileSystem) throws {
        self.stateFile = try stateFile ?? trafficTestDirectory("canary").appendingPathComponent("canary-state.json")
        router = TrafficRouter.make(
            configuration: try parseTraffic(yaml),
            canarySettings: .init(stateFile: self.stateFile, instanceID: instance, clock: clock.read, storage: storage),
            logger: Logger(label: "test"), adminEvents: events
        )
    }

    /// Feeds one window of traffic, then closes it.
    func window(candidate: Int, candidateErrors: Int = 0, candidateLatency: Double = 0.020,
                baseline: Int = 200, baselineLatency: Double = 0.020) async {
        let c = RouteDecision(route: "moderation", variant: "candidate", model: "moderation", version: "2", revision: "r")
        let b = RouteDecision(route: "moderation", variant: "baseline", model: "moderation", version: "1", revision: "r")
        for index in 0..<candidate {
            router.observe(c, outcome: UpstreamOutcome(isServerError: index < candidateErrors, latencySeconds: candidateLatency))
        }
        for _ in 0..<baseline {
            router.observe(b, outcome: UpstreamOutcome(isServerError: false, latencySeconds: baselineLatency))
        }
        clock.advance(10)
        await router.canary.tick()
    }

    var candidateWeight: Double? {
        router.status().routes.first?.variants.first { $0.name == "candidate" }?.weightInForce
    }

    var phase: CanaryPhase? { router.canary.status(route: "moderation")?.phase }

    /// Share of 4 000 subjects routed to the candidate.
    func candidateShare() -> Double {
        var hits = 0
        for index in 0..<4_000
        where router.resolve(route: "moderation", stickyKey: "s\(index)", headers: [])?.variant == "candidate" {
            hits += 1
        }
        return Double(hits) / 4_000
    }
}

@Suite("Canary analysis")
struct CanaryTests {
    /// The state file lives on a volume shared by replicas; a read that waits on it (a stuck
    /// network volume) must not hold a thread of the cooperative pool, which serves every
    /// request: as many ticks as the pool has threads wait on the file, and other work must
    /// still run before the file is released.
    @Test("state-file I/O waits off the cooperative pool: other work runs while the volume stalls")
    func stateFileIOStaysOffTheCooperativePool() async throws {
        let stalled = NIOLockedValueBox(false)
        let release = DispatchSemaphore(value: 0)
        let stallingVolume = CanaryStateStorage(
            read: { url in
                if stalled.withLockedValue({ $0 }) { release.wait() }
                return CanaryStateStorage.fileSystem.read(url)
            },
            replace: CanaryStateStorage.fileSystem.replace)
        let f = try CanaryFixture(canaryYAML(), storage: stallingVolume)
        stalled.withLockedValue { $0 = true }
        let width = ProcessInfo.processInfo.activeProcessorCount
        let probeRan = NIOLockedValueBox(false)
        let releasedBeforeProbe = NIOLockedValueBox(false)
        // The watchdog is a plain thread: if the pool were blocked, nothing on it could run.
        Thread.detachNewThread {
            let deadline = Date().addingTimeInterval(30)
            while !probeRan.withLockedValue({ $0 }) && Date() < deadline { usleep(10_000) }
            releasedBeforeProbe.withLockedValue { $0 = !probeRan.withLockedValue { $0 } }
            stalled.withLockedValue { $0 = false }
            for _ in 0..<width { release.signal() }
        }
        async let ticks: Void = withTaskGroup(of: Void.self) { group in
            for _ in 0..<width { group.addTask { await f.router.canary.tick() } }
        }
        // The ticks now wait on the volume; this resumes, and the probe runs, only if they
        // do not hold the pool's threads.
        try await Task.sleep(for: .milliseconds(200))
        await Task.detached { probeRan.withLockedValue { $0 = true } }.value
        await ticks
        #expect(releasedBeforeProbe.withLockedValue { $0 } == false, "the pool ran nothing until the volume answered")
    }

    @Test("a candidate with too many server errors is rolled back at the failure limit, with an audit event")
    func failingCandidateRolledBack() async throws {
        let f = try CanaryFixture(canaryYAML(failureLimit: 2))
        #expect(f.candidateWeight == 10)
        await f.window(candidate: 40, candidateErrors: 8)  // 20 % errors
        #expect(f.phase == .observing)
        #expect(f.router.canary.status(route: "moderation")?.failedWindows == 1)
        #expect(f.events.kinds.isEmpty)
        await f.window(candidate: 40, candidateErrors: 8)
        #expect(f.phase == .rolledBack)
        #expect(f.candidateWeight == 0)
        #expect(f.router.status().routes.first?.variants.first?.weightInForce == 100)
        #expect(f.candidateShare() == 0)
        #expect(f.events.kinds == ["canary_rollback"])
        let details = try #require(f.events.details(of: "canary_rollback"))
        #expect(details["reasons"] == .array(["error_rate"]))
        #expect(details["failed_windows"] == .int(2))
        if case .array(let evidence)? = details["evidence"] { #expect(evidence.count == 2) } else { Issue.record("no evidence") }
        // Status keeps the evidence for the admin API.
        let status = try #require(f.router.canary.status(route: "moderation"))
        #expect(status.recentWindows.count == 2 && status.recentWindows.allSatisfy { $0.verdict == "fail" })
        #expect(status.recentWindows.last?.candidate.serverErrors == 8)
        // A rolled back candidate gets no more windows.
        await f.window(candidate: 0)
        #expect(f.events.kinds == ["canary_rollback"])
    }

    @Test("only the candidate's buckets move on rollback, all to the baseline")
    func rollbackMovesOnlyCandidateBuckets() async throws {
        let f = try CanaryFixture(canaryYAML(failureLimit: 1))
        let subjects = (0..<3_000).map { "u\($0)" }
        let before = subjects.map { f.router.resolve(route: "moderation", stickyKey: $0, headers: [])?.variant }
        await f.window(candidate: 30, candidateErrors: 30)
        #expect(f.phase == .rolledBack)
        for (index, subject) in subjects.enumerated() {
            let after = f.router.resolve(route: "moderation", stickyKey: subject, headers: [])?.variant
            #expect(after == "baseline")
            if before[index] == "baseline" { #expect(after == before[index]) }
        }
    }

    @Test("a slow candidate fails on p95 latency; a healthy one is never rolled back")
    func latencyAndHealthy() async throws {
        let slow = try CanaryFixture(canaryYAML(failureLimit: 2))
        await slow.window(candidate: 50, candidateLatency: 0.080, baselineLatency: 0.020)
        await slow.window(candidate: 50, candidateLatency: 0.080, baselineLatency: 0.020)
        #expect(slow.phase == .rolledBack)
        #expect(slow.events.details(of: "canary_rollback")?["reasons"] == .array(["p95_latency"]))

        let healthy = try CanaryFixture(canaryYAML(failureLimit: 1))
        for _ in 0..<10 {
            await healthy.window(candidate: 50, candidateErrors: 1, candidateLatency: 0.024, baselineLatency: 0.020)
        }
        #expect(healthy.phase == .observing)
        #expect(healthy.candidateWeight == 10)
        #expect(healthy.router.canary.status(route: "moderation")?.passedWindows == 10)
        #expect(healthy.events.kinds.isEmpty)
    }

    @Test("windows with fewer than the minimum candidate requests are not judged")
    func insufficientWindows() async throws {
        let f = try CanaryFixture(canaryYAML(failureLimit: 1))
        for _ in 0..<5 { await f.window(candidate: 19, candidateErrors: 19) }
        #expect(f.phase == .observing)
        #expect(f.router.canary.status(route: "moderation")?.recentWindows.allSatisfy { $0.verdict == "insufficient" } == true)
    }

    @Test("promotion steps: a healthy candidate steps up after each passing window, never past the file weight")
    func promotionSteps() async throws {
        let f = try CanaryFixture(canaryYAML(candidateWeight: 40, steps: "[5, 20, 60]"))
        #expect(f.phase == .promoting)
        #expect(f.candidateWeight == 5)
        #expect(abs(f.candidateShare() - 0.05) < 0.02)
        await f.window(candidate: 19)  // insufficient: no step
        #expect(f.candidateWeight == 5)
        await f.window(candidate: 30)
        #expect(f.candidateWeight == 20)
        #expect(abs(f.candidateShare() - 0.20) < 0.03)
        await f.window(candidate: 60)
        #expect(f.candidateWeight == 40)  // step 60 capped at the file's 40
        #expect(f.phase == .promoted)
        await f.window(candidate: 60)
        #expect(f.candidateWeight == 40)
        #expect(f.events.kinds == ["canary_promotion", "canary_promotion"])
        // A failing promoted candidate is still rolled back.
        await f.window(candidate: 60, candidateErrors: 30)
        await f.window(candidate: 60, candidateErrors: 30)
        #expect(f.phase == .rolledBack && f.candidateWeight == 0)
    }

    @Test("a rollback survives a restart and is cleared when the operator changes the route")
    func rollbackPersists() async throws {
        let first = try CanaryFixture(canaryYAML(failureLimit: 1))
        await first.window(candidate: 30, candidateErrors: 30)
        #expect(first.phase == .rolledBack)
        // "Restart": a new router and controller reading the same state file.
        let restarted = try CanaryFixture(canaryYAML(failureLimit: 1), stateFile: first.stateFile)
        #expect(restarted.phase == .rolledBack)
        #expect(restarted.candidateWeight == 0)
        #expect(restarted.candidateShare() == 0)
        #expect(restarted.router.canary.status(route: "moderation")?.decidedBy == "replica-a")
        // The operator edits the route (new weight): a new revision, a fresh canary.
        restarted.router.apply(try parseTraffic(canaryYAML(candidateWeight: 12, failureLimit: 1)))
        #expect(restarted.phase == .observing)
        #expect(restarted.candidateWeight == 12)
        // Restarting with the edited file also starts fresh.
        let again = try CanaryFixture(canaryYAML(candidateWeight: 12, failureLimit: 1), stateFile: first.stateFile)
        #expect(again.phase == .observing)
    }

    @Test("a rollback decided by one replica reaches another through the state file")
    func rollbackReachesOtherReplicas() async throws {
        let a = try CanaryFixture(canaryYAML(failureLimit: 1), instance: "replica-a")
        let b = try CanaryFixture(canaryYAML(failureLimit: 1), stateFile: a.stateFile, instance: "replica-b")
        await a.window(candidate: 30, candidateErrors: 30)
        #expect(a.phase == .rolledBack)
        #expect(b.phase == .observing)
        await b.router.canary.tick()
        #expect(b.phase == .rolledBack)
        #expect(b.candidateWeight == 0)
        #expect(b.events.kinds == ["canary_rollback_adopted"])
        // B's own healthy windows never undo it, and the file keeps the rollback.
        await b.window(candidate: 50)
        let data = try Data(contentsOf: a.stateFile)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let file = try decoder.decode(CanaryStateFile.self, from: data)
        #expect(file.routes["moderation"]?.phase == .rolledBack)
        #expect(file.routes["moderation"]?.decidedBy == "replica-a")
    }

    @Test("two replicas deciding at the same moment both land in the state file: it is changed under a lock")
    func simultaneousDecisionsAreBothKept() async throws {
        // Two routes, each with a canary; replica A sees route "first" fail, B sees "second" fail.
        let route = { (name: String) in
            """
              \(name):
                variants:
                  - {name: baseline, model: moderation, version: 1, weight: 90}
                  - {name: candidate, model: moderation, version: 2, weight: 10}
                canary: {candidate: candidate, baseline: baseline, window_seconds: 10, min_requests: 20,
                         max_error_rate: 0.05, max_p95_latency_ratio: 1.5, failure_limit: 1}
            """
        }
        let yaml = "routes:\n" + route("first") + "\n" + route("second") + "\n"
        // The volume makes each replica's read before its write wait (up to 3 s) until the other
        // replica has read too: without a lock both read the same old file, and the replica that
        // writes last drops the other's decision. With the lock the second read waits for the
        // first write, so this wait times out and nothing is lost.
        let reads = NIOLockedValueBox([String: Int]())
        let bothRead = NIOLockedValueBox(0)
        func volume(_ replica: String) -> CanaryStateStorage {
            CanaryStateStorage(
                read: { url in
                    let n = reads.withLockedValue { $0[replica, default: 0] += 1; return $0[replica]! }
                    // Read 1 is the start-up adoption, 2 the tick's own, 3 the read of the
                    // read-merge-write: that one waits for the other replica's.
                    if n == 3 {
                        bothRead.withLockedValue { $0 += 1 }
                        let deadline = Date().addingTimeInterval(3)
                        while bothRead.withLockedValue({ $0 }) < 2 && Date() < deadline { usleep(5_000) }
                    }
                    return CanaryStateStorage.fileSystem.read(url)
                },
                replace: CanaryStateStorage.fileSystem.replace)
        }
        let a = try CanaryFixture(yaml, instance: "replica-a", storage: volume("a"))
        let b = try CanaryFixture(yaml, stateFile: a.stateFile, instance: "replica-b", storage: volume("b"))
        for (fixture, name) in [(a, "first"), (b, "second")] {
            let candidate = RouteDecision(route: name, variant: "candidate", model: "moderation", version: "2", revision: "r")
            let baseline = RouteDecision(route: name, variant: "baseline", model: "moderation", version: "1", revision: "r")
            for _ in 0..<30 { fixture.router.observe(candidate, outcome: UpstreamOutcome(isServerError: true, latencySeconds: 0.02)) }
            for _ in 0..<200 { fixture.router.observe(baseline, outcome: UpstreamOutcome(isServerError: false, latencySeconds: 0.02)) }
            fixture.clock.advance(10)
        }
        async let first: Void = a.router.canary.tick()
        async let second: Void = b.router.canary.tick()
        _ = await (first, second)

        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let file = try decoder.decode(CanaryStateFile.self, from: Data(contentsOf: a.stateFile))
        #expect(file.routes["first"]?.phase == .rolledBack, "replica A's decision was lost: \(file.routes.keys.sorted())")
        #expect(file.routes["first"]?.decidedBy == "replica-a")
        #expect(file.routes["second"]?.phase == .rolledBack, "replica B's decision was lost: \(file.routes.keys.sorted())")
        #expect(file.routes["second"]?.decidedBy == "replica-b")
    }

    @Test("p95 from the histogram is close to the true p95")
    func histogramQuantile() {
        var histogram = LatencyHistogram()
        for index in 1...1_000 { histogram.record(Double(index) / 1_000) }  // 1 ms … 1 s
        let p95 = histogram.quantile(0.95)
        #expect(p95.map { abs($0 - 0.95) / 0.95 < 0.11 } == true)
        #expect(LatencyHistogram().quantile(0.95) == nil)
    }
}
