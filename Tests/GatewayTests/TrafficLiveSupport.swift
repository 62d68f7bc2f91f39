import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Gateway
import Hummingbird
import HummingbirdTesting
import Testing
import TritonClient

/// A gateway test folder with a traffic file and an audit key, and the YAML
/// sections that switch traffic routing and the audit log on.
struct TrafficSetup {
    let setup: TestSetup
    let tritonURL: String

    init() throws {
        setup = try TestSetup()
        tritonURL = Environment.tritonURL ?? "http://127.0.0.1:9"  // unit tests without Triton
        let key = (0..<32).map { _ in UInt8.random(in: 0...255) }
        try writeSecret(key, to: setup.directory.appendingPathComponent("audit-key"))
    }

    var directory: URL { setup.directory }
    var trafficFile: URL { directory.appendingPathComponent("traffic.yaml") }
    var auditDirectory: URL { directory.appendingPathComponent("audit") }
    var auditKeyFile: URL { directory.appendingPathComponent("audit-key") }
    var stateFile: URL { directory.appendingPathComponent("canary-state.json") }

    /// Verifies the audit chains with the chain key the gateway derives from `audit-key`.
    func verifyAudit(anchors: [AuditAnchor] = []) throws -> AuditVerificationReport {
        AuditVerifier.verify(
            paths: [auditDirectory.path], key: AuditChainKey(keyBytes: [UInt8](try Data(contentsOf: auditKeyFile))), anchors: anchors)
    }

    /// Replaces the traffic file atomically (write to a temporary name, rename).
    func writeTraffic(_ yaml: String) throws {
        try Data(yaml.utf8).write(to: trafficFile, options: .atomic)
    }

    /// Rewrites the traffic file in place (same inode: truncate, then write).
    func rewriteTrafficInPlace(_ yaml: String) throws {
        let handle = try FileHandle(forWritingTo: trafficFile)
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data(yaml.utf8))
        try handle.close()
    }

    func overrides(audit: Bool = true, pollInterval: Double = 0.2, instance: String = "test-gw", sighup: Bool = false) -> [String: String] {
        var sections: [String: String] = [
            "routes": "routes:\n  default: moderation\n  models:\n    moderation:\n      model: variant_a\n",
            "traffic": "traffic:\n  file: traffic.yaml\n  canary_state_file: canary-state.json\n  poll_interval: \(pollInterval)\n  reload_on_sighup: \(sighup)\n",
            "instance_id": "instance_id: \(instance)\n",
        ]
        if audit {
            sections["audit"] = "audit:\n  enabled: true\n  path: audit\n  key_file: audit-key\n  max_file_bytes: 1048576\n"
        }
        return sections
    }

    func configuration(audit: Bool = true, port: Int = 0, extra: [String: String] = [:]) throws -> GatewayConfiguration {
        var sections = overrides(audit: audit)
        for (k, v) in extra { sections[k] = v }
        return try setup.configuration(tritonURL: tritonURL, port: port, overrides: sections)
    }

    /// Runs the real gateway (audit log, traffic router, watcher, canary) on a
    /// free port; `body` gets the port.
    func withGateway(audit: Bool = true, parts: GatewayParts = GatewayParts(), extra: [String: String] = [:],
                     _ body: @Sendable (Int) async throws -> Void) async throws {
        let configuration = try configuration(audit: audit, extra: extra)
        let app = try await buildGatewayApplication(configuration: configuration, parts: parts, logger: quietLogger())
        try await app.test(.live) { client in try await body(client.port ?? 0) }
    }

    func adminToken() throws -> String { try setup.token(subject: "operator", roles: ["admin"]) }
}

/// One caller of the gateway over HTTP (the project's libcurl client).
struct Caller: Sendable {
    let client: InferenceServerClient
    let token: String
    let port: Int

    init(port: Int, token: String) throws {
        client = try InferenceServerClient(url: "http://127.0.0.1:\(port)")
        self.token = token
        self.port = port
    }

    func call(_ method: String, _ path: String, body: [UInt8] = [], contentType: String? = "application/json") async throws -> RawHTTPResponse {
        if !path.hasPrefix("/v2/") {
            // The Triton client only speaks /v2; the gateway's own routes go over a plain socket.
            return try await plainHTTP(port: port, method: method, path: path, token: token, body: body, contentType: contentType)
        }
        var headers = [("Authorization", "Bearer \(token)")]
        if let contentType, !body.isEmpty { headers.append(("Content-Type", contentType)) }
        return try await client.execute(RawHTTPRequest(method: method, path: path, headers: headers, body: body, timeout: .seconds(30)))
    }

    /// A KServe infer of `[1, 2, 3]` on `/v2/models/<route>/infer`, with request parameters.
    func infer(_ route: String, parameters: String = "{}") async throws -> RawHTTPResponse {
        let body = #"{"inputs":[{"name":"INPUT0","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"parameters":"# + parameters + "}"
        return try await call("POST", "/v2/models/\(route)/infer", body: Array(body.utf8))
    }

    func json(_ path: String, method: String = "GET") async throws -> (Int, [String: Any]) {
        let response = try await call(method, path)
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return (response.status, object)
    }
}

/// The named route's entry in `GET /admin/traffic`.
func routeStatus(_ status: [String: Any], _ route: String) -> [String: Any]? {
    (status["routes"] as? [[String: Any]])?.first { $0["name"] as? String == route }
}

/// Weight in force of a variant in `GET /admin/traffic`.
func weightInForce(_ status: [String: Any], route: String, variant: String) -> Double? {
    guard let variants = routeStatus(status, route)?["variants"] as? [[String: Any]],
          let entry = variants.first(where: { $0["name"] as? String == variant }) else { return nil }
    return (entry["weightInForce"] as? NSNumber)?.doubleValue
}

/// Polls `condition` every 100 ms for up to `seconds`.
func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}

/// Every JSON line of the audit files in `directory`.
func auditLines(_ directory: URL) throws -> [[String: Any]] {
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".jsonl") }.sorted()
    var lines: [[String: Any]] = []
    for name in names {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        for line in text.split(separator: "\n") {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] { lines.append(object) }
        }
    }
    return lines
}

/// The `moderation-gateway` executable next to the test bundle (built by `swift build`).
func gatewayExecutable() -> URL? {
    var candidates: [URL] = []
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var folder = bundle.deletingLastPathComponent()
    for _ in 0..<5 {
        candidates.append(folder.appendingPathComponent("moderation-gateway"))
        folder = folder.deletingLastPathComponent()
    }
    candidates.append(Environment.projectRoot.appendingPathComponent(".build/debug/moderation-gateway"))
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
}

/// Starts `moderation-gateway serve` with `yaml` written to `directory`/gateway.yaml
/// (output discarded, or written to `output`); the caller kills it.
func startGatewayBinary(_ executable: URL, yaml: String, in directory: URL, output: URL? = nil) throws -> Process {
    let configURL = directory.appendingPathComponent("gateway.yaml")
    try Data(yaml.utf8).write(to: configURL)
    let process = Process()
    process.executableURL = executable
    process.arguments = ["serve", "--config", configURL.path]
    if let output {
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
    } else {
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
    }
    try process.run()
    return process
}

/// One HTTP/1.1 exchange over a fresh socket (`Connection: close`), for the
/// gateway's non-KServe routes (admin API, metrics, health).
func plainHTTP(port: Int, method: String, path: String, token: String?, body: [UInt8] = [], contentType: String? = nil) async throws -> RawHTTPResponse {
    // Blocking socket calls run on a thread of their own: the cooperative pool (two
    // threads here) must stay free for the gateways under test.
    try await offThePool {
        let socket = try RawSocket(port: port)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if let contentType, !body.isEmpty { head += "Content-Type: \(contentType)\r\n" }
        let bytes = Array((head + "\r\n").utf8) + body
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(socket.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw POSIXError(.EPIPE) }
            sent += n
        }
        guard let text = socket.blockingReadResponse() else { throw POSIXError(.ECONNRESET) }
        guard let split = text.range(of: "\r\n\r\n") else { throw POSIXError(.EPROTO) }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw POSIXError(.EPROTO) }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return RawHTTPResponse(status: status, headers: headers, body: Array(text[split.upperBound...].utf8))
    }
}

/// A TCP port that was free a moment ago (bound to port 0, then released), for a child gateway.
func freePort() -> Int? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0 else { return nil }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    guard named == 0 else { return nil }
    return Int(UInt16(bigEndian: addr.sin_port))
}
