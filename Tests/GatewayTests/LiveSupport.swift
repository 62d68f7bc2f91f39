import Crypto
import Foundation
import Gateway
import HummingbirdTesting
#if canImport(Glibc)
import Glibc
#endif
import TritonClient

enum Environment {
    static func value(_ name: String) -> String? {
        guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else { return nil }
        return v
    }
    static var tritonURL: String? { value("TRITON_URL") }
    static var moderationURL: String? { value("TRITON_MODERATION_URL") }
    static var projectRoot: URL {
        value("PROJECT_ROOT").map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    static var perfAnalyzer: String { value("PERF_ANALYZER") ?? "/work/main/.triton/bin/perf_analyzer" }
    static var python: String {
        if let venv = value("VENV") { return venv + "/bin/python" }
        let local = projectRoot.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: local) ? local : "/work/main/.venv/bin/python"
    }
}

/// Runs blocking work (a socket read that waits for the peer, waiting for a child
/// process) on a thread of its own while the caller is suspended.
///
/// Every test, and the gateway each test runs in-process, share Swift's cooperative pool:
/// one thread per core, two on CI. A call that blocks one of them for a second halves
/// the pool for that second, and every awaiting task resumes that much later: on a
/// loaded 2-core machine that turned a 200 ms client timeout into 2.7 s.
func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.name = "test-blocking-work"
        thread.start()
    }
}

/// Runs a program and returns its exit status and combined output (from a file).
///
/// posix_spawn and waitpid rather than Foundation's Process: Process notices the
/// end of a child through an inherited descriptor, which a daemon the child
/// starts (scripts/triton start) keeps open, so it would wait forever.
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String) {
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-test-\(UUID().uuidString).log").path
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    let argv = [executable] + arguments
    let envp = env.map { "\($0.key)=\($0.value)" }
    // Spawned and waited for on a thread of its own: waitpid blocks for the child's whole life.
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            var cArgs = argv.map { strdup($0) } + [nil]
            var cEnv = envp.map { strdup($0) } + [nil]
            defer {
                cArgs.forEach { free($0) }
                cEnv.forEach { free($0) }
            }
            // Threads of the test process may block signals (Dispatch's workers block most),
            // and a spawned child inherits the mask: a Triton started from here would never see
            // `scripts/triton stop`'s SIGTERM. Children get an empty mask and default
            // dispositions, as from a shell.
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var noSignals = sigset_t()
            sigemptyset(&noSignals)
            posix_spawnattr_setsigmask(&attributes, &noSignals)
            var allSignals = sigset_t()
            sigfillset(&allSignals)
            posix_spawnattr_setsigdefault(&attributes, &allSignals)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, executable, &actions, &attributes, &cArgs, &cEnv)
            guard rc == 0 else {
                continuation.resume(throwing: POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL))
                return
            }
            var waitStatus: Int32 = 0
            while waitpid(pid, &waitStatus, 0) == -1 && errno == EINTR {}
            let exited = (waitStatus & 0x7F) == 0
            continuation.resume(returning: exited ? (waitStatus >> 8) & 0xFF : 128 + (waitStatus & 0x7F))
        }
    }
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    return (status, output)
}

/// Direct HTTP to Triton (or the gateway) through the project's client.
func rawCall(_ base: String, _ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8] = []) async throws -> RawHTTPResponse {
    let client = try InferenceServerClient(url: base)
    return try await client.execute(RawHTTPRequest(method: method, path: path, headers: headers, body: body, timeout: .seconds(30)))
}

/// How many inferences Triton ran for a model, successful or failed, from its statistics.
///
/// Throws when the statistics cannot be read: a count that silently fell back to a
/// sentinel would make `count == before` pass without checking anything.
func inferenceCount(_ tritonURL: String, model: String) async throws -> Int {
    struct Unreadable: Error, CustomStringConvertible { var description: String }
    let response = try await rawCall(tritonURL, "GET", "/v2/models/\(model)/stats")
    guard response.status == 200 else {
        throw Unreadable(description: "GET /v2/models/\(model)/stats answered \(response.status)")
    }
    guard let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
        let stats = (object["model_stats"] as? [[String: Any]])?.first,
        let count = (stats["inference_count"] as? NSNumber)?.intValue,
        let failures = (((stats["inference_stats"] as? [String: Any])?["fail"] as? [String: Any])?["count"] as? NSNumber)?.intValue
    else { throw Unreadable(description: "no inference_count / inference_stats.fail.count for \(model) in its statistics") }
    return count + failures
}

/// Triton counts a request in a model's statistics as it releases it, which can be after the
/// client has its answer: a count read at once can lag by the last requests, more so on a
/// loaded machine. Polls until the count reaches `target` (at most `seconds`) and returns it,
/// so `== target` afterwards checks for extra inferences without racing the bookkeeping.
func inferenceCount(_ tritonURL: String, model: String, reaching target: Int, within seconds: Double = 60) async throws -> Int {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while true {
        let count = try await inferenceCount(tritonURL, model: model)
        if count >= target || ContinuousClock.now >= deadline { return count }
        try await Task.sleep(for: .milliseconds(100))
    }
}

/// The real gateway, live over HTTP, in front of `tritonURL`: the default route serves
/// `model` unless `overrides` sets `routes`. `body` gets the client and the port.
func withLiveGateway(
    _ setup: TestSetup, tritonURL: String, model: String, overrides: [String: String] = [:],
    _ body: @Sendable (any TestClientProtocol, Int) async throws -> Void
) async throws {
    var overrides = overrides
    if overrides["routes"] == nil {
        overrides["routes"] = "routes:\n  default: moderation\n  models:\n    moderation:\n      model: \(model)\n"
    }
    let configuration = try setup.configuration(tritonURL: tritonURL, overrides: overrides)
    let app = try buildApplication(configuration: configuration, logger: quietLogger())
    try await app.test(.live) { client in try await body(client, client.port ?? 0) }
}

/// Hand-built JWTs for the JWT table.
enum TokenForge {
    static func b64url(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func hs256(header: String, payload: String, key: [UInt8]) -> String {
        let input = b64url(Array(header.utf8)) + "." + b64url(Array(payload.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: key))
        return input + "." + b64url(Array(mac))
    }

    static func claims(iss: String = "test-issuer", aud: String = "\"moderation-gateway\"", sub: String = "mallory",
                       exp: String? = nil, nbf: String? = nil, roles: String = "[\"inference\"]") -> String {
        let now = Int(Date().timeIntervalSince1970)
        var parts = ["\"iss\":\"\(iss)\"", "\"aud\":\(aud)", "\"sub\":\"\(sub)\"", "\"roles\":\(roles)", "\"iat\":\(now)"]
        if let exp { parts.append("\"exp\":\(exp)") }
        if let nbf { parts.append("\"nbf\":\(nbf)") }
        return "{" + parts.joined(separator: ",") + "}"
    }
}

/// A plain TCP socket for the slow-client and connection-cap rows. Its reads wait for
/// the gateway (up to a 30 s receive timeout) on a thread of their own (`offThePool`).
final class RawSocket: @unchecked Sendable {
    let fd: Int32

    /// Connects to `port` on 127.0.0.1; `source` (another loopback address, such as
    /// 127.0.0.2) makes the connection come from a different peer address.
    init(port: Int, source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if bound != 0 { close(fd); throw POSIXError(.EADDRNOTAVAIL) }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { close(fd); throw POSIXError(.ECONNREFUSED) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends every byte of `text`, NULs included (a C string would stop at the first).
    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            sent += n
        }
    }

    /// Reads one HTTP/1.1 response (head, then `Content-Length` bytes of body) and leaves
    /// the connection open; `nil` if the peer closes or the 30 s receive timeout passes first.
    func readResponse() async -> String? {
        (try? await offThePool { self.blockingReadResponse() }) ?? nil
    }

    /// Reads until the peer closes or the 30 s receive timeout passes.
    func readAll() async -> String {
        (try? await offThePool { self.blockingReadAll() }) ?? ""
    }

    /// The blocking read behind ``readResponse()``: the head, then `Content-Length` bytes,
    /// or everything until the peer closes when the head names no length. Retries reads
    /// interrupted by signals (SIGCHLD from child processes).
    func blockingReadResponse() -> String? {
        var out = [UInt8]()
        var byte: UInt8 = 0
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        while !out.suffix(4).elementsEqual(crlfcrlf) {
            let n = recv(fd, &byte, 1, 0)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { return nil }
            out.append(byte)
        }
        let head = String(decoding: out, as: UTF8.self)
        let length = head.split(separator: "\r\n").compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first
        guard let length else { return head + blockingReadAll() }
        var body = [UInt8](repeating: 0, count: length)
        var received = 0
        while received < length {
            let n = body[received...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            received += n
        }
        return head + String(decoding: body, as: UTF8.self)
    }

    private func blockingReadAll() -> String {
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    deinit { close(fd) }
}
