import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TritonClient

/// The real gateway over HTTP in front of the real Triton serving the fixture
/// repository (`TRITON_URL`). Every refusal also checks that Triton's
/// inference count for the model did not move.
@Suite(.enabled(if: Environment.tritonURL != nil, "needs TRITON_URL (scripts/test starts it)"), .serialized)
struct EndToEndTests {
    let setup: TestSetup
    let tritonURL: String

    init() throws {
        setup = try TestSetup()
        tritonURL = Environment.tritonURL ?? ""
    }

    func withGateway(route: String = "identity_bytes", overrides: [String: String] = [:], _ body: @Sendable (any TestClientProtocol, Int) async throws -> Void) async throws {
        try await withLiveGateway(setup, tritonURL: tritonURL, model: route, overrides: overrides, body)
    }

    func expectProblem(_ response: TestResponse, _ status: HTTPResponse.Status, _ note: String = "") throws {
        #expect(response.status == status, "\(note)")
        #expect(response.headers[.contentType] == "application/problem+json", "\(note)")
        let problem = try response.problem()
        #expect(problem.instance == response.headers[.requestIDHeader], "\(note)")
        #expect(problem.status == Int(status.code), "\(note)")
    }

    @Test func jsonAndBinaryInferMatchDirectTriton() async throws {
        let token = try setup.token()
        let jsonBody = Array(#"{"inputs":[{"name":"INPUT0","shape":[1,3],"datatype":"FP32","data":[1.5,2.5,-3]}]}"#.utf8)
        let direct = try await rawCall(tritonURL, "POST", "/v2/models/identity_fp32/infer", headers: [("Content-Type", "application/json")], body: jsonBody)
        let header = #"{"inputs":[{"name":"INPUT0","shape":[1,1],"datatype":"BYTES","parameters":{"binary_data_size":9}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]}"#
        let binaryBody = Array(header.utf8) + [5, 0, 0, 0] + Array("hello".utf8)
        let directBinary = try await rawCall(tritonURL, "POST", "/v2/models/identity_bytes/infer",
                                             headers: [("Inference-Header-Content-Length", String(header.utf8.count))], body: binaryBody)
        try await withGateway { client, _ in
            let viaGateway = try await client.execute(
                uri: "/v2/models/identity_fp32/infer", method: .post,
                headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/json")]), body: ByteBuffer(bytes: jsonBody))
            #expect(viaGateway.status == .ok)
            #expect(Array(buffer: viaGateway.body) == direct.body)
            let binary = try await client.execute(
                uri: "/v2/models/identity_bytes/infer", method: .post,
                headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/octet-stream"), (.inferHeaderLength, String(header.utf8.count))]),
                body: ByteBuffer(bytes: binaryBody))
            #expect(binary.status == .ok)
            #expect(Array(buffer: binary.body) == directBinary.body)
            #expect(binary.headers[.inferHeaderLength] == directBinary.header("Inference-Header-Content-Length"))
        }
    }

    @Test func metadataConfigReadyAndStatsPassThrough() async throws {
        let token = try setup.token()
        try await withGateway { client, _ in
            for path in ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/identity_fp32", "/v2/models/identity_fp32/config",
                         "/v2/models/identity_fp32/ready", "/v2/models/identity_fp32/versions/1/stats"] {
                let response = try await client.execute(uri: path, method: .get, headers: fields([(.authorization, "Bearer \(token)")]))
                #expect(response.status == .ok, "\(path)")
            }
            let unknown = try await client.execute(uri: "/v2/models/missing_model/config", method: .get, headers: fields([(.authorization, "Bearer \(token)")]))
            #expect(unknown.status.code >= 400 && unknown.status.code < 500)
            #expect(!unknown.text.contains("missing_model"), "Triton's own message is not echoed")
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .ok)
        }
    }

    /// Admin calls Triton refuses are answered as refusals, never as the gateway's 5xx:
    /// an empty body reaches Triton as `{}` (Triton answers 500 to an empty body on these
    /// endpoints), and a load or unload its model control mode forbids is 409 (Triton says 503).
    @Test func adminCallsTritonRefusesAreNotServerErrors() async throws {
        let admin = fields([(.authorization, "Bearer \(try setup.token(roles: ["admin"]))")])
        try await withGateway { client, _ in
            for path in ["/v2/trace/setting", "/v2/logging", "/v2/models/identity_fp32/trace/setting"] {
                let response = try await client.execute(uri: path, method: .post, headers: admin)
                #expect(response.status == .ok, "\(path) without a body reads the settings: \(response.text)")
            }
            let register = try await client.execute(uri: "/v2/systemsharedmemory/region/r1/register", method: .post, headers: admin)
            try expectProblem(register, .badRequest, "register without a body")
            // The fixture Triton runs without explicit model control (no model named here is touched).
            for action in ["load", "unload"] {
                let response = try await client.execute(uri: "/v2/repository/models/no_such_model/\(action)", method: .post, headers: admin)
                try expectProblem(response, .conflict, action)
                #expect(try response.problem().type.hasSuffix("/model-control-disabled"), "\(action)")
            }
        }
    }

    @Test func requestRowsAreRefusedBeforeTriton() async throws {
        let token = try setup.token()
        let clientToken = try setup.token(roles: ["client"])
        let before = try await inferenceCount(tritonURL, model: "guarded_fp32")
        let beforeBytes = try await inferenceCount(tritonURL, model: "guarded_bytes")
        let header = #"{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":12}}]}"#
        let bytesHeader = #"{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":8}}]}"#
        let sumHeader = #"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#
        struct Row { var name: String; var method: HTTPRequest.Method = .post; var uri: String; var headers: [(HTTPField.Name, String)]; var body: [UInt8]; var status: HTTPResponse.Status }
        let auth: (HTTPField.Name, String) = (.authorization, "Bearer \(token)")
        let rows: [Row] = [
            Row(name: "body over limit (Content-Length)", uri: "/v1/moderate", headers: [auth, (.contentType, "image/jpeg")], body: [UInt8](repeating: 0xFF, count: 70_000), status: .contentTooLarge),
            Row(name: "malformed JSON", uri: "/v1/moderate", headers: [auth, (.contentType, "application/json")], body: Array("{\"image\":".utf8), status: .badRequest),
            Row(name: "bad base64", uri: "/v1/moderate", headers: [auth, (.contentType, "application/json")], body: Array("{\"image\":\"%%%\"}".utf8), status: .badRequest),
            Row(name: "wrong content type", uri: "/v1/moderate", headers: [auth, (.contentType, "text/html")], body: try SampleImages.smallJPEG(), status: .unsupportedMediaType),
            Row(name: "missing content type", uri: "/v1/moderate", headers: [auth], body: try SampleImages.smallJPEG(), status: .unsupportedMediaType),
            Row(name: "not an image", uri: "/v1/moderate", headers: [auth, (.contentType, "image/png")], body: Array("GIF? no: plain text".utf8), status: .unsupportedMediaType),
            Row(name: "truncated image", uri: "/v1/moderate", headers: [auth, (.contentType, "image/jpeg")], body: Array(try SampleImages.smallJPEG().prefix(4)), status: .unprocessableContent),
            Row(name: "decompression bomb", uri: "/v1/moderate", headers: [auth, (.contentType, "image/png")], body: SampleImages.pngHeader(width: 50_000, height: 50_000), status: .contentTooLarge),
            Row(name: "bad datatype", uri: "/v2/models/guarded_fp32/infer", headers: [auth, (.contentType, "application/json")],
                body: Array(#"{"inputs":[{"name":"INPUT0","shape":[1,1],"datatype":"FLOAT","data":[1]}]}"#.utf8), status: .badRequest),
            Row(name: "shape x size != bytes", uri: "/v2/models/guarded_fp32/infer", headers: [auth, (.inferHeaderLength, String(header.utf8.count))],
                body: Array(header.utf8) + [UInt8](repeating: 0, count: 12), status: .badRequest),
            Row(name: "BYTES prefix overruns", uri: "/v2/models/guarded_bytes/infer", headers: [auth, (.inferHeaderLength, String(bytesHeader.utf8.count))],
                body: Array(bytesHeader.utf8) + [0xFF, 0, 0, 0, 1, 2, 3, 4], status: .badRequest),
            Row(name: "binary_data_size sum != body", uri: "/v2/models/guarded_fp32/infer", headers: [auth, (.inferHeaderLength, String(sumHeader.utf8.count))],
                body: Array(sumHeader.utf8) + [UInt8](repeating: 0, count: 9), status: .badRequest),
            Row(name: "model name outside the alphabet", method: .get, uri: "/v2/models/guarded$fp32/ready", headers: [auth], body: [], status: .badRequest),
            Row(name: "dot-dot", method: .get, uri: "/v2/models/..%2F..%2Frepository/ready", headers: [auth], body: [], status: .badRequest),
            Row(name: "encoded slash", method: .get, uri: "/v2/models/guarded_fp32%2fconfig", headers: [auth], body: [], status: .badRequest),
            Row(name: "encoded CR/LF", method: .get, uri: "/v2/models/guarded_fp32%0d%0aX-Evil:1/ready", headers: [auth], body: [], status: .badRequest),
            Row(name: "repository as non-admin", uri: "/v2/repository/models/guarded_fp32/unload", headers: [(.authorization, "Bearer \(clientToken)")], body: [], status: .forbidden),
            Row(name: "oversize headers", method: .get, uri: "/v2/models/guarded_fp32", headers: [auth, (HTTPField.Name("X-Pad")!, String(repeating: "p", count: 17_000))], body: [], status: .requestHeaderFieldsTooLarge),
        ]
        try await withGateway(route: "guarded_bytes") { client, _ in
            for row in rows {
                let response = try await client.execute(uri: row.uri, method: row.method, headers: fields(row.headers), body: ByteBuffer(bytes: row.body))
                try expectProblem(response, row.status, row.name)
            }
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: fields([(.authorization, "Bearer \(try setup.token(roles: ["admin"]))")]))
            #expect(metrics.text.contains("gateway_requests_total{route=\"/v1/moderate\",status_class=\"4xx\""))
        }
        #expect(try await inferenceCount(tritonURL, model: "guarded_fp32") == before)
        #expect(try await inferenceCount(tritonURL, model: "guarded_bytes") == beforeBytes)
    }

    @Test func jwtRowsAre401Or431Or403() async throws {
        let secret = setup.secret
        let future = String(Int(Date().timeIntervalSince1970) + 600)
        let past = String(Int(Date().timeIntervalSince1970) - 600)
        let good = TokenForge.claims(exp: future)
        let h = #"{"alg":"HS256","typ":"JWT","kid":"test"}"#
        let valid = TokenForge.hs256(header: h, payload: good, key: secret)
        var flipped = Array(valid.utf8)
        flipped[flipped.count - 3] = flipped[flipped.count - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let rows: [(String, String?, HTTPResponse.Status)] = [
            ("alg none", TokenForge.b64url(Array(#"{"alg":"none"}"#.utf8)) + "." + TokenForge.b64url(Array(good.utf8)) + ".", .unauthorized),
            ("alg NoNe", TokenForge.b64url(Array(#"{"alg":"NoNe","kid":"test"}"#.utf8)) + "." + TokenForge.b64url(Array(good.utf8)) + ".", .unauthorized),
            ("alg hs256", TokenForge.hs256(header: #"{"alg":"hs256","kid":"test"}"#, payload: good, key: secret), .unauthorized),
            ("empty HMAC key", TokenForge.hs256(header: h, payload: good, key: []), .unauthorized),
            ("wrong key", TokenForge.hs256(header: h, payload: good, key: Array(repeating: 7, count: 48)), .unauthorized),
            ("flipped byte", String(decoding: flipped, as: UTF8.self), .unauthorized),
            ("kid path", TokenForge.hs256(header: #"{"alg":"HS256","kid":"../../etc/passwd"}"#, payload: good, key: secret), .unauthorized),
            ("kid sql", TokenForge.hs256(header: #"{"alg":"HS256","kid":"x' OR 1=1"}"#, payload: good, key: secret), .unauthorized),
            ("crit", TokenForge.hs256(header: #"{"alg":"HS256","kid":"test","crit":["anything"]}"#, payload: good, key: secret), .unauthorized),
            ("missing exp", TokenForge.hs256(header: h, payload: TokenForge.claims(), key: secret), .unauthorized),
            ("expired", TokenForge.hs256(header: h, payload: TokenForge.claims(exp: past), key: secret), .unauthorized),
            ("not yet valid", TokenForge.hs256(header: h, payload: TokenForge.claims(exp: future, nbf: future), key: secret), .unauthorized),
            ("exp as string", TokenForge.hs256(header: h, payload: TokenForge.claims(exp: "\"\(future)\""), key: secret), .unauthorized),
            ("exp as float", TokenForge.hs256(header: h, payload: TokenForge.claims(exp: future + ".5"), key: secret), .unauthorized),
            ("wrong iss", TokenForge.hs256(header: h, payload: TokenForge.claims(iss: "other", exp: future), key: secret), .unauthorized),
            ("aud without ours", TokenForge.hs256(header: h, payload: TokenForge.claims(aud: "[\"a\",\"b\"]", exp: future), key: secret), .unauthorized),
            ("oversize", String(repeating: "a", count: 9000), .requestHeaderFieldsTooLarge),
            ("missing", nil, .unauthorized),
        ]
        let before = try await inferenceCount(tritonURL, model: "guarded_fp32")
        let body = Array(#"{"inputs":[{"name":"INPUT0","shape":[1,1],"datatype":"FP32","data":[1]}]}"#.utf8)
        try await withGateway { client, _ in
            for (name, token, status) in rows {
                var headers = fields([(.contentType, "application/json")])
                if let token { headers[.authorization] = "Bearer \(token)" }
                let response = try await client.execute(uri: "/v2/models/guarded_fp32/infer", method: .post, headers: headers, body: ByteBuffer(bytes: body))
                try expectProblem(response, status, name)
                if status == .unauthorized { #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true, "\(name)") }
                if let token, token.count > 20 { #expect(!response.text.contains(token.prefix(20)), "\(name): token echoed") }
            }
            for header in ["Basic dXNlcjpwYXNz", "Bearer \(valid) \(valid)", "Bearer  \(valid)", "Bearer junk"] {
                let response = try await client.execute(uri: "/v2/models/guarded_fp32/infer", method: .post,
                                                        headers: fields([(.authorization, header), (.contentType, "application/json")]), body: ByteBuffer(bytes: body))
                try expectProblem(response, .unauthorized, header.prefix(12).description)
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            }
            // Key URLs in the header are ignored for key choice: a valid token with them still verifies by kid.
            let withURLs = TokenForge.hs256(header: #"{"alg":"HS256","kid":"test","jku":"http://127.0.0.1:9/jwks","x5u":"http://127.0.0.1:9/x5u"}"#, payload: good, key: secret)
            let accepted = try await client.execute(uri: "/v2/models/guarded_fp32/infer", method: .post,
                                                    headers: fields([(.authorization, "Bearer \(withURLs)"), (.contentType, "application/json")]), body: ByteBuffer(bytes: body))
            #expect(accepted.status == .ok)
            let admin = try await client.execute(uri: "/v2/repository/index", method: .post, headers: fields([(.authorization, "Bearer \(valid)")]))
            try expectProblem(admin, .forbidden, "wrong role")
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: fields([(.authorization, "Bearer \(try setup.token(roles: ["admin"]))")]))
            #expect(metrics.text.contains("gateway_auth_failures_total{reason=\"expired\"}"))
        }
        #expect(try await inferenceCount(tritonURL, model: "guarded_fp32", reaching: before + 1) == before + 1)
    }

    @Test func slowClientsGet408AndConnectionsPerPeerAreCapped() async throws {
        try await withGateway(overrides: [
            "timeouts": "timeouts:\n  connect: 1\n  request: 1\n  upstream_deadline: 5\n",
            "listen": "listen:\n  host: 127.0.0.1\n  port: 0\n  max_connections_per_peer: 3\n",
        ]) { client, port in
            let trickle = try RawSocket(port: port)
            trickle.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            let answer = await trickle.readAll()
            #expect(answer.hasPrefix("HTTP/1.1 408"), "headers trickled: \(answer.prefix(40))")

            let slowBody = try RawSocket(port: port)
            slowBody.send("POST /v1/moderate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(try setup.token(roles: ["client"]))\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n\u{FF}\u{D8}")
            let bodyAnswer = await slowBody.readAll()
            #expect(bodyAnswer.hasPrefix("HTTP/1.1 408"), "body trickled: \(bodyAnswer.prefix(40))")

            // Three connections the gateway has certainly accepted: each got an answer.
            let held = try (0..<3).map { _ in try RawSocket(port: port) }
            for socket in held {
                socket.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(await socket.readResponse()?.hasPrefix("HTTP/1.1 200") == true)
            }
            let extra = try RawSocket(port: port)
            extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await extra.readAll().isEmpty, "a connection over the per-peer cap is closed without an answer")
            _ = held
        }
    }

    @Test func connectionsAreCappedInTotalAcrossPeers() async throws {
        try await withGateway(overrides: [
            "listen": "listen:\n  host: 127.0.0.1\n  port: 0\n  max_connections: 4\n  max_connections_per_peer: 3\n",
        ]) { client, port in
            // The test client's keep-alive connection is one of the four.
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            // Three more from two peers, each certainly accepted (each got an answer).
            let held = try ["127.0.0.1", "127.0.0.1", "127.0.0.2"].map { try RawSocket(port: port, source: $0) }
            for socket in held {
                socket.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(await socket.readResponse()?.hasPrefix("HTTP/1.1 200") == true)
            }
            let extra = try RawSocket(port: port, source: "127.0.0.3")
            extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await extra.readAll().isEmpty, "a connection over the total cap is closed without an answer, whatever its peer")
            // A connection that ends frees its place.
            held[0].send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            _ = await held[0].readAll()
            let served = try await eventually(30) {
                let socket = try RawSocket(port: port, source: "127.0.0.3")
                socket.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return await socket.readAll().hasPrefix("HTTP/1.1 200")
            }
            #expect(served, "a place freed by a closed connection is given to the next one")
        }
    }

    @Test func bodyDeadlineHoldsOnKeepAliveAndNeverAddsASecondAnswer() async throws {
        try await withGateway(overrides: [
            "timeouts": "timeouts:\n  connect: 1\n  request: 1\n  upstream_deadline: 5\n",
        ]) { _, port in
            // A quick request, then on the same connection one whose body trickles: 200, then 408.
            let keepAlive = try RawSocket(port: port)
            keepAlive.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let first = await keepAlive.readResponse() ?? ""
            #expect(first.hasPrefix("HTTP/1.1 200"), "first answer: \(first.prefix(40))")
            keepAlive.send("POST /v1/moderate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(try setup.token(roles: ["client"]))\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n\u{FF}\u{D8}")
            let rest = await keepAlive.readAll()
            #expect(rest.hasPrefix("HTTP/1.1 408"), "the trickled body of the second request gets 408: \(rest.prefix(40))")
            #expect(rest.components(separatedBy: "HTTP/1.1 ").count == 2, "exactly one answer to the second request: \(rest)")

            // Refused before its body is read (no token): one 401, then the connection closes
            // when the rest of the body does not come, without a 408 after the 401.
            let early = try RawSocket(port: port)
            early.send("POST /v1/moderate HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n\u{FF}\u{D8}")
            let only = await early.readAll()
            #expect(only.hasPrefix("HTTP/1.1 401"), "answer: \(only.prefix(40))")
            #expect(!only.contains("HTTP/1.1 408"), "no second answer after the 401: \(only)")
        }
    }

    @Test func upstreamDeadlineIs504AndTheTransferIsAborted() async throws {
        let token = try setup.token()
        let body = Array(#"{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[1]}],"parameters":{"delay_ms":10000}}"#.utf8)
        try await withGateway(overrides: ["timeouts": "timeouts:\n  connect: 1\n  request: 5\n  upstream_deadline: 1\n"]) { client, _ in
            let clock = ContinuousClock()
            let start = clock.now
            let response = try await client.execute(uri: "/v2/models/slow/infer", method: .post,
                                                    headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/json")]), body: ByteBuffer(bytes: body))
            let elapsed = clock.now - start
            try expectProblem(response, .gatewayTimeout)
            // Relative, not tight: answered at the 1 s deadline, before the model's 10 s were over.
            #expect(elapsed < .seconds(10), "answered at the deadline, not when Triton finished (\(elapsed))")
        }
    }

    @Test func pythonTritonClientAndPerfAnalyzerWorkThroughTheGateway() async throws {
        let token = try setup.token()
        try await withGateway(overrides: ["rate_limit": "rate_limit:\n  enabled: false\n"]) { _, port in
            let script = """
                import sys, numpy as np, tritonclient.http as http
                gw, direct, token = sys.argv[1], sys.argv[2], sys.argv[3]
                h = lambda: {"Authorization": "Bearer " + token}  # tritonclient adds to the dict it is given
                def run(url, make_headers, binary, coding):
                    c = http.InferenceServerClient(url)
                    z = dict(request_compression_algorithm=coding, response_compression_algorithm=coding)
                    x = np.arange(12, dtype=np.float32).reshape(1, 12)
                    i = http.InferInput("INPUT0", list(x.shape), "FP32"); i.set_data_from_numpy(x, binary_data=binary)
                    o = http.InferRequestedOutput("OUTPUT0", binary_data=binary)
                    r = c.infer("identity_fp32", [i], outputs=[o], headers=make_headers(), **z)
                    b = np.array([b"abc", b"", "h\\u00e9".encode()], dtype=np.object_).reshape(1, 3)
                    j = http.InferInput("INPUT0", [1, 3], "BYTES"); j.set_data_from_numpy(b, binary_data=binary)
                    s = c.infer("identity_bytes", [j], headers=make_headers(), **z)
                    assert c.is_model_ready("identity_fp32", headers=make_headers())
                    meta = c.get_model_metadata("identity_fp32", headers=make_headers())
                    return r.as_numpy("OUTPUT0").tolist(), s.as_numpy("OUTPUT0").tolist(), meta["name"]
                for binary in (True, False):
                    for coding in (None, "gzip", "deflate"):  # request bodies compressed as tritonclient does it
                        a = run(gw, h, binary, coding); b = run(direct, dict, binary, coding)
                        assert a == b, (binary, coding, a, b)
                try:
                    http.InferenceServerClient(gw).get_model_metadata("identity_fp32")
                    print("unauthenticated call succeeded"); sys.exit(1)
                except Exception as e:
                    assert "bearer" in str(e).lower() or "401" in str(e), str(e)
                print("PARITY-OK")
                """
            let direct = tritonURL.replacingOccurrences(of: "http://", with: "")
            let (rc, output) = try await runProcess(Environment.python, ["-c", script, "127.0.0.1:\(port)", direct, token])
            #expect(rc == 0, "\(output)")
            #expect(output.contains("PARITY-OK"), "\(output)")

            let (prc, poutput) = try await runProcess(Environment.perfAnalyzer, [
                "-m", "identity_fp32", "-u", "127.0.0.1:\(port)", "-H", "Authorization: Bearer \(token)", "--shape", "INPUT0:16",
                "--concurrency-range", "2", "--measurement-interval", "1000", "--stability-percentage", "80", "--max-trials", "10",
            ])
            #expect(prc == 0, "\(poutput.suffix(2000))")
            #expect(poutput.contains("Throughput"), "\(poutput.suffix(2000))")
        }
    }
}
