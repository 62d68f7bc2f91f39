import Foundation
import Logging
import Testing

@testable import Gateway

#if canImport(Glibc)
import Glibc
#endif

/// Collects admin events in memory, in place of the audit log.
final class CollectedAdminEvents: AdminEventRecorder, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [(String, [String: AuditValue])] = []

    func recordAdmin(kind: String, details: [String: AuditValue]) async throws {
        append(kind, details)
    }

    private func append(_ kind: String, _ details: [String: AuditValue]) {
        lock.lock()
        stored.append((kind, details))
        lock.unlock()
    }

    var kinds: [String] {
        lock.lock()
        defer { lock.unlock() }
        return stored.map(\.0)
    }

    func details(of kind: String) -> [String: AuditValue]? {
        lock.lock()
        defer { lock.unlock() }
        return stored.last { $0.0 == kind }?.1
    }
}

func trafficTestDirectory(_ label: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("gateway-\(label)-\(UUID().uuidString.prefix(8))", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func twoVariantYAML(baseline: Int, candidate: Int, extra: String = "") -> String {
    """
    routes:
      moderation:
        variants:
          - name: baseline
            model: moderation
            version: 1
            weight: \(baseline)
          - name: candidate
            model: moderation
            version: 2
            weight: \(candidate)
    \(extra)
    """
}

func parseTraffic(_ yaml: String) throws -> TrafficConfiguration {
    try TrafficConfiguration.parse(data: Data(yaml.utf8))
}

func makeRouter(_ yaml: String, stateFile: URL? = nil, clock: @escaping TrafficClock = { Date() }, events: CollectedAdminEvents? = nil) throws -> TrafficRouter {
    TrafficRouter.make(
        configuration: try parseTraffic(yaml),
        canarySettings: .init(stateFile: stateFile, instanceID: "test", clock: clock),
        logger: Logger(label: "test"), adminEvents: events
    )
}

@Suite("Traffic assignment")
struct TrafficAssignmentTests {
    @Test("20 000 subjects split within ±1.5 pp of the weights")
    func sharesFollowWeights() throws {
        let yaml = """
            routes:
              moderation:
                variants:
                  - {name: a, model: m_a, weight: 70}
                  - {name: b, model: m_b, weight: 20}
                  - {name: c, model: m_c, weight: 10}
            """
        let router = try makeRouter(yaml)
        var counts: [String: Int] = [:]
        for index in 0..<20_000 {
            let decision = try #require(router.resolve(route: "moderation", stickyKey: "user-\(index)", headers: []))
            counts[decision.variant, default: 0] += 1
        }
        for (variant, weight) in [("a", 0.70), ("b", 0.20), ("c", 0.10)] {
            let share = Double(counts[variant] ?? 0) / 20_000
            #expect(abs(share - weight) <= 0.015, "variant \(variant): share \(share), weight \(weight)")
        }
    }

    @Test("the same subject keeps its variant across requests and across reloads that keep its bucket's variant")
    func stickyAcrossRequestsAndReloads() throws {
        let router = try makeRouter(twoVariantYAML(baseline: 95, candidate: 5))
        var before: [String: String] = [:]
        for index in 0..<2_000 {
            let subject = "subject-\(index)"
            let first = try #require(router.resolve(route: "moderation", stickyKey: subject, headers: []))
            for _ in 0..<3 {
                #expect(router.resolve(route: "moderation", stickyKey: subject, headers: [])?.variant == first.variant)
            }
            before[subject] = first.variant
        }
        // 95/5 -> 90/10: candidate range grows down from 9500 to 9000.
        router.apply(try parseTraffic(twoVariantYAML(baseline: 90, candidate: 10)))
        for (subject, variant) in before {
            let bucket = trafficBucket(route: "moderation", key: subject)
            let after = try #require(router.resolve(route: "moderation", stickyKey: subject, headers: []))
            if bucket < 9_000 || bucket >= 9_500 {
                #expect(after.variant == variant, "subject \(subject) in bucket \(bucket) moved")
            } else {
                #expect(after.variant == "candidate")
            }
        }
    }

    @Test("raising the candidate 5 → 25 moves exactly the buckets it must")
    func raisingWeightMovesOnlyNeededBuckets() throws {
        let old = RouteTable(route: try #require(parseTraffic(twoVariantYAML(baseline: 95, candidate: 5)).routes["moderation"]), override: nil)
        let new = RouteTable(route: try #require(parseTraffic(twoVariantYAML(baseline: 75, candidate: 25)).routes["moderation"]), override: nil)
        var moved: [Int] = []
        for bucket in 0..<trafficBucketCount where old.variantIndex(forBucket: bucket) != new.variantIndex(forBucket: bucket) {
            moved.append(bucket)
            #expect(old.variantIndex(forBucket: bucket) == 0 && new.variantIndex(forBucket: bucket) == 1)
        }
        #expect(moved == Array(7_500..<9_500))
        // Through the router, for subjects: the moved ones are exactly those hashed into 7500..<9500.
        let router = try makeRouter(twoVariantYAML(baseline: 95, candidate: 5))
        let subjects = (0..<5_000).map { "user-\($0)" }
        let first = subjects.map { router.resolve(route: "moderation", stickyKey: $0, headers: [])?.variant }
        router.apply(try parseTraffic(twoVariantYAML(baseline: 75, candidate: 25)))
        for (index, subject) in subjects.enumerated() {
            let bucket = trafficBucket(route: "moderation", key: subject)
            let now = router.resolve(route: "moderation", stickyKey: subject, headers: [])?.variant
            #expect((now != first[index]) == (7_500..<9_500).contains(bucket))
        }
    }

    @Test("bucket hash is stable (fixed value, not a seeded Hasher)")
    func bucketIsStable() {
        // SHA-256("moderation\0alice"), first 8 bytes big-endian mod 10 000 (computed with Python's hashlib).
        let value = trafficBucket(route: "moderation", key: "alice")
        #expect(value == trafficBucket(route: "moderation", key: "alice"))
        #expect((0..<trafficBucketCount).contains(value))
        #expect(value == pinnedAliceBucket)
    }

    @Test("header stickiness uses the header, and none draws at random")
    func headerAndNoStickiness() throws {
        let yaml = """
            routes:
              moderation:
                stickiness: {header: X-Session}
                variants:
                  - {name: a, model: m_a, weight: 50}
                  - {name: b, model: m_b, weight: 50}
              loose:
                stickiness: none
                variants:
                  - {name: a, model: m_a, weight: 50}
                  - {name: b, model: m_b, weight: 50}
            """
        let router = try makeRouter(yaml)
        for index in 0..<200 {
            let session = "session-\(index)"
            let expected = trafficBucket(route: "moderation", key: session) < 5_000 ? "a" : "b"
            let decision = router.resolve(route: "moderation", stickyKey: "same-subject", headers: [("x-session", session)])
            #expect(decision?.variant == expected)
        }
        var seen: Set<String> = []
        for _ in 0..<200 {
            if let decision = router.resolve(route: "loose", stickyKey: "same-subject", headers: []) { seen.insert(decision.variant) }
        }
        #expect(seen == ["a", "b"])
        #expect(router.resolve(route: "unknown", stickyKey: "x", headers: []) == nil)
    }

    @Test("mirror samples by fraction and never mirrors the mirror variant")
    func mirrorSampling() throws {
        let yaml = """
            routes:
              moderation:
                variants:
                  - {name: baseline, model: m, weight: 100}
                  - {name: shadow, model: m_shadow, weight: 0}
                mirror: {variant: shadow, fraction: 0.25}
            """
        let router = try makeRouter(yaml)
        var mirrored = 0
        for index in 0..<8_000 {
            let decision = try #require(router.resolve(route: "moderation", stickyKey: "u\(index)", headers: []))
            #expect(decision.variant == "baseline")  // weight 0 gets no primary traffic
            if let target = router.mirrorTarget(for: decision) {
                #expect(target.variant == "shadow" && target.model == "m_shadow")
                mirrored += 1
            }
        }
        #expect(abs(Double(mirrored) / 8_000 - 0.25) < 0.03)
        let shadowDecision = RouteDecision(route: "moderation", variant: "shadow", model: "m_shadow", version: nil, revision: "x")
        #expect(router.mirrorTarget(for: shadowDecision) == nil)
        router.observeMirror(shadowDecision, outcome: UpstreamOutcome(isServerError: true, latencySeconds: 0.1))
        let status = try #require(router.status().routes.first?.mirror)
        #expect(status.sent == mirrored && status.errors == 1)
    }

    @Test("requests resolving during reloads always get a decision from one whole revision")
    func reloadUnderLoad() async throws {
        let router = try makeRouter(twoVariantYAML(baseline: 95, candidate: 5))
        let revisions = try [
            parseTraffic(twoVariantYAML(baseline: 95, candidate: 5)),
            parseTraffic(twoVariantYAML(baseline: 50, candidate: 50)),
        ]
        let valid = Set(revisions.map(\.shortRevision))
        let failures = await withTaskGroup(of: Int.self) { group in
            group.addTask {
                for index in 0..<400 { router.apply(revisions[index % 2]) }
                return 0
            }
            for worker in 0..<4 {
                group.addTask {
                    var failed = 0
                    for index in 0..<5_000 {
                        guard let decision = router.resolve(route: "moderation", stickyKey: "w\(worker)-\(index)", headers: []),
                              valid.contains(decision.revision) else {
                            failed += 1
                            continue
                        }
                    }
                    return failed
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
    }
}

/// Pinned so a change of hash function (which would reshuffle every user) fails a test.
let pinnedAliceBucket = 9131

@Suite("Traffic file validation")
struct TrafficValidationTests {
    func problems(_ yaml: String) -> [TrafficConfigurationProblem] {
        do {
            _ = try parseTraffic(yaml)
            return []
        } catch let error as TrafficConfigurationError {
            return error.problems
        } catch {
            return [.init(file: "?", line: nil, key: "?", message: "\(error)")]
        }
    }

    @Test("a good file parses with defaults and a revision")
    func goodFile() throws {
        let configuration = try parseTraffic(twoVariantYAML(baseline: 95, candidate: 5))
        let route = try #require(configuration.routes["moderation"])
        #expect(route.variants.map(\.name) == ["baseline", "candidate"])
        #expect(route.variants[0].version == "1")
        #expect(route.stickiness == .subject)
        #expect(configuration.revision.count == 64)
        #expect(configuration.shortRevision.count == 12)
    }

    @Test("the example config/traffic.yaml is valid")
    func exampleFileIsValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("config/traffic.yaml"))
        let configuration = try TrafficConfiguration.parse(data: data)
        #expect(configuration.routes["moderation"]?.canary?.promotionSteps == [1, 2, 5])
    }

    @Test(
        "each rule refuses with the line and the key",
        arguments: [
            // (yaml, line, key, message fragment)
            (twoVariantYAML(baseline: 95, candidate: 5, extra: "    colour: blue"), 12, "routes.moderation.colour", "unknown key"),
            (twoVariantYAML(baseline: 95, candidate: -5), 11, "routes.moderation.variants[1].weight", "must be ≥ 0"),
            (twoVariantYAML(baseline: 0, candidate: 0), 4, "routes.moderation.variants", "all weights are zero"),
            (
                twoVariantYAML(baseline: 95, candidate: 5).replacingOccurrences(of: "name: candidate", with: "name: baseline"),
                8, "routes.moderation.variants[1].name", "duplicate variant name"
            ),
            (
                twoVariantYAML(baseline: 95, candidate: 5, extra: "    canary: {candidate: nope, baseline: baseline}"),
                12, "routes.moderation.canary.candidate", "names no variant"
            ),
            (
                twoVariantYAML(baseline: 95, candidate: 5, extra: "    mirror:\n      variant: ghost\n      fraction: 0.1"),
                13, "routes.moderation.mirror.variant", "names no variant"
            ),
            (
                twoVariantYAML(baseline: 95, candidate: 5, extra: "    canary: {candidate: candidate, baseline: baseline, max_error_rate: 3}"),
                12, "routes.moderation.canary.max_error_rate", "between 0 and 1"
            ),
            (
                twoVariantYAML(baseline: 95, candidate: 5, extra: "    canary: {candidate: candidate, baseline: baseline, promotion_steps: [5, 2]}"),
                12, "routes.moderation.canary.promotion_steps[1]", "increase"
            ),
            (twoVariantYAML(baseline: 95, candidate: 5).replacingOccurrences(of: "model: moderation\n        version: 2", with: "model: ../etc\n        version: 2"), 9, "routes.moderation.variants[1].model", "must match"),
            ("routes:\n  moderation:\n    variants:\n      - {name: a, model: m, weight: ten}\n", 4, "routes.moderation.variants[0].weight", "must be a number"),
            ("routes: [1, 2\n", 2, "", "YAML syntax error"),
            ("ruotes: {}\n", 1, "ruotes", "unknown key"),
        ]  as [(yaml: String, line: Int, key: String, fragment: String)]
    )
    func refusals(_ refusal: (yaml: String, line: Int, key: String, fragment: String)) {
        let (yaml, line, key, fragment) = refusal
        let found = problems(yaml)
        #expect(!found.isEmpty, "file was accepted")
        let match = found.first { $0.key == key }
        #expect(match != nil, "no problem for key \(key); got \(found.map(\.description))")
        if let match {
            #expect(match.line == line, "\(match.description)")
            #expect(match.message.contains(fragment), "\(match.description)")
            #expect(match.description.hasPrefix("traffic.yaml:\(line): "))
        }
    }

    @Test("a variant whose model/version Triton does not report ready is refused at the model's line")
    func readiness() async throws {
        let data = Data(twoVariantYAML(baseline: 95, candidate: 5).utf8)
        do {
            _ = try await TrafficConfiguration.load(data: data, readiness: { model, version in version != "2" })
            Issue.record("file with an unready variant was accepted")
        } catch let error as TrafficConfigurationError {
            #expect(error.problems.count == 1)
            #expect(error.problems.first?.line == 9)
            #expect(error.problems.first?.key == "routes.moderation.variants[1].model")
            #expect(error.problems.first?.message.contains("not ready") == true)
        }
        let ready = try await TrafficConfiguration.load(data: data, readiness: { _, _ in true })
        #expect(ready.routes["moderation"]?.variants.count == 2)
    }
}

@Suite("Traffic file reload")
struct TrafficReloadTests {
    struct Fixture {
        let directory: URL
        let path: URL
        let router: TrafficRouter
        let watcher: TrafficFileWatcher
        let events: CollectedAdminEvents
    }

    func fixture(readiness: VariantReadinessCheck? = nil, sighup: Bool = false) async throws -> Fixture {
        let directory = try trafficTestDirectory("traffic")
        let path = directory.appendingPathComponent("traffic.yaml")
        try Data(twoVariantYAML(baseline: 95, candidate: 5).utf8).write(to: path)
        let events = CollectedAdminEvents()
        let configuration = try await TrafficFileWatcher.loadInitial(path: path, readiness: readiness)
        let router = TrafficRouter.make(
            configuration: configuration, canarySettings: .init(stateFile: nil, instanceID: "t"),
            logger: Logger(label: "test"), adminEvents: events
        )
        let watcher = TrafficFileWatcher(
            settings: .init(path: path, pollInterval: sighup ? .seconds(3600) : .milliseconds(20), settleDelay: .milliseconds(5), reloadOnSIGHUP: sighup),
            router: router, readiness: readiness, logger: Logger(label: "test"), adminEvents: events
        )
        return Fixture(directory: directory, path: path, router: router, watcher: watcher, events: events)
    }

    @Test("an atomically replaced file (rename over) is picked up")
    func atomicReplace() async throws {
        let f = try await fixture()
        let old = f.router.store.snapshot.configuration.revision
        #expect(await f.watcher.checkForChange() == nil)  // unchanged content: nothing to do
        let temporary = f.directory.appendingPathComponent(".traffic.yaml.new")
        try Data(twoVariantYAML(baseline: 75, candidate: 25).utf8).write(to: temporary)
        #expect(rename(temporary.path, f.path.path) == 0)
        let report = try #require(await f.watcher.checkForChange())
        #expect(report.outcome == "accepted")
        #expect(f.router.store.snapshot.configuration.revision != old)
        #expect(f.router.status().routes.first?.variants.map(\.weightInForce) == [75, 25])
        #expect(f.events.kinds == ["traffic_reload"])
    }

    @Test("a file rewritten in place is picked up; the same content again is not a reload")
    func inPlaceRewrite() async throws {
        let f = try await fixture()
        let handle = try FileHandle(forWritingTo: f.path)
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data(twoVariantYAML(baseline: 60, candidate: 40).utf8))
        try handle.close()
        #expect(await f.watcher.checkForChange()?.outcome == "accepted")
        #expect(f.router.status().routes.first?.variants.map(\.weightInForce) == [60, 40])
        // Same bytes rewritten (new mtime): no reload.
        try Data(twoVariantYAML(baseline: 60, candidate: 40).utf8).write(to: f.path)
        #expect(await f.watcher.checkForChange() == nil)
    }

    @Test("a bad file is refused, the last good revision keeps serving, and the refusal is reported")
    func badFileKeepsOldRevision() async throws {
        let f = try await fixture()
        let old = f.router.store.snapshot.configuration.revision
        try Data(twoVariantYAML(baseline: 95, candidate: -1).utf8).write(to: f.path)
        let report = try #require(await f.watcher.checkForChange())
        #expect(report.outcome == "refused")
        #expect(f.router.store.snapshot.configuration.revision == old)
        #expect(f.router.resolve(route: "moderation", stickyKey: "x", headers: [])?.revision == String(old.prefix(12)))
        let status = f.router.status()
        #expect(status.reloadFailures == 1)
        #expect(status.lastReloadError?.problems.first?.key == "routes.moderation.variants[1].weight")
        #expect(status.lastReloadError?.problems.first?.line == 11)
        #expect(f.events.kinds == ["traffic_reload_refused"])
        // The refused content is not re-judged on every poll.
        #expect(await f.watcher.checkForChange() == nil)
        // Fixing the file recovers.
        try Data(twoVariantYAML(baseline: 90, candidate: 10).utf8).write(to: f.path)
        #expect(await f.watcher.checkForChange()?.outcome == "accepted")
    }

    @Test("the watcher service follows the file by itself, and an admin reload retries a refused file")
    func serviceLoopAndForcedReload() async throws {
        let ready = Locked(false)
        let f = try await fixture(readiness: { _, version in version != "3" || ready.current })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await f.watcher.run() }
            try Data(twoVariantYAML(baseline: 80, candidate: 20).utf8).write(to: f.path)
            try await trafficWaitUntil { f.router.status().routes.first?.variants.last?.weightInForce == 20 }
            // Version 3 is not ready in "Triton": refused, until it is and an admin reload runs.
            try Data(twoVariantYAML(baseline: 80, candidate: 20).replacingOccurrences(of: "version: 2", with: "version: 3").utf8)
                .write(to: f.path)
            try await trafficWaitUntil { f.router.status().reloadFailures == 1 }
            ready.withLock { $0 = true }
            #expect(await f.watcher.reload(trigger: "admin").outcome == "accepted")
            #expect(f.router.resolve(route: "moderation", stickyKey: "zz", headers: []) != nil)
            #expect(f.router.store.snapshot.configuration.routes["moderation"]?.variants[1].version == "3")
            group.cancelAll()
        }
    }

    @Test("SIGHUP reloads the file")
    func sighupReloads() async throws {
        signal(SIGHUP, SIG_IGN)  // so an early signal cannot end the test process
        let f = try await fixture(sighup: true)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await f.watcher.run() }
            try Data(twoVariantYAML(baseline: 70, candidate: 30).utf8).write(to: f.path)
            // Polling is once an hour here, so only the signal can cause the reload.
            try await trafficWaitUntil(timeout: 30) {
                kill(getpid(), SIGHUP)
                return f.router.status().routes.first?.variants.last?.weightInForce == 30
            }
            #expect(f.router.status().lastReload?.trigger == "sighup")
            group.cancelAll()
        }
    }
}

func trafficWaitUntil(timeout: Double = 30, _ condition: @Sendable () async -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("condition not met within \(timeout) s")
}

@Suite("Traffic runtime wiring")
struct TrafficRuntimeTests {
    @Test("start loads the file, refuses a bad one, and the admin status encodes as JSON")
    func startAndStatus() async throws {
        let directory = try trafficTestDirectory("runtime")
        let path = directory.appendingPathComponent("traffic.yaml")
        try Data(canaryYAML(candidateWeight: 10).utf8).write(to: path)
        let runtime = try await TrafficRuntime.start(
            trafficFile: path, canaryStateFile: directory.appendingPathComponent("canary.json"), instanceID: "gw-1",
            readiness: { _, _ in true }, logger: Logger(label: "test"), adminEvents: nil
        )
        #expect(runtime.services.count == 2)
        let decision = try #require(runtime.router.resolve(route: "moderation", stickyKey: "alice", headers: []))
        #expect(decision.revision == runtime.router.store.snapshot.configuration.shortRevision)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let json = try #require(
            try JSONSerialization.jsonObject(with: encoder.encode(runtime.router.status())) as? [String: Any]
        )
        let routes = try #require(json["routes"] as? [[String: Any]])
        #expect(routes.first?["name"] as? String == "moderation")
        let canary = try #require(routes.first?["canary"] as? [String: Any])
        #expect(canary["phase"] as? String == "observing")
        #expect(canary["failureLimit"] as? Int == 2)

        try Data(twoVariantYAML(baseline: 1, candidate: -1).utf8).write(to: path)
        await #expect(throws: TrafficConfigurationError.self) {
            _ = try await TrafficRuntime.start(
                trafficFile: path, canaryStateFile: nil, instanceID: "gw-1", readiness: nil,
                logger: Logger(label: "test"), adminEvents: nil
            )
        }
    }
}
