import Crypto
import Foundation
import Gateway
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Testing
import TritonClient

/// The audit log through the real gateway over HTTP, in front of the real Triton.
@Suite(.enabled(if: Environment.tritonURL != nil, "needs TRITON_URL (scripts/test starts it)"), .serialized)
struct AuditEndToEndTests {
    let env: TrafficSetup
    init() throws { env = try TrafficSetup() }

    static let split = TrafficEndToEndTests.split(95, 5)

    @Test("one verifiable record per request (refusals included) with the request's fields; audit verify passes")
    func everyRequestIsAudited() async throws {
        try env.writeTraffic(Self.split)
        let body = Array(#"{"inputs":[{"name":"INPUT0","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"parameters":{}}"#.utf8)
        let ids = try await env.withGatewayCollecting { port in
            var ids: [String: Int] = [:]
            func note(_ response: RawHTTPResponse) {
                if let id = response.header("X-Request-Id") { ids[id] = response.status }
            }
            let caller = try Caller(port: port, token: try env.setup.token(subject: "auditee", roles: ["admin"]))
            for _ in 0..<10 { note(try await caller.infer("ab")) }
            note(try await caller.call("GET", "/v2/models/variant_a"))
            let anonymous = try InferenceServerClient(url: "http://127.0.0.1:\(port)")
            for _ in 0..<3 {
                note(try await anonymous.execute(RawHTTPRequest(method: "POST", path: "/v2/models/ab/infer",
                                                                headers: [("Content-Type", "application/json")], body: body)))
            }
            let client = try Caller(port: port, token: try env.setup.token(subject: "client-only", roles: ["client"]))
            note(try await client.infer("ab"))
            note(try await client.call("POST", "/v1/moderate", body: Array("hello".utf8), contentType: "text/plain"))
            let admin = try Caller(port: port, token: try env.adminToken())
            let (code, stats) = try await admin.json("/admin/audit")
            #expect(code == 200)
            #expect((stats["records"] as? Int ?? 0) >= 15)
            #expect((stats["fsyncs"] as? Int ?? 0) >= 1)
            #expect(stats["recordsPerFsync"] != nil)
            return ids
        }
        #expect(ids.count == 16)
        #expect(ids.values.filter { $0 == 200 }.count == 11)
        #expect(ids.values.filter { $0 == 401 }.count == 3)

        let report = try env.verifyAudit()
        #expect(report.ok, "\(report.text)")
        let records = try auditLines(env.auditDirectory).filter { $0["type"] as? String == "request" }
        for (id, status) in ids {
            let matching = records.filter { $0["request_id"] as? String == id }
            #expect(matching.count == 1, "request \(id) has \(matching.count) records")
            #expect(matching.first?["status"] as? Int == status)
        }
        // A routed infer: who, where, what, and the keyed hash of the input, never the input.
        let key = SymmetricKey(data: try Data(contentsOf: env.directory.appendingPathComponent("audit-key")))
        let expectedHMAC = HMAC<SHA256>.authenticationCode(for: body, using: key).map { String(format: "%02x", $0) }.joined()
        let infer = try #require(records.first { $0["subject"] as? String == "auditee" && $0["endpoint"] as? String == "/v2/models/{model}/infer" })
        #expect(infer["issuer"] as? String == "test-issuer")
        #expect(infer["roles"] as? [String] == ["admin"])
        #expect(infer["route"] as? String == "ab")
        #expect(["a", "b"].contains(infer["variant"] as? String ?? ""))
        #expect(["variant_a", "variant_b"].contains(infer["model"] as? String ?? ""))
        #expect((infer["revision"] as? String)?.count == 12)
        #expect(infer["upstream_status"] as? Int == 200)
        #expect(infer["input_bytes"] as? Int == body.count)
        #expect(infer["content_type"] as? String == "application/json")
        #expect(infer["input_hmac"] as? String == expectedHMAC)
        #expect(infer["instance"] as? String == "test-gw")
        let refusal = try #require(records.first { $0["status"] as? Int == 401 })
        #expect(refusal["error_code"] as? String == "unauthorized")

        // The CLI agrees: exit 0, and --json lists the chain.
        if let executable = gatewayExecutable() {
            let (code, output) = try await runProcess(executable.path, ["audit", "verify", "--key-file", env.auditKeyFile.path, env.auditDirectory.path])
            #expect(code == 0, "\(output)")
            let (jsonCode, json) = try await runProcess(executable.path, ["audit", "verify", "--json", "--key-file", env.auditKeyFile.path, env.auditDirectory.path])
            #expect(jsonCode == 0)
            #expect(json.contains("\"instance\" : \"test-gw\""))
            // One edited line: the CLI reports the break and exits 1.
            let file = try #require(try FileManager.default.contentsOfDirectory(atPath: env.auditDirectory.path).filter { $0.hasSuffix(".jsonl") }.sorted().first)
            let url = env.auditDirectory.appendingPathComponent(file)
            let text = try String(contentsOf: url, encoding: .utf8)
            try Data(text.replacingOccurrences(of: "\"status\":401", with: "\"status\":200").utf8).write(to: url)
            let (brokenCode, brokenOutput) = try await runProcess(executable.path, ["audit", "verify", "--key-file", env.auditKeyFile.path, env.auditDirectory.path])
            #expect(brokenCode == 1, "\(brokenOutput)")
        } else {
            Issue.record("moderation-gateway executable not found next to the tests; run swift build first")
        }
    }

    @Test("a full disk under the audit log: 503 problem+json, never an answer without a record")
    func fullDiskAnswers503() async throws {
        try env.writeTraffic(Self.split)
        let configuration = AuditLog.Configuration(
            directory: env.auditDirectory, instanceID: "full", key: Array(repeating: 7, count: 32), openFile: { _ in DevFullAuditFile() })
        let log = try AuditLog.open(configuration, logger: quietLogger())
        var parts = GatewayParts(auditSink: log)
        parts.auditLog = log
        try await env.withGateway(parts: parts) { port in
            let caller = try Caller(port: port, token: try env.setup.token(subject: "full-disk", roles: ["admin"]))
            for _ in 0..<3 {
                let response = try await caller.infer("ab")
                #expect(response.status == 503)
                #expect(response.header("Content-Type") == "application/problem+json")
                #expect(String(decoding: response.body, as: UTF8.self).contains("audit-unavailable"))
                #expect(response.header("Retry-After") != nil)
            }
            // Every route is audited, the admin API too: it is refused the same way.
            let admin = try Caller(port: port, token: try env.adminToken())
            let (code, _) = try await admin.json("/admin/audit")
            #expect(code == 503)
            #expect(log.statistics.failure != nil)
            #expect(log.statistics.records == 0)
        }
    }

    @Test("an fsync failure mid-run: answers before it are 200, every answer after it is 503")
    func fsyncFailureStopsAnswers() async throws {
        try env.writeTraffic(Self.split)
        try FileManager.default.createDirectory(at: env.auditDirectory, withIntermediateDirectories: true)
        let configuration = AuditLog.Configuration(
            directory: env.auditDirectory, instanceID: "eio", key: Array(repeating: 7, count: 32),
            openFile: { try FailingSyncAuditFile(path: $0, okSyncs: 3) })
        let log = try AuditLog.open(configuration, logger: quietLogger())
        var parts = GatewayParts(auditSink: log)
        parts.auditLog = log
        try await env.withGateway(parts: parts) { port in
            let caller = try Caller(port: port, token: try env.setup.token(subject: "eio", roles: ["admin"]))
            var statuses: [Int] = []
            for _ in 0..<8 { statuses.append(Int(try await caller.infer("ab").status)) }
            let firstFailure = try #require(statuses.firstIndex(of: 503))
            #expect(firstFailure >= 1, "\(statuses)")
            #expect(statuses[..<firstFailure].allSatisfy { $0 == 200 }, "\(statuses)")
            #expect(statuses[firstFailure...].allSatisfy { $0 == 503 }, "\(statuses)")
        }
    }

    @Test("the gateway binary: SIGHUP reloads the traffic file; SIGKILL under load leaves a log with every 2xx request id")
    func binarySighupAndSigkill() async throws {
        let executable = try #require(gatewayExecutable(), "moderation-gateway executable not found; run swift build first")
        try env.writeTraffic(TrafficEndToEndTests.split(100, 0))
        let port = try #require(freePort())
        // Long poll interval: only SIGHUP reloads within the test.
        var sections = env.overrides(pollInterval: 3600, instance: "killed", sighup: true)
        sections["logging"] = "logging:\n  level: error\n  format: json\n"
        let yaml = env.setup.yaml(tritonURL: env.tritonURL, port: port, overrides: sections)
        let process = try startGatewayBinary(executable, yaml: yaml, in: env.directory)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        let caller = try Caller(port: port, token: try env.setup.token(subject: "binary-user", roles: ["admin"]))
        let up = try await eventually(60) {
            guard process.isRunning else { return false }
            return (try? await caller.call("GET", "/healthz"))?.status == 200
        }
        try #require(up, "the gateway binary did not start")
        #expect(try await caller.infer("ab").header("X-Moderation-Variant") == "a")

        try env.writeTraffic(TrafficEndToEndTests.split(0, 100))
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await caller.infer("ab").header("X-Moderation-Variant") == "a", "no reload without SIGHUP")
        kill(process.processIdentifier, SIGHUP)
        #expect(try await eventually(30) { try await caller.infer("ab").header("X-Moderation-Variant") == "b" }, "SIGHUP reloads")
        let metrics = String(decoding: try await caller.call("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("traffic_reloads_total"), "the parts' metrics are served by the binary")
        #expect(metrics.contains("audit_fsyncs_total"))
        #expect(metrics.contains(#"traffic_variant_weight{route="ab",variant="b"} 100"#) || metrics.contains(#"traffic_variant_weight{variant="b",route="ab"} 100"#))

        // Load from 8 callers; SIGKILL once enough 2xx answers came back.
        let acknowledged = AcknowledgedIDs()
        let pid = process.processIdentifier
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    guard let caller = try? Caller(port: port, token: (try? env.setup.token(subject: "kill-\(task)", roles: ["admin"])) ?? "") else { return }
                    while true {
                        guard let response = try? await caller.infer("ab") else { return }
                        if (200..<300).contains(response.status), let id = response.header("X-Request-Id") { acknowledged.add(id) }
                    }
                }
            }
            group.addTask {
                let deadline = Date().addingTimeInterval(30)
                while acknowledged.count < 300 && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
                kill(pid, SIGKILL)
            }
        }
        try await offThePool { process.waitUntilExit() }
        #expect(process.terminationReason == .uncaughtSignal)
        let ids = acknowledged.all
        #expect(ids.count >= 300)

        let report = try env.verifyAudit()
        #expect(report.ok || report.onlyTornTail, "\(report.text)")
        let logged = Set(try auditLines(env.auditDirectory).compactMap { $0["request_id"] as? String })
        let missing = ids.filter { !logged.contains($0) }
        #expect(missing.isEmpty, "2xx answers without a record: \(missing.prefix(5))")
        let kinds = try auditLines(env.auditDirectory).compactMap { $0["kind"] as? String }
        #expect(kinds.contains { $0.contains("reload") || $0.contains("traffic") }, "the SIGHUP reload is in the chain: \(Set(kinds))")
    }
}

extension AuditEndToEndTests {
    @Test("a 408 the connection guard answers (head or body too slow) has exactly one audit record, in a chain that verifies")
    func slowClientTimeoutsAreAudited() async throws {
        try env.writeTraffic(Self.split)
        let token = try env.setup.token(subject: "slow-sender", roles: ["admin"])
        let answers = try await env.withGatewayCollecting(extra: ["timeouts": "timeouts:\n  connect: 1\n  request: 1\n  upstream_deadline: 5\n"]) { port in
            let head = try RawSocket(port: port)
            head.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            let body = try RawSocket(port: port)
            body.send("POST /v2/models/ab/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"inputs\":")
            // The guard names each request through an internal header; a client's value for it never survives.
            let chosen = "00000000-0000-4000-8000-000000000000"
            let named = try RawSocket(port: port)
            named.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Gateway-Request-Id: \(chosen)\r\nConnection: close\r\n\r\n")
            let namedAnswer = await named.readAll()
            #expect(namedAnswer.hasPrefix("HTTP/1.1 200"), "\(namedAnswer.prefix(40))")
            #expect(!namedAnswer.contains(chosen), "the client chose the request id: \(namedAnswer)")
            return [await head.readAll(), await body.readAll()]
        }
        let records = try auditLines(env.auditDirectory).filter { $0["type"] as? String == "request" }
        for (name, answer) in zip(["head", "body"], answers) {
            #expect(answer.hasPrefix("HTTP/1.1 408"), "\(name) trickled: \(answer.prefix(40))")
            let id = answer.split(separator: "\r\n").first { $0.lowercased().hasPrefix("x-request-id:") }
                .map { $0.dropFirst("x-request-id:".count).trimmingCharacters(in: .whitespaces) }
            let requestID = try #require(id, "\(name): the 408 names its request id")
            let matching = records.filter { $0["request_id"] as? String == requestID }
            #expect(matching.count == 1, "\(name): \(matching.count) records for the 408's request id")
            #expect(matching.first?["status"] as? Int == 408, "\(name)")
            #expect(matching.first?["error_code"] as? String == "request-timeout", "\(name)")
        }
        let report = try env.verifyAudit()
        #expect(report.ok, "\(report.text)")
    }
}

/// Request ids that got a 2xx, collected by the load tasks.
final class AcknowledgedIDs: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [String] = []
    func add(_ id: String) { lock.lock(); ids.append(id); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return ids.count }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return ids }
}

extension TrafficSetup {
    /// Like `withGateway`, returning what `body` returns (after the gateway stopped and its audit log closed).
    func withGatewayCollecting<T: Sendable>(
        extra: [String: String] = [:], _ body: @Sendable @escaping (Int) async throws -> T
    ) async throws -> T {
        let box = ResultBox<T>()
        try await withGateway(extra: extra) { port in box.value = try await body(port) }
        return try #require(box.value)
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
