import Foundation
import Gateway
import Testing
import TritonClient

/// A/B routing, reloads, canary and mirroring through the real gateway over HTTP,
/// in front of the real Triton serving the fixture repository (`TRITON_URL`).
@Suite(.enabled(if: Environment.tritonURL != nil, "needs TRITON_URL (scripts/test starts it)"), .serialized)
struct TrafficEndToEndTests {
    let env: TrafficSetup
    init() throws { env = try TrafficSetup() }

    static func split(_ a: Int, _ b: Int, route: String = "ab", extra: String = "") -> String {
        """
        routes:
          \(route):
            variants:
              - {name: a, model: variant_a, weight: \(a)}
              - {name: b, model: variant_b, weight: \(b)}
        \(extra)
        """
    }

    @Test("50/50: subjects land on both variants, each subject always on the same one; headers and Triton agree")
    func abSplitIsStickyAndVisible() async throws {
        try env.writeTraffic(Self.split(50, 50))
        let beforeA = try await inferenceCount(env.tritonURL, model: "variant_a")
        let beforeB = try await inferenceCount(env.tritonURL, model: "variant_b")
        try await env.withGateway { port in
            let admin = try Caller(port: port, token: try env.adminToken())
            let (_, status) = try await admin.json("/admin/traffic")
            let revision = try #require(status["revision"] as? String)
            var seen: [String: Int] = [:]
            for index in 0..<24 {
                let caller = try Caller(port: port, token: try env.setup.token(subject: "user-\(index)", roles: ["admin"]))
                var variants = Set<String>()
                for _ in 0..<3 {
                    let response = try await caller.infer("ab")
                    #expect(response.status == 200)
                    let variant = try #require(response.header("X-Moderation-Variant"))
                    variants.insert(variant)
                    #expect(response.header("X-Moderation-Route") == "ab")
                    #expect(response.header("X-Model-Name") == (variant == "a" ? "variant_a" : "variant_b"))
                    #expect(revision.hasPrefix(response.header("X-Traffic-Revision") ?? "-"))
                }
                #expect(variants.count == 1, "user-\(index) moved between variants: \(variants)")
                seen[variants.first ?? "", default: 0] += 1
            }
            #expect((seen["a"] ?? 0) >= 3 && (seen["b"] ?? 0) >= 3, "both variants serve subjects: \(seen)")
            // Requests and latency are counted per traffic route and variant (a canary's error
            // ratio and p95 against its baseline's, in Prometheus).
            let metrics = String(decoding: try await admin.call("GET", "/metrics").body, as: UTF8.self)
            for variant in ["a", "b"] {
                let served = 3 * (seen[variant] ?? 0)
                let line = metrics.split(separator: "\n").first {
                    $0.hasPrefix("gateway_requests_total{") && $0.contains(#"status_class="2xx""#)
                        && $0.contains(#"traffic_route="ab""#) && $0.contains(#"variant="\#(variant)""#)
                }
                #expect(line.flatMap { Int($0.split(separator: " ").last ?? "") } == served, "\(line ?? "no series for variant \(variant)")")
                #expect(metrics.contains(#"gateway_request_duration_seconds_count{route="/v2/models/{model}/infer",traffic_route="ab",variant="\#(variant)"}"#))
            }
            let afterA = try await inferenceCount(env.tritonURL, model: "variant_a", reaching: beforeA + 3 * (seen["a"] ?? 0))
            let afterB = try await inferenceCount(env.tritonURL, model: "variant_b", reaching: beforeB + 3 * (seen["b"] ?? 0))
            #expect(afterA - beforeA >= 3 * (seen["a"] ?? 0))
            #expect(afterB - beforeB >= 3 * (seen["b"] ?? 0))
        }
    }

    @Test("/v1/moderate: the default route's variants split by subject; headers and the body's model object name the variant; mirror copies reach the shadow")
    func moderateIsRoutedAndMirrored() async throws {
        try env.writeTraffic("""
            routes:
              moderation:
                variants:
                  - {name: left, model: moderation_a, weight: 50}
                  - {name: right, model: moderation_b, weight: 50}
              other:
                variants:
                  - {name: only, model: variant_a, weight: 100}
            """)
        let image = try SampleImages.smallJPEG()
        try await env.withGateway { port in
            var seen: [String: Int] = [:]
            for index in 0..<16 {
                let token = try env.setup.token(subject: "moderate-\(index)", roles: ["admin"])
                var variants = Set<String>()
                for _ in 0..<2 {
                    let response = try await plainHTTP(port: port, method: "POST", path: "/v1/moderate", token: token, body: image,
                                                       contentType: "image/jpeg")
                    #expect(response.status == 200)
                    let variant = try #require(response.header("X-Moderation-Variant"))
                    variants.insert(variant)
                    let model = variant == "left" ? "moderation_a" : "moderation_b"
                    #expect(response.header("X-Model-Name") == model)
                    #expect(response.header("X-Moderation-Route") == "moderation")
                    let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
                    let described = try #require(body["model"] as? [String: Any])
                    #expect(described["route"] as? String == "moderation")
                    #expect(described["variant"] as? String == variant)
                    #expect(described["name"] as? String == model)
                    #expect(described["revision"] as? String == response.header("X-Traffic-Revision"))
                    #expect(body["text"] as? String == "served by \(model)", "Triton's answer came from the variant named")
                    #expect(body["decision"] as? String == "allow")
                }
                #expect(variants.count == 1)
                seen[variants.first ?? "", default: 0] += 1
            }
            #expect((seen["left"] ?? 0) >= 2 && (seen["right"] ?? 0) >= 2, "\(seen)")
        }

        // Mirror on the moderate route: every copy reaches the shadow model.
        try env.writeTraffic("""
            routes:
              moderation:
                variants:
                  - {name: live, model: moderation_a, weight: 100}
                  - {name: shadow, model: moderation_b, weight: 0}
                mirror: {variant: shadow, fraction: 1.0}
            """)
        let before = try await inferenceCount(env.tritonURL, model: "moderation_b")
        try await env.withGateway { port in
            let token = try env.setup.token(subject: "mirror-moderate", roles: ["admin"])
            for _ in 0..<10 {
                let response = try await plainHTTP(port: port, method: "POST", path: "/v1/moderate", token: token, body: image,
                                                   contentType: "image/jpeg")
                #expect(response.status == 200)
                #expect(response.header("X-Model-Name") == "moderation_a")
            }
            #expect(try await eventually(30) { try await inferenceCount(env.tritonURL, model: "moderation_b") - before >= 10 })
        }
    }

    @Test("atomic replace and in-place rewrite change routing within seconds; bad files are refused and the last good one serves")
    func reloadsFollowTheFile() async throws {
        try env.writeTraffic(Self.split(100, 0))
        try await env.withGateway { port in
            let caller = try Caller(port: port, token: try env.setup.token(subject: "steady", roles: ["admin"]))
            let admin = try Caller(port: port, token: try env.adminToken())
            #expect(try await caller.infer("ab").header("X-Moderation-Variant") == "a")

            try env.writeTraffic(Self.split(0, 100))
            #expect(try await eventually(30) { try await caller.infer("ab").header("X-Moderation-Variant") == "b" }, "atomic replace")

            try env.rewriteTrafficInPlace(Self.split(100, 0))
            #expect(try await eventually(30) { try await caller.infer("ab").header("X-Moderation-Variant") == "a" }, "in-place rewrite")
            let (_, good) = try await admin.json("/admin/traffic")
            let goodRevision = try #require(good["revision"] as? String)

            // Unknown key: refused by the watcher, visible in the admin API, old revision serves.
            try env.writeTraffic(Self.split(0, 100) + "    colour: blue\n")
            #expect(try await eventually(30) {
                let (_, status) = try await admin.json("/admin/traffic")
                return status["lastReloadError"] != nil && (status["reloadFailures"] as? Int ?? 0) >= 1
            })
            let (_, refused) = try await admin.json("/admin/traffic")
            #expect(refused["revision"] as? String == goodRevision)
            let error = try #require(refused["lastReloadError"] as? [String: Any])
            #expect(error["outcome"] as? String == "refused")
            #expect("\(error["problems"] ?? "")".contains("colour"))
            #expect(try await caller.infer("ab").header("X-Moderation-Variant") == "a")

            // The admin endpoint reports the refusal with 422.
            let (code, report) = try await admin.json("/admin/traffic/reload", method: "POST")
            #expect(code == 422)
            #expect((report["problems"] as? [Any])?.isEmpty == false)

            // A variant Triton does not have is refused too.
            try env.writeTraffic("""
                routes:
                  ab:
                    variants:
                      - {name: a, model: variant_a, weight: 50}
                      - {name: b, model: no_such_model, weight: 50}
                """)
            let (missingCode, missing) = try await admin.json("/admin/traffic/reload", method: "POST")
            #expect(missingCode == 422)
            #expect("\(missing["problems"] ?? "")".contains("no_such_model"))
            #expect(try await caller.infer("ab").header("X-Moderation-Variant") == "a")

            // A good file again: the admin reload accepts it at once.
            try env.writeTraffic(Self.split(0, 100))
            let (okCode, accepted) = try await admin.json("/admin/traffic/reload", method: "POST")
            #expect(okCode == 200)
            #expect(["accepted", "unchanged"].contains(accepted["outcome"] as? String ?? ""))
            #expect(try await caller.infer("ab").header("X-Moderation-Variant") == "b")

            // Admin endpoints need the admin permission.
            let client = try Caller(port: port, token: try env.setup.token(subject: "someone", roles: ["inference"]))
            #expect(try await client.call("GET", "/admin/traffic").status == 403)
            #expect(try await client.call("POST", "/admin/traffic/reload").status == 403)
        }
    }

    @Test("reload under load: 8 callers while the file is rewritten 10 times, zero failed requests")
    func reloadUnderLoadDropsNothing() async throws {
        try env.writeTraffic(Self.split(50, 50))
        try await env.withGateway { port in
            let stop = StopFlag()
            let results = try await withThrowingTaskGroup(of: (Int, Int, Set<String>).self) { group in
                for task in 0..<8 {
                    group.addTask {
                        let caller = try Caller(port: port, token: try env.setup.token(subject: "load-\(task)", roles: ["admin"]))
                        var ok = 0, failed = 0
                        var revisions = Set<String>()
                        while !stop.isSet {
                            let response = try await caller.infer("ab")
                            if response.status == 200 { ok += 1 } else { failed += 1 }
                            if let revision = response.header("X-Traffic-Revision") { revisions.insert(revision) }
                        }
                        return (ok, failed, revisions)
                    }
                }
                for round in 0..<10 {
                    try await Task.sleep(for: .milliseconds(400))
                    let a = [90, 10, 80, 20, 70, 30, 60, 40, 85, 15][round]
                    if round % 3 == 0 {
                        try env.rewriteTrafficInPlace(Self.split(a, 100 - a))
                    } else {
                        try env.writeTraffic(Self.split(a, 100 - a))
                    }
                }
                try await Task.sleep(for: .milliseconds(600))
                stop.set()
                var all: [(Int, Int, Set<String>)] = []
                for try await result in group { all.append(result) }
                return all
            }
            let ok = results.map(\.0).reduce(0, +)
            let failed = results.map(\.1).reduce(0, +)
            let revisions = results.reduce(into: Set<String>()) { $0.formUnion($1.2) }
            #expect(failed == 0)
            #expect(ok >= 50)
            #expect(revisions.count >= 5, "requests saw the reloads: \(revisions.count) revisions")
            let admin = try Caller(port: port, token: try env.adminToken())
            let (_, status) = try await admin.json("/admin/traffic")
            #expect((status["reloads"] as? Int ?? 0) >= 10)
        }
    }

    static func canaryFile(steps: String = "", candidateWeight: Int = 50, latencyRatio: String = "null", minRequests: Int = 3) -> String {
        """
        routes:
          canary:
            variants:
              - {name: stable, model: variant_a, weight: \(100 - candidateWeight)}
              - {name: next, model: flaky, weight: \(candidateWeight)}
            canary:
              candidate: next
              baseline: stable
              window_seconds: 1
              min_requests: \(minRequests)
              max_error_rate: 0.2
              max_p95_latency_ratio: \(latencyRatio)
              failure_limit: 2
        \(steps)
        """
    }

    @Test("a failing candidate is rolled back within the failure limit, with the audit event, and stays rolled back after a restart")
    func failingCandidateIsRolledBack() async throws {
        try env.writeTraffic(Self.canaryFile())
        try await env.withGateway { port in
            let admin = try Caller(port: port, token: try env.adminToken())
            let callers = try (0..<16).map { try Caller(port: port, token: try env.setup.token(subject: "canary-\($0)", roles: ["admin"])) }
            let rolledBack = try await eventually(30) {
                for caller in callers { _ = try await caller.infer("canary", parameters: #"{"fail_fraction":1}"#) }
                let (_, status) = try await admin.json("/admin/traffic")
                return weightInForce(status, route: "canary", variant: "next") == 0
            }
            #expect(rolledBack)
            let (_, status) = try await admin.json("/admin/traffic")
            let canary = try #require(routeStatus(status, "canary")?["canary"] as? [String: Any])
            #expect(canary["phase"] as? String == "rolled_back")
            #expect((canary["failedWindows"] as? Int ?? 0) >= 2 || canary["decidedBy"] != nil)
            // Every caller is now on the baseline, and requests succeed.
            for caller in callers {
                let response = try await caller.infer("canary", parameters: #"{"fail_fraction":1}"#)
                #expect(response.status == 200)
                #expect(response.header("X-Moderation-Variant") == "stable")
            }
        }
        let events = try auditLines(env.auditDirectory).filter { $0["type"] as? String == "admin" }
        let rollback = try #require(events.first { $0["kind"] as? String == "canary_rollback" })
        #expect("\(rollback["details"] ?? "")".contains("next"))
        #expect(FileManager.default.fileExists(atPath: env.stateFile.path))

        // A new gateway instance reads the state file: still rolled back.
        try await env.withGateway { port in
            let admin = try Caller(port: port, token: try env.adminToken())
            let (_, status) = try await admin.json("/admin/traffic")
            #expect(weightInForce(status, route: "canary", variant: "next") == 0)
            for index in 0..<8 {
                let caller = try Caller(port: port, token: try env.setup.token(subject: "canary-\(index)", roles: ["admin"]))
                #expect(try await caller.infer("canary").header("X-Moderation-Variant") == "stable")
            }
        }
        let report = try env.verifyAudit()
        #expect(report.ok, "\(report.text)")
    }

    @Test("a slow candidate (p95 far above the baseline's) is rolled back too")
    func slowCandidateIsRolledBack() async throws {
        try env.writeTraffic(Self.canaryFile(latencyRatio: "1.5"))
        try await env.withGateway { port in
            let admin = try Caller(port: port, token: try env.adminToken())
            let callers = try (0..<12).map { try Caller(port: port, token: try env.setup.token(subject: "slow-\($0)", roles: ["admin"])) }
            let rolledBack = try await eventually(30) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for caller in callers {
                        group.addTask {
                            let response = try await caller.infer("canary", parameters: #"{"delay_ms":150}"#)
                            #expect(response.status == 200, "slow, not failing")
                        }
                    }
                    try await group.waitForAll()
                }
                let (_, status) = try await admin.json("/admin/traffic")
                return weightInForce(status, route: "canary", variant: "next") == 0
            }
            #expect(rolledBack)
            let (_, status) = try await admin.json("/admin/traffic")
            let canary = try #require(routeStatus(status, "canary")?["canary"] as? [String: Any])
            #expect("\(canary["recentWindows"] ?? "")".contains("p95"), "the evidence names the latency check")
        }
        let rollback = try auditLines(env.auditDirectory).first { $0["kind"] as? String == "canary_rollback" }
        #expect(rollback != nil)
    }

    @Test("a healthy candidate is not rolled back and moves through its promotion steps")
    func healthyCandidateIsPromoted() async throws {
        // One candidate request makes a window count: how many arrive in a 1 s window
        // depends on the machine's load (a busy 2-core machine judged only "insufficient"
        // windows for 30 s), and whether each judged window promotes does not.
        try env.writeTraffic(Self.canaryFile(steps: "      promotion_steps: [10, 25, 50]\n", minRequests: 1))
        try await env.withGateway { port in
            let admin = try Caller(port: port, token: try env.adminToken())
            let (_, initial) = try await admin.json("/admin/traffic")
            #expect(weightInForce(initial, route: "canary", variant: "next") == 10)
            let callers = try (0..<40).map { try Caller(port: port, token: try env.setup.token(subject: "healthy-\($0)", roles: ["admin"])) }
            let promoted = try await eventually(120) {
                for caller in callers {
                    let response = try await caller.infer("canary")
                    #expect(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
                }
                let (_, status) = try await admin.json("/admin/traffic")
                return weightInForce(status, route: "canary", variant: "next") == 50
            }
            #expect(promoted)
            let (_, status) = try await admin.json("/admin/traffic")
            let canary = try #require(routeStatus(status, "canary")?["canary"] as? [String: Any])
            #expect(canary["phase"] as? String == "promoted")
            #expect(canary["failedWindows"] as? Int == 0)
        }
        let kinds = try auditLines(env.auditDirectory).compactMap { $0["kind"] as? String }
        #expect(kinds.filter { $0 == "canary_promotion" }.count >= 2)
        #expect(!kinds.contains("canary_rollback"))
    }

    @Test("mirrored requests reach the mirror variant; a failing mirror never affects clients")
    func mirrorCopiesWithoutHarm() async throws {
        try env.writeTraffic("""
            routes:
              mirrored:
                variants:
                  - {name: live, model: variant_a, weight: 100}
                  - {name: shadow, model: variant_b, weight: 0}
                mirror: {variant: shadow, fraction: 1.0}
              broken:
                variants:
                  - {name: live, model: variant_a, weight: 100}
                  - {name: shadow, model: flaky, weight: 0}
                mirror: {variant: shadow, fraction: 1.0}
            """)
        let before = try await inferenceCount(env.tritonURL, model: "variant_b")
        let failingBefore = try await inferenceCount(env.tritonURL, model: "flaky")
        try await env.withGateway { port in
            let caller = try Caller(port: port, token: try env.setup.token(subject: "mirror-user", roles: ["admin"]))
            for _ in 0..<20 {
                let response = try await caller.infer("mirrored")
                #expect(response.status == 200)
                #expect(response.header("X-Moderation-Variant") == "live")
            }
            #expect(try await eventually(30) {
                try await inferenceCount(env.tritonURL, model: "variant_b") - before >= 20
            }, "every request was mirrored to the shadow model")
            for _ in 0..<20 {
                // The shadow (flaky) fails every copy with a 500; the live variant ignores the parameter.
                let response = try await caller.infer("broken", parameters: #"{"fail_fraction":1}"#)
                #expect(response.status == 200)
                #expect(response.header("X-Model-Name") == "variant_a")
            }
            let admin = try Caller(port: port, token: try env.adminToken())
            #expect(try await eventually(30) {
                let (_, status) = try await admin.json("/admin/traffic")
                let mirror = routeStatus(status, "broken")?["mirror"] as? [String: Any]
                return (mirror?["errors"] as? Int ?? 0) >= 20
            }, "the mirror's failures are counted")
            #expect(try await inferenceCount(env.tritonURL, model: "flaky", reaching: failingBefore + 20) - failingBefore >= 20)
            let metrics = try await caller.call("GET", "/metrics")
            let text = String(decoding: metrics.body, as: UTF8.self)
            #expect(text.contains("gateway_mirror_requests_total"))
        }
    }
}

/// A flag the load tasks poll.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

@Suite struct TrafficConfigurationKeyTests {
    @Test("traffic and audit keys are validated with the key named")
    func keysAreValidated() throws {
        let env = try TrafficSetup()
        try env.writeTraffic(TrafficEndToEndTests.split(50, 50))
        let cases: [(String, String, String)] = [
            ("instance_id", "instance_id: \"a b\"\n", "instance_id"),
            ("audit", "audit:\n  enabled: true\n  path: audit\n  key_file: audit-key\n  subject_mode: sometimes\n", "audit.subject_mode"),
            ("audit", "audit:\n  enabled: true\n  path: audit\n  key_file: audit-key\n  max_file_bytes: 10\n", "audit.max_file_bytes"),
            ("audit", "audit:\n  enabled: true\n  key_file: audit-key\n", "audit.path"),
            ("traffic", "traffic:\n  file: traffic.yaml\n  poll_interval: 0\n", "traffic.poll_interval"),
            ("traffic", "traffic:\n  file: traffic.yaml\n  canary_state_file: no/such/folder/state.json\n", "traffic.canary_state_file"),
            ("traffic", "traffic:\n  file: missing.yaml\n", "traffic.file"),
        ]
        for (section, yaml, key) in cases {
            #expect {
                try env.configuration(extra: [section: yaml])
            } throws: { error in
                (error as? ConfigurationError)?.key == key
            }
        }
        let good = try env.configuration()
        #expect(good.instanceID == "test-gw")
        #expect(good.traffic.canaryStateFile == "canary-state.json")
        #expect(good.audit.maxFileBytes == 1_048_576)
    }

    @Test("the audit key must live outside the audit folder: whoever writes the log must not hold the chain key")
    func auditKeyInsideTheAuditFolderIsRefused() throws {
        let env = try TrafficSetup()
        try env.writeTraffic(TrafficEndToEndTests.split(50, 50))
        try FileManager.default.createDirectory(at: env.auditDirectory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: env.auditKeyFile, to: env.auditDirectory.appendingPathComponent("chain-key"))
        #expect {
            try env.configuration(extra: ["audit": "audit:\n  enabled: true\n  path: audit\n  key_file: audit/chain-key\n"])
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.key == "audit.key_file" && error.message.contains("outside the audit folder")
        }
        #expect(throws: Never.self) { try env.configuration() }
    }

    @Test("an audit key others can read stops the start, naming audit.key_file, its mode and the fix")
    func auditKeyReadableByOthersIsRefused() throws {
        let env = try TrafficSetup()
        try env.writeTraffic(TrafficEndToEndTests.split(50, 50))
        #expect(chmod(env.auditKeyFile.path, 0o644) == 0)
        #expect {
            try env.configuration()
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.key == "audit.key_file" && error.message.contains("0644") && error.message.contains("chmod 600")
        }
        #expect(chmod(env.auditKeyFile.path, 0o600) == 0)
        #expect(throws: Never.self) { try env.configuration() }
    }

    @Test("a traffic file that does not validate stops the start, naming traffic.file and the line")
    func badTrafficFileStopsStart() async throws {
        let env = try TrafficSetup()
        try env.writeTraffic("routes:\n  ab:\n    variants:\n      - {name: a, model: m, weight: -1}\n")
        let configuration = try env.configuration(audit: false)
        await #expect {
            _ = try await buildGatewayApplication(configuration: configuration, logger: quietLogger())
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.key == "traffic.file" && error.message.contains("traffic.yaml:4") && error.message.contains("weight")
        }
    }
}
