import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import Testing
import TritonClient

/// Rows of SECURITY.md and DESIGN.md shown against the real gateway over HTTP and the real
/// Triton serving the fixture repository: a chunked body over the limit, control characters
/// in headers and in KServe `id`/`parameters`, a variant whose model is not loaded, the
/// `traceparent` Triton receives, the JSON access log's ids, and the upstream transfer that
/// is really closed at the deadline.
@Suite(.enabled(if: Environment.tritonURL != nil, "needs TRITON_URL (scripts/test starts it)"), .serialized)
struct SecurityRowsTests {
    let setup: TestSetup
    let tritonURL: String

    init() throws {
        setup = try TestSetup()
        tritonURL = Environment.tritonURL ?? ""
    }

    /// Routes to `guarded_rows`, a model only this suite calls, so the inference counts it
    /// checks are not moved by suites running at the same time.
    func withGateway(tritonURL: String? = nil, route: String = "guarded_rows", overrides: [String: String] = [:],
                     _ body: @Sendable (any TestClientProtocol, Int) async throws -> Void) async throws {
        try await withLiveGateway(setup, tritonURL: tritonURL ?? self.tritonURL, model: route, overrides: overrides, body)
    }

    /// The status code of an HTTP/1.1 response's status line, or nil.
    static func status(_ response: String?) -> Int? {
        guard let line = response?.split(separator: "\r\n").first else { return nil }
        let parts = line.split(separator: " ")
        return parts.count >= 2 ? Int(parts[1]) : nil
    }

    @Test("a chunked body over the limit is refused with 413 before it ends, and nothing reaches Triton")
    func chunkedBodyOverTheLimit() async throws {
        let token = try setup.token()
        let before = try await inferenceCount(tritonURL, model: "guarded_rows")
        try await withGateway { _, port in
            for (path, type) in [("/v2/models/guarded_rows/infer", "application/json"), ("/v1/moderate", "image/png")] {
                let socket = try RawSocket(port: port)
                socket.send("POST \(path) HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(token)\r\nContent-Type: \(type)\r\nTransfer-Encoding: chunked\r\n\r\n")
                // 80 KiB in 16 KiB chunks against a 64 KiB limit, and no last chunk: the
                // answer can only come from counting while the body streams in.
                let chunk = String(repeating: "0", count: 16_384)
                for _ in 0..<5 { socket.send("4000\r\n\(chunk)\r\n") }
                let answer = await socket.readResponse()
                #expect(Self.status(answer) == 413, "\(path): \(answer?.prefix(300) ?? "no answer")")
                #expect(answer?.contains("application/problem+json") == true, "\(path)")
            }
        }
        #expect(try await inferenceCount(tritonURL, model: "guarded_rows") == before)
    }

    @Test("NUL or a bare CR in X-Request-Id or traceparent is 400, and the value is not echoed")
    func controlCharactersInHeaders() async throws {
        let token = try setup.token()
        try await withGateway { _, port in
            for (name, value) in [("X-Request-Id", "abc\u{0}def"), ("X-Request-Id", "abc\rInjected: 1"),
                                  ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\u{0}x")] {
                let socket = try RawSocket(port: port)
                socket.send("GET /v2/models/guarded_rows/ready HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(token)\r\n\(name): \(value)\r\n\r\n")
                let answer = await socket.readAll()
                #expect(Self.status(answer) == 400, "\(name) \(value.debugDescription): \(answer.prefix(300))")
                #expect(!answer.contains("Injected") && !answer.contains("def"), "\(answer.prefix(300))")
            }
        }
    }

    @Test("CR, LF or NUL in a KServe request's id or parameters is 400 before Triton")
    func controlCharactersInKServeIdAndParameters() async throws {
        let token = try setup.token()
        let before = try await inferenceCount(tritonURL, model: "guarded_rows")
        let input = #"{"name":"INPUT0","shape":[1,1],"datatype":"FP32","data":[1]"#
        let bodies = [
            #"{"id":"a\r\nX-Evil: 1","inputs":[\#(input)}]}"#,
            #"{"id":"a\u0000b","inputs":[\#(input)}]}"#,
            #"{"parameters":{"note":"a\r\nX-Evil: 1"},"inputs":[\#(input)}]}"#,
            #"{"parameters":{"note\n":"plain"},"inputs":[\#(input)}]}"#,
            #"{"inputs":[\#(input),"parameters":{"tag":"x\u0000y"}}]}"#,
            #"{"inputs":[\#(input)}],"outputs":[{"name":"OUTPUT0","parameters":{"tag":"x\ry"}}]}"#,
        ]
        try await withGateway { client, _ in
            for body in bodies {
                let response = try await client.execute(
                    uri: "/v2/models/guarded_rows/infer", method: .post,
                    headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/json")]), body: ByteBuffer(string: body))
                #expect(response.status == .badRequest, "\(body): \(response.text)")
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(!response.text.contains("X-Evil"))
            }
            // The same request without the control characters is served.
            let clean = try await client.execute(
                uri: "/v2/models/identity_fp32/infer", method: .post,
                headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/json")]),
                body: ByteBuffer(string: #"{"id":"a b","parameters":{"note":"fine"},"inputs":[\#(input)}]}"#))
            #expect(clean.status == .ok, "\(clean.text)")
        }
        #expect(try await inferenceCount(tritonURL, model: "guarded_rows") == before)
    }

    @Test("traceparent: Triton receives the client's trace id with the gateway's own span")
    func traceparentReachesTriton() async throws {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let request = #"{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[1]}]}"#
        try await withGateway { client, _ in
            let response = try await client.execute(
                uri: "/v2/models/echo_parameters/infer", method: .post,
                headers: fields([(.authorization, "Bearer \(try setup.token(roles: ["admin"]))"), (.contentType, "application/json"),
                                 (.traceparentHeader, incoming)]),
                body: ByteBuffer(string: request))
            #expect(response.status == .ok, "\(response.text)")
            let seen = try Self.parametersTritonSaw(response)
            let traceparent = try #require(seen["traceparent"] as? String, "Triton saw no traceparent: \(seen)")
            let parts = traceparent.split(separator: "-").map(String.init)
            #expect(parts.count == 4 && parts[0] == "00", "\(traceparent)")
            #expect(parts[1] == "4bf92f3577b34da6a3ce929d0e0e4736", "the client's trace continues upstream: \(traceparent)")
            #expect(parts[2] != "00f067aa0ba902b7" && parts[2].count == 16, "the gateway's own span is the parent: \(traceparent)")
            #expect(seen["x-request-id"] as? String == response.headers[.requestIDHeader], "Triton knows the request by the gateway's id")

            // Without one from the client, the gateway starts a trace and Triton still gets it.
            let fresh = try await client.execute(
                uri: "/v2/models/echo_parameters/infer", method: .post,
                headers: fields([(.authorization, "Bearer \(try setup.token(roles: ["admin"]))"), (.contentType, "application/json")]),
                body: ByteBuffer(string: request))
            let started = try Self.parametersTritonSaw(fresh)["traceparent"] as? String
            #expect(started?.wholeMatch(of: /00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]/) != nil, "\(started ?? "none")")
        }
    }

    /// The request parameters `echo_parameters` returns: what Triton handed the model,
    /// the HTTP headers it forwards (`--http-header-forward-pattern`) included.
    static func parametersTritonSaw(_ response: TestResponse) throws -> [String: Any] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
        let outputs = try #require(object["outputs"] as? [[String: Any]])
        let text = try #require((outputs.first?["data"] as? [Any])?.first as? String)
        let seen = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        // Header names as sent (curl keeps the gateway's spelling); compared without case.
        return Dictionary(seen.map { ($0.key.lowercased(), $0.value) }) { first, _ in first }
    }

    @Test("a variant whose model is not loaded answers 503 with Retry-After, and is served again once it is")
    func variantNotReady() async throws {
        let explicitURL = try #require(Environment.value("TRITON_EXPLICIT_URL"), "needs TRITON_EXPLICIT_URL (scripts/test starts it)")
        let token = try setup.token(roles: ["client"])
        // moderation_b is only ever loaded on the explicit-control Triton by this test.
        let load = try await rawCall(explicitURL, "POST", "/v2/repository/models/moderation_b/load")
        #expect(load.status == 200, "\(String(decoding: load.body, as: UTF8.self))")
        let image = try SampleImages.smallJPEG()
        try await withGateway(tritonURL: explicitURL, route: "moderation_b") { client, _ in
            let headers = fields([(.authorization, "Bearer \(token)"), (.contentType, "image/jpeg")])
            let served = try await client.execute(uri: "/v1/moderate", method: .post, headers: headers, body: ByteBuffer(bytes: image))
            #expect(served.status == .ok, "\(served.text)")

            let unload = try await rawCall(explicitURL, "POST", "/v2/repository/models/moderation_b/unload")
            #expect(unload.status == 200)
            #expect(try await eventually(60) { try await rawCall(explicitURL, "GET", "/v2/models/moderation_b/ready").status != 200 })
            let refused = try await client.execute(uri: "/v1/moderate", method: .post, headers: headers, body: ByteBuffer(bytes: image))
            #expect(refused.status == .serviceUnavailable, "\(refused.text)")
            #expect(refused.headers[.contentType] == "application/problem+json")
            #expect(Int(refused.headers[.retryAfter] ?? "") ?? 0 >= 1, "Retry-After in whole seconds")
            #expect(try refused.problem().instance == refused.headers[.requestIDHeader])

            let reload = try await rawCall(explicitURL, "POST", "/v2/repository/models/moderation_b/load")
            #expect(reload.status == 200)
            let again = try await client.execute(uri: "/v1/moderate", method: .post, headers: headers, body: ByteBuffer(bytes: image))
            #expect(again.status == .ok, "served again without a restart: \(again.text)")
        }
        _ = try await rawCall(explicitURL, "POST", "/v2/repository/models/moderation_b/unload")
    }

    @Test("the JSON access log names each request by the id the client got and by the client's trace id")
    func jsonLogCarriesRequestAndTraceIds() async throws {
        let executable = try #require(gatewayExecutable(), "moderation-gateway executable not found; run swift build first")
        let port = try #require(freePort())
        let log = setup.directory.appendingPathComponent("serve.log")
        let yaml = setup.yaml(tritonURL: tritonURL, port: port, overrides: [
            "logging": "logging:\n  level: info\n  format: json\n",
            "routes": "routes:\n  default: moderation\n  models:\n    moderation:\n      model: guarded_rows\n",
        ])
        let process = try startGatewayBinary(executable, yaml: yaml, in: setup.directory, output: log)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(try await eventually(60) { (try? await plainHTTP(port: port, method: "GET", path: "/healthz", token: nil))?.status == 200 })

        let token = try setup.token()
        let traceID = "0af7651916cd43dd8448eb211c80319c"
        let answer = try await offThePool { () -> String? in
            let socket = try RawSocket(port: port)
            socket.send("GET /v2/models/identity_fp32/ready HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(token)\r\n"
                + "traceparent: 00-\(traceID)-b7ad6b7169203331-01\r\nX-Request-Id: client-chosen-1\r\nConnection: close\r\n\r\n")
            return socket.blockingReadResponse()
        }
        #expect(Self.status(answer) == 200, "\(answer ?? "no answer")")
        let requestID = try #require(answer?.split(separator: "\r\n").first { $0.lowercased().hasPrefix("x-request-id:") }
            .map { String($0.dropFirst("x-request-id:".count)).trimmingCharacters(in: .whitespaces) })

        var line: [String: Any]?
        _ = try await eventually(30) {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            line = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .first { $0["msg"] as? String == "request" && $0["request.id"] as? String == requestID }
            return line != nil
        }
        let access = try #require(line, "no JSON access line for \(requestID) in \(((try? String(contentsOf: log, encoding: .utf8)) ?? "").suffix(600))")
        #expect(access["trace.id"] as? String == traceID)
        #expect(access["request.client_id"] as? String == "client-chosen-1")
        #expect(access["http.status"] as? String == "200" || access["http.status"] as? Int == 200)
        #expect(access["level"] as? String == "info")
    }

    @Test("at the upstream deadline the gateway answers 504 and closes the connection carrying the request, before Triton answers")
    func deadlineClosesTheUpstreamTransfer() async throws {
        let token = try setup.token()
        let target = try #require(URL(string: tritonURL))
        let relay = try ObservingRelay(upstreamPort: target.port ?? 8000)
        defer { relay.stop() }
        try await withGateway(tritonURL: "http://127.0.0.1:\(relay.port)", overrides: [
            "timeouts": "timeouts:\n  connect: 2\n  request: 30\n  upstream_deadline: 1\n  shutdown_grace: 2\n",
        ]) { client, _ in
            let body = #"{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[1]}],"parameters":{"delay_ms":12000}}"#
            let response = try await client.execute(
                uri: "/v2/models/slow/infer", method: .post,
                headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/json")]), body: ByteBuffer(string: body))
            #expect(response.status == .gatewayTimeout, "\(response.text)")
            // The connection that carried the request ends from the gateway's side well
            // before the model's 12 s are up, and no answer from Triton came through it.
            let closed = try await eventually(8) { relay.connection(carrying: "/v2/models/slow/infer")?.gatewayClosed == true }
            let connection = relay.connection(carrying: "/v2/models/slow/infer")
            #expect(connection != nil, "the request never went through the relay")
            #expect(closed, "the gateway kept the upstream transfer open after its 504")
            #expect(connection?.bytesFromTriton == 0, "Triton answered the request first: the transfer was not aborted")
        }
    }
}

/// A TCP relay in front of Triton that notes, per connection, what the gateway sent, when
/// the gateway's side ended, and how many bytes came back from Triton. When the gateway
/// closes, the relay closes its side to Triton, so Triton sees the close too.
final class ObservingRelay: @unchecked Sendable {
    struct Connection: Sendable {
        var sent = ""
        var gatewayClosed = false
        /// Bytes Triton sent since the gateway last sent something (a connection kept alive
        /// carries several requests: the readiness probe's, then the one under test).
        var bytesFromTriton = 0
    }

    let port: Int
    private let listener: Int32
    private let upstreamPort: Int
    private let connections = NIOLockedValueBox<[Connection]>([])
    private let stopped = NIOLockedValueBox(false)

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 16) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    func connection(carrying text: String) -> Connection? {
        connections.withLockedValue { $0.first { $0.sent.contains(text) } }
    }

    func stop() {
        stopped.withLockedValue { $0 = true }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while !stopped.withLockedValue({ $0 }) {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(upstreamPort).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { close(client); close(upstream); continue }
            let index = connections.withLockedValue { $0.append(Connection()); return $0.count - 1 }
            // Both descriptors are closed by whichever direction finishes last.
            let running = NIOLockedValueBox(2)
            let finish: @Sendable () -> Void = {
                if running.withLockedValue({ $0 -= 1; return $0 == 0 }) {
                    close(client)
                    close(upstream)
                }
            }
            Thread.detachNewThread { [self] in
                pump(from: client, to: upstream) { bytes in
                    self.connections.withLockedValue {
                        $0[index].sent += String(decoding: bytes.prefix(512), as: UTF8.self)
                        $0[index].bytesFromTriton = 0
                    }
                }
                connections.withLockedValue { $0[index].gatewayClosed = true }
                shutdown(upstream, Int32(SHUT_RDWR))
                finish()
            }
            Thread.detachNewThread { [self] in
                pump(from: upstream, to: client) { bytes in
                    self.connections.withLockedValue { $0[index].bytesFromTriton += bytes.count }
                }
                shutdown(client, Int32(SHUT_WR))
                finish()
            }
        }
    }

    /// Copies until `source` ends or fails (or `destination` refuses), noting each read.
    private func pump(from source: Int32, to destination: Int32, note: ([UInt8]) -> Void) {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = recv(source, &buffer, buffer.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            note(Array(buffer[0..<n]))
            var sent = 0
            while sent < n {
                let m = buffer[sent..<n].withUnsafeBytes { Glibc.send(destination, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if m < 0 && errno == EINTR { continue }
                guard m > 0 else { return }
                sent += m
            }
        }
    }
}
