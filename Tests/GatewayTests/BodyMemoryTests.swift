import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TritonClient

/// Bodies that are cheap to send and costly to hold: 8 KiB of gzip that inflate to
/// 8 MiB of `[0,0,0,…]` (about four million JSON elements). The gateway binary runs as
/// a child process so its memory can be read from /proc; the fixture Triton answers
/// the well-formed requests.
@Suite(.enabled(if: Environment.tritonURL != nil, "needs TRITON_URL (scripts/test starts it)"), .serialized)
struct BodyMemoryTests {
    static let inflatedBytes = 8 << 20

    /// `prefix`, then zeros separated by commas up to 8 MiB, then `suffix`, gzipped.
    static func bomb(_ prefix: String, _ suffix: String) throws -> [UInt8] {
        let zeros = (inflatedBytes - prefix.utf8.count - suffix.utf8.count) / 2
        var list = [UInt8](repeating: UInt8(ascii: ","), count: 2 * zeros - 1)
        for index in stride(from: 0, to: list.count, by: 2) { list[index] = UInt8(ascii: "0") }
        return try BodyCompression.compress(Array(prefix.utf8) + list + Array(suffix.utf8), algorithm: .gzip)
    }

    /// Resident and peak resident memory of a process, in bytes, from /proc/PID/status.
    static func memory(_ pid: pid_t) throws -> (rss: Int, peak: Int) {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func kilobytes(_ key: String) -> Int {
            let line = status.split(separator: "\n").first { $0.hasPrefix(key + ":") } ?? ""
            return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
        }
        return (kilobytes("VmRSS"), kilobytes("VmHWM"))
    }

    /// One request on a fresh connection; the status code, or 0 when no answer came.
    static func send(port: Int, path: String, token: String, headers: [String], body: [UInt8]) async -> Int {
        (try? await offThePool { () -> Int in
            let socket = try RawSocket(port: port)
            // Requests may queue for the gateway's memory budget: wait long on a loaded machine.
            var timeout = timeval(tv_sec: 300, tv_usec: 0)
            setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.count)\r\nAuthorization: Bearer \(token)\r\n"
            for header in headers { head += header + "\r\n" }
            let bytes = Array((head + "\r\n").utf8) + body
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(socket.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                sent += n
            }
            guard let answer = socket.blockingReadResponse(), let status = Int(answer.dropFirst(9).prefix(3)) else { return 0 }
            return status
        }) ?? 0
    }

    @Test("100 gzip bombs of JSON at once grow the gateway's RSS by at most 256 MiB, and well-formed requests keep working",
          .disabled(if: ProcessInfo.processInfo.environment["GATEWAY_TEST_SANITIZER"] != nil,
                    "an RSS bound: a sanitizer's shadow memory counts in it (scripts/test --sanitizer)"))
    func gzipBombs() async throws {
        let executable = try #require(gatewayExecutable(), "moderation-gateway executable not found; run swift build first")
        let setup = try TestSetup()
        let port = try #require(freePort())
        let yaml = setup.yaml(tritonURL: Environment.tritonURL ?? "", port: port, overrides: [
            "listen": "listen:\n  host: 127.0.0.1\n  port: \(port)\n  max_connections_per_peer: 512\n",
            "limits": "limits:\n  max_body_bytes: \(Self.inflatedBytes + 1024)\n  max_concurrent_upstream: 16\n",
            "timeouts": "timeouts:\n  connect: 5\n  request: 300\n  upstream_deadline: 60\n",
            "routes": "routes:\n  default: moderation\n  models:\n    moderation:\n      model: moderation_a\n",
            "logging": "logging:\n  level: error\n  format: json\n",
        ])
        let process = try startGatewayBinary(executable, yaml: yaml, in: setup.directory)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        let token = try setup.token(roles: ["inference"])
        let image = try SampleImages.smallJPEG()
        let moderateBody = Array(#"{"image":"\#(Data(image).base64EncodedString())"}"#.utf8)
        let inferBody = Array(#"{"inputs":[{"name":"INPUT0","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#.utf8)
        let json = ["Content-Type: application/json"]
        func wellFormed() async -> [Int] {
            [await Self.send(port: port, path: "/v1/moderate", token: token, headers: json, body: moderateBody),
             await Self.send(port: port, path: "/v2/models/identity_fp32/infer", token: token, headers: json, body: inferBody)]
        }
        let up = try await eventually(60) {
            guard process.isRunning else { return false }
            return (try? await plainHTTP(port: port, method: "GET", path: "/healthz", token: nil))?.status == 200
        }
        try #require(up, "the gateway binary did not start")
        for _ in 0..<3 { #expect(await wellFormed() == [200, 200], "before the bombs") }
        let before = try Self.memory(process.processIdentifier)

        // Half for /v1/moderate (no image among four million zeros), half for the KServe
        // validator (a [1,3] tensor whose data holds four million zeros).
        let moderateBomb = try Self.bomb(#"{"padding":["#, "]}")
        let inferBomb = try Self.bomb(#"{"inputs":[{"name":"INPUT0","shape":[1,3],"datatype":"FP32","data":["#, "]}]}")
        let gzipJSON = json + ["Content-Encoding: gzip"]
        let (bombStatuses, duringStatuses) = await withTaskGroup(of: (Bool, [Int]).self) { group in
            for index in 0..<100 {
                group.addTask {
                    let status = index % 2 == 0
                        ? await Self.send(port: port, path: "/v1/moderate", token: token, headers: gzipJSON, body: moderateBomb)
                        : await Self.send(port: port, path: "/v2/models/identity_fp32/infer", token: token, headers: gzipJSON, body: inferBomb)
                    return (true, [status])
                }
            }
            for _ in 0..<5 { group.addTask { (false, await wellFormed()) } }
            var bombs: [Int] = []
            var during: [Int] = []
            for await (isBomb, statuses) in group {
                if isBomb { bombs += statuses } else { during += statuses }
            }
            return (bombs, during)
        }
        let after = try Self.memory(process.processIdentifier)
        let growth = after.peak - before.rss
        #expect(growth <= 256 << 20, "RSS grew by \(growth >> 20) MiB (before \(before.rss >> 20) MiB, peak \(after.peak >> 20) MiB)")
        #expect(bombStatuses.allSatisfy { $0 == 400 || $0 == 413 }, "every bomb is refused: \(Dictionary(grouping: bombStatuses) { $0 }.mapValues(\.count))")
        #expect(duringStatuses.allSatisfy { $0 == 200 }, "well-formed requests during the bombs: \(duringStatuses)")
        #expect(await wellFormed() == [200, 200], "after the bombs")
    }
}
