import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import Testing
import TritonClient

/// Handler behaviour without sockets: the router answers, a recording transport
/// stands where Triton would be and shows what was (not) sent upstream.
@Suite struct RouterTests {
    let setup: TestSetup
    let transport: RecordingTransport
    let audit: RecordingAuditSink

    init() throws {
        setup = try TestSetup()
        transport = RecordingTransport()
        audit = RecordingAuditSink()
    }

    func withApp(overrides: [String: String] = [:], _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let configuration = try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: overrides)
        let app = try buildApplication(
            configuration: configuration, parts: GatewayParts(auditSink: audit, transport: transport), logger: quietLogger())
        try await app.test(.router) { client in try await body(client) }
    }

    func expectProblem(_ response: TestResponse, _ status: HTTPResponse.Status, slug: String? = nil) throws {
        #expect(response.status == status)
        #expect(response.headers[.contentType] == "application/problem+json")
        let problem = try response.problem()
        #expect(problem.status == Int(status.code))
        #expect(problem.instance == response.headers[.requestIDHeader])
        if let slug { #expect(problem.type.hasSuffix("/\(slug)")) }
    }

    @Test func healthzCarriesRequestIDTheGatewayMade() async throws {
        try await withApp { client in
            let generated = try await client.execute(uri: "/healthz", method: .get)
            #expect(generated.status == .ok)
            let again = try await client.execute(uri: "/healthz", method: .get)
            for id in [generated.headers[.requestIDHeader], again.headers[.requestIDHeader]] {
                // A version 4 UUID, lowercase: xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx.
                #expect(id?.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/) != nil, "\(id ?? "nil")")
            }
            #expect(generated.headers[.requestIDHeader] != again.headers[.requestIDHeader])
            // A client cannot choose the id the audit log and Triton know the request by
            // (it could reuse another request's): the gateway always makes it.
            let chosen = try await client.execute(uri: "/healthz", method: .get, headers: fields([(.requestIDHeader, "abc-123_X.y")]))
            #expect(chosen.headers[.requestIDHeader] != "abc-123_X.y")
            #expect(chosen.headers[.requestIDHeader]?.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/) != nil)
            #expect(audit.events.withLockedValue { $0.last?.requestID } == chosen.headers[.requestIDHeader])
            #expect(audit.events.withLockedValue { $0.last?.clientRequestID } == "abc-123_X.y", "the client's id is kept beside ours")
            let replaced = try await client.execute(uri: "/healthz", method: .get, headers: fields([(.requestIDHeader, "bad id with spaces")]))
            #expect(replaced.headers[.requestIDHeader] != "bad id with spaces")
        }
    }

    @Test func missingOrMalformedTokenIs401WithChallenge() async throws {
        try await withApp { client in
            for auth in [nil, "Basic dXNlcjpwYXNz", "Bearer", "Bearer a.b.c", "Bearer  \(try setup.token())"] as [String?] {
                var headers = HTTPFields()
                if let auth { headers[.authorization] = auth }
                headers[.contentType] = "image/jpeg"
                let response = try await client.execute(uri: "/v1/moderate", method: .post, headers: headers, body: ByteBuffer(bytes: try SampleImages.smallJPEG()))
                try expectProblem(response, .unauthorized, slug: "unauthorized")
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(!response.text.contains("dXNlcjpwYXNz"))
            }
        }
        #expect(transport.requests.isEmpty)
        // One audit record per refusal (an empty list would satisfy `allSatisfy` vacuously).
        let events = audit.events.withLockedValue { $0 }.filter { $0.endpoint == "/v1/moderate" }
        #expect(events.count == 5)
        #expect(events.allSatisfy { $0.status == 401 })
    }

    /// A path the gateway serves, asked with a method it does not serve there, is 405 with
    /// the methods it does serve in `Allow` (RFC 9110); a path it does not serve stays 404.
    @Test func knownPathWithAnotherMethodIs405WithAllow() async throws {
        try await withApp { client in
            let rows: [(HTTPRequest.Method, String, String)] = [
                (.init("TRACE")!, "/admin/traffic", "GET"), (.delete, "/v1/moderate", "POST"),
                (.get, "/v2/models/identity_fp32/infer", "POST"), (.put, "/v2/repository/models/m1/load", "POST"),
                (.post, "/healthz", "GET"), (.delete, "/console/app.js", "GET"),
            ]
            for (method, path, allow) in rows {
                let response = try await client.execute(uri: path, method: method)
                try expectProblem(response, .methodNotAllowed, slug: "method-not-allowed")
                #expect(response.headers[.allow] == allow, "\(method) \(path)")
            }
            for path in ["/nothing-here", "/v2/models/m1/unknown", "/admin"] {
                try expectProblem(try await client.execute(uri: path, method: .get), .notFound, slug: "not-found")
            }
        }
    }

    @Test func clientTokenOnAdminRouteIs403() async throws {
        let token = try setup.token(roles: ["client"])
        try await withApp { client in
            let response = try await client.execute(uri: "/v2/repository/index", method: .post, headers: fields([(.authorization, "Bearer \(token)")]))
            try expectProblem(response, .forbidden)
            let infer = try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: fields([(.authorization, "Bearer \(token)")]))
            try expectProblem(infer, .forbidden)
        }
        #expect(transport.requests.isEmpty)
    }

    @Test func modelOutsideTheRoleAllowlistIs403() async throws {
        let token = try setup.token(roles: ["inference"])
        try await withApp { client in
            let response = try await client.execute(uri: "/v2/models/identity_fp64/config", method: .get, headers: fields([(.authorization, "Bearer \(token)")]))
            try expectProblem(response, .forbidden)
        }
        #expect(transport.requests.isEmpty)
    }

    @Test func moderationBodyRefusals() async throws {
        let token = try setup.token(roles: ["client"])
        let jpeg = try SampleImages.smallJPEG()
        let cases: [(String?, [UInt8], HTTPResponse.Status, String)] = [
            (nil, jpeg, .unsupportedMediaType, "missing content type"),
            ("text/plain", jpeg, .unsupportedMediaType, "wrong content type"),
            ("image/png", jpeg, .unsupportedMediaType, "JPEG bytes sent as image/png"),
            ("image/png", Array("hello, not an image at all".utf8), .unsupportedMediaType, "not an image"),
            ("application/json", Array("{\"image\": ".utf8), .badRequest, "malformed JSON"),
            ("application/json", Array("{\"picture\": \"AAAA\"}".utf8), .badRequest, "missing image member"),
            ("application/json", Array("{\"image\": \"***not base64***\"}".utf8), .badRequest, "bad base64"),
            ("image/png", Array(SampleImages.pngHeader(width: 100, height: 100).prefix(14)), .unprocessableContent, "truncated header"),
            ("image/png", SampleImages.pngHeader(width: 60000, height: 60000), .contentTooLarge, "decompression bomb"),
            ("image/jpeg", [UInt8](repeating: 0xFF, count: 70000), .contentTooLarge, "over the body limit"),
        ]
        try await withApp { client in
            for (contentType, body, status, name) in cases {
                var headers = fields([(.authorization, "Bearer \(token)")])
                if let contentType { headers[.contentType] = contentType }
                let response = try await client.execute(uri: "/v1/moderate", method: .post, headers: headers, body: ByteBuffer(bytes: body))
                #expect(response.status == status, "\(name)")
                try expectProblem(response, status)
            }
        }
        #expect(transport.requests.isEmpty)
    }

    @Test func moderationSendsBinaryTensorAndMapsTheAnswer() async throws {
        let token = try setup.token(roles: ["client"])
        let jpeg = try SampleImages.smallJPEG()
        transport.setReply { _ in
            let body = """
                {"model_name":"moderation","model_version":"1","outputs":[
                {"name":"DECISION","datatype":"BYTES","shape":[1],"data":["review"]},
                {"name":"REASONS","datatype":"BYTES","shape":[1],"data":["[{\\"code\\":\\"text_profanity\\"}]"]},
                {"name":"SCORES","datatype":"BYTES","shape":[1],"data":["{\\"nsfw\\":0.1}"]},
                {"name":"TEXT","datatype":"BYTES","shape":[1],"data":["hello"]}]}
                """
            return RawHTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(body.utf8))
        }
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        try await withApp { client in
            let response = try await client.execute(
                uri: "/v1/moderate", method: .post,
                headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "image/jpeg"), (.traceparentHeader, traceparent),
                                 (HTTPField.Name("X-Forwarded-For")!, "10.0.0.1")]),
                body: ByteBuffer(bytes: jpeg))
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
            #expect(object?["decision"] as? String == "review")
            #expect(object?["text"] as? String == "hello")
            #expect(object?["request_id"] as? String == response.headers[.requestIDHeader])
            let model = object?["model"] as? [String: Any]
            #expect(model?["name"] as? String == "moderation")
            #expect(model?["route"] as? String == "moderation")
            #expect((object?["scores"] as? [String: Any])?["nsfw"] as? Double == 0.1)
            // A pipeline without EVIDENCE (an older variant) is served; evidence is null.
            #expect(object?["evidence"] is NSNull)
        }
        let sent = try #require(transport.requests.first)
        #expect(sent.path == "/v2/models/moderation/infer")
        let headerLength = try #require(sent.headers.first { $0.0 == "Inference-Header-Content-Length" }.flatMap { Int($0.1) })
        // Every output is asked for, as JSON (no output list to go stale).
        let header = String(decoding: sent.body[..<headerLength], as: UTF8.self)
        #expect(!header.contains("\"outputs\"") && header.contains("\"binary_data_output\":false"))
        #expect(Array(sent.body[(headerLength + 4)...]) == jpeg)
        let upstreamTrace = try #require(sent.headers.first { $0.0 == "traceparent" }?.1)
        #expect(upstreamTrace.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-"))
        #expect(!sent.headers.contains { $0.0.lowercased().hasPrefix("x-forwarded") || $0.0.lowercased() == "host" || $0.0.lowercased() == "authorization" })
        let event = try #require(audit.events.withLockedValue { $0 }.first { $0.endpoint == "/v1/moderate" })
        #expect(event.verdict == "review")
        #expect(event.reasonCodes == ["text_profanity"])
        #expect(event.traceID == "0af7651916cd43dd8448eb211c80319c")
    }

    @Test(arguments: [
        ("in ensemble 'moderation', invalid_image: cannot identify image file", HTTPResponse.Status.unprocessableContent),
        ("in ensemble 'moderation', unsupported_format: TIFF", .unsupportedMediaType),
        ("in ensemble 'moderation', image_too_large: 99999x99999", .contentTooLarge),
        ("some internal failure at /opt/tritonserver/secret/path", .badGateway),
    ])
    func tritonRefusalsMapByPrefixWithoutEchoingThem(message: String, status: HTTPResponse.Status) async throws {
        let token = try setup.token(roles: ["client"])
        transport.setReply { _ in
            RawHTTPResponse(status: 500, headers: [], body: Array("{\"error\":\"\(message)\"}".utf8))
        }
        try await withApp { client in
            let response = try await client.execute(
                uri: "/v1/moderate", method: .post, headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "image/jpeg")]),
                body: ByteBuffer(bytes: try SampleImages.smallJPEG()))
            try expectProblem(response, status)
            #expect(!response.text.contains("ensemble"))
            #expect(!response.text.contains("/opt/tritonserver"))
        }
    }

    @Test func kserveInferRequestsThatCannotBeRightAre400AndNotSent() async throws {
        let token = try setup.token()
        func binary(_ header: String, _ tail: [UInt8]) -> ([UInt8], Int) { (Array(header.utf8) + tail, header.utf8.count) }
        let cases: [(String, [UInt8], Int?)] = [
            ("bad datatype", Array(#"{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FLOAT32","data":[1]}]}"#.utf8), nil),
            ("shape vs data", Array(#"{"inputs":[{"name":"INPUT0","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]}"#.utf8), nil),
            ("negative shape", Array(#"{"inputs":[{"name":"INPUT0","shape":[-1],"datatype":"FP32","data":[1]}]}"#.utf8), nil),
            ("not JSON", Array("{inputs".utf8), nil),
            ("no inputs", Array(#"{"outputs":[]}"#.utf8), nil),
        ] + [
            { let (b, n) = binary(#"{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":12}}]}"#, [UInt8](repeating: 0, count: 12)); return ("shape x size != bytes", b, n) }(),
            { let (b, n) = binary(#"{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":8}}]}"#, [200, 0, 0, 0, 1, 2, 3, 4]); return ("BYTES prefix overruns", b, n) }(),
            { let (b, n) = binary(#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","parameters":{"binary_data_size":8}}]}"#, [UInt8](repeating: 0, count: 12)); return ("binary sizes != body", b, n) }(),
            { let (b, _) = binary(#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","parameters":{"binary_data_size":8}}]}"#, [UInt8](repeating: 0, count: 8)); return ("header length past body", b, b.count + 10) }(),
        ]
        try await withApp { client in
            for (name, body, headerLength) in cases {
                var headers = fields([(.authorization, "Bearer \(token)")])
                headers[.contentType] = headerLength == nil ? "application/json" : "application/octet-stream"
                if let headerLength { headers[.inferHeaderLength] = String(headerLength) }
                let response = try await client.execute(uri: "/v2/models/identity_fp32/infer", method: .post, headers: headers, body: ByteBuffer(bytes: body))
                #expect(response.status == .badRequest, "\(name)")
                try expectProblem(response, .badRequest)
            }
        }
        #expect(transport.requests.isEmpty)
    }

    @Test func validBinaryInferIsForwardedUnchangedWithRebuiltHeaders() async throws {
        let token = try setup.token()
        let header = #"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","parameters":{"binary_data_size":8}}]}"#
        let body = Array(header.utf8) + [1, 0, 0, 0, 2, 0, 0, 0]
        try await withApp { client in
            let response = try await client.execute(
                uri: "/v2/models/identity_int32/infer", method: .post,
                headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/octet-stream"),
                                 (.inferHeaderLength, " \(header.utf8.count)"), (HTTPField.Name("X-Forwarded-Host")!, "evil")]),
                body: ByteBuffer(bytes: body))
            #expect(response.status == .ok)
        }
        let sent = try #require(transport.requests.first)
        #expect(sent.body == body)
        #expect(sent.headers.first { $0.0 == "Inference-Header-Content-Length" }?.1 == String(header.utf8.count))
        #expect(!sent.headers.contains { $0.0.lowercased().hasPrefix("x-forwarded") })
    }

    @Test func compressedInferBodiesAreDecompressedWithinTheLimitAndOtherCodingsRefused() async throws {
        let token = try setup.token()
        let json = Array(#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","data":[1,2]}]}"#.utf8)
        let gzip = try BodyCompression.compress(json, algorithm: .gzip)
        let deflate = try BodyCompression.compress(json, algorithm: .deflate)
        // 1 MiB of zeros compresses to about a kilobyte: far past the 64 KiB limit once inflated.
        let bomb = try BodyCompression.compress([UInt8](repeating: 0, count: 1 << 20), algorithm: .gzip)
        #expect(bomb.count < 65536)
        let cases: [(coding: String, body: [UInt8], status: HTTPResponse.Status)] = [
            ("gzip", gzip, .ok), ("deflate", deflate, .ok), ("identity, GZIP", gzip, .ok), ("gzip, ", gzip, .ok), ("identity", json, .ok),
            ("gzip", bomb, .contentTooLarge), ("gzip", Array(gzip.dropLast(4)), .badRequest),
            ("gzip", gzip + [0x41], .badRequest), ("gzip", json, .badRequest),
            ("br", gzip, .unsupportedMediaType), ("gzip, gzip", gzip, .unsupportedMediaType),
        ]
        try await withApp { client in
            for (coding, body, status) in cases {
                let response = try await client.execute(
                    uri: "/v2/models/identity_int32/infer", method: .post,
                    headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/json"), (.contentEncoding, coding)]),
                    body: ByteBuffer(bytes: body))
                #expect(response.status == status, "\(coding), \(body.count) bytes")
                if status != .ok { try expectProblem(response, status) }
            }
        }
        // What went upstream: the five accepted bodies, decompressed, without a Content-Encoding.
        #expect(transport.requests.count == 5)
        for sent in transport.requests {
            #expect(sent.body == json)
            #expect(!sent.headers.contains { $0.0.lowercased() == "content-encoding" })
        }
    }

    @Test func namesAndPathTricksAre400() async throws {
        let token = try setup.token(roles: ["admin"])
        try await withApp { client in
            for uri in ["/v2/models/bad$name/ready", "/v2/models/a..b/config", "/v2/models/x%2fy/ready", "/v2/models/x/versions/1a/ready",
                        "/v2/repository/models/..%2F..%2Fetc/load", "/v2/models/%2e%2e/ready"] {
                let response = try await client.execute(uri: uri, method: uri.hasSuffix("load") ? .post : .get,
                                                        headers: fields([(.authorization, "Bearer \(token)")]))
                #expect(response.status == .badRequest, "\(uri)")
                try expectProblem(response, .badRequest)
            }
        }
        #expect(transport.requests.isEmpty)
    }

    @Test func oversizeHeadersAre431() async throws {
        try await withApp { client in
            let response = try await client.execute(uri: "/healthz", method: .get, headers: fields([(HTTPField.Name("X-Padding")!, String(repeating: "a", count: 20000))]))
            try expectProblem(response, .requestHeaderFieldsTooLarge)
        }
    }

    @Test func rateLimitIs429WithRetryAfter() async throws {
        let token = try setup.token(roles: ["inference"])
        // One token per 1000 s: the burst of 2 cannot refill while the test runs, however
        // slowly a loaded machine runs it (at 1 per second a 1 s stall let a third call through).
        try await withApp(overrides: ["rate_limit": "rate_limit:\n  enabled: true\n  rate_per_second: 0.001\n  burst: 2\n"]) { client in
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<4 {
                let response = try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: fields([(.authorization, "Bearer \(token)")]))
                statuses.append(response.status)
                if response.status == .tooManyRequests {
                    try expectProblem(response, .tooManyRequests)
                    #expect(Int(response.headers[.retryAfter] ?? "") ?? 0 >= 1)
                }
            }
            #expect(statuses == [.ok, .ok, .tooManyRequests, .tooManyRequests])
        }
        #expect(transport.requests.count == 2)
    }

    /// Triton with `--strict-readiness` reports the server not ready while any model loads,
    /// for example a new version an operator loads through the admin passthrough. Every
    /// replica turning unready then would take the whole Service out of its balancer for
    /// the length of each model load: the gateway is ready when Triton answers and the
    /// models it routes to are ready.
    @Test func readyzFollowsTheRoutedModelsNotTritonsStrictServerReadiness() async throws {
        let modelReady = NIOLockedValueBox(true)
        transport.setReply { request in
            if request.path == "/v2/health/ready" { return RawHTTPResponse(status: 400, headers: [], body: []) }
            if request.path.hasSuffix("/ready") {
                return RawHTTPResponse(status: modelReady.withLockedValue { $0 } ? 200 : 400, headers: [], body: [])
            }
            return RawHTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array("{}".utf8))
        }
        try await withApp(overrides: ["readiness": "readiness:\n  cache_seconds: 0\n"]) { client in
            let loading = try await client.execute(uri: "/readyz", method: .get)
            #expect(loading.status == .ok, "a model loading elsewhere in Triton does not make this replica unready")
            let body = try JSONSerialization.jsonObject(with: Data(buffer: loading.body)) as? [String: Any]
            #expect(body?["triton"] as? String == "not_ready", "the body still says what Triton reports")
            modelReady.withLockedValue { $0 = false }
            let unready = try await client.execute(uri: "/readyz", method: .get)
            #expect(unready.status == .serviceUnavailable, "a routed model that is not ready makes the replica unready")
        }
    }

    @Test func connectionFailuresGive502ThenCircuitOpen503() async throws {
        let token = try setup.token()
        transport.setReply { _ in throw TritonClientError(code: .connectionFailed, message: "refused") }
        try await withApp(overrides: ["upstream": "upstream:\n  circuit_failure_threshold: 2\n  circuit_open_seconds: 30\n  retry_budget_ratio: 0\n  retry_min_per_second: 0\n"]) { client in
            let headers = fields([(.authorization, "Bearer \(token)")])
            let first = try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: headers)
            try expectProblem(first, .badGateway)
            let second = try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: headers)
            try expectProblem(second, .badGateway)
            let third = try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: headers)
            try expectProblem(third, .serviceUnavailable)
            #expect(Int(third.headers[.retryAfter] ?? "") ?? 0 >= 1)
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .serviceUnavailable)
        }
    }

    @Test("only a connection that failed before the request was sent is retried, and only as far as the retry budget goes")
    func retriesOnlyUnsentRequestsUnderTheBudget() async throws {
        let token = try setup.token()
        let attempts = NIOLockedValueBox(0)
        /// Replies for the model's metadata path (readiness probes are not counted): `failure`
        /// for the first `failing` attempts, then 200.
        @Sendable func script(failing: Int, with failure: TritonClientError.Code) {
            attempts.withLockedValue { $0 = 0 }
            transport.setReply { request in
                guard request.path == "/v2/models/identity_fp32" else {
                    return RawHTTPResponse(status: 200, headers: [], body: [])
                }
                let n = attempts.withLockedValue { $0 += 1; return $0 }
                if n <= failing { throw TritonClientError(code: failure, message: "scripted \(failure)") }
                return RawHTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array("{}".utf8))
            }
        }
        // Every first try earns one retry (ratio 1), nothing more (no floor): deterministic.
        let oneEach = "upstream:\n  circuit_failure_threshold: 100\n  circuit_open_seconds: 30\n  retry_budget_ratio: 1\n  retry_min_per_second: 0\n"
        try await withApp(overrides: ["upstream": oneEach]) { client in
            let headers = fields([(.authorization, "Bearer \(token)")])
            script(failing: 1, with: .connectionFailed)
            let recovered = try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: headers)
            #expect(recovered.status == .ok, "a refused connection is retried: the client sees the answer")
            #expect(attempts.withLockedValue { $0 } == 2)

            script(failing: 1_000, with: .connectionFailed)
            for _ in 0..<3 {
                try expectProblem(try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: headers), .badGateway)
            }
            #expect(attempts.withLockedValue { $0 } == 6, "three requests, one retry each: the budget, not the deadline, bounds retries")

            // Sent requests are never retried, whatever the budget holds: a deadline, or a
            // connection that broke after the request went out.
            script(failing: 1_000, with: .timeout)
            try expectProblem(try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: headers), .gatewayTimeout)
            #expect(attempts.withLockedValue { $0 } == 1)
            script(failing: 1_000, with: .transport)
            try expectProblem(try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: headers), .badGateway)
            #expect(attempts.withLockedValue { $0 } == 1)
        }
        // An empty budget: no retry at all.
        let none = "upstream:\n  circuit_failure_threshold: 100\n  circuit_open_seconds: 30\n  retry_budget_ratio: 0\n  retry_min_per_second: 0\n"
        try await withApp(overrides: ["upstream": none]) { client in
            script(failing: 1_000, with: .connectionFailed)
            for _ in 0..<3 {
                let response = try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: fields([(.authorization, "Bearer \(token)")]))
                try expectProblem(response, .badGateway)
            }
            #expect(attempts.withLockedValue { $0 } == 3)
        }
    }

    @Test func upstreamTimeoutIs504() async throws {
        let token = try setup.token()
        transport.setReply { _ in throw TritonClientError(code: .timeout, message: "deadline") }
        try await withApp { client in
            let response = try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: fields([(.authorization, "Bearer \(token)")]))
            try expectProblem(response, .gatewayTimeout)
        }
    }

    @Test func saturatedUpstreamIs503NotQueued() async throws {
        let token = try setup.token()
        // The first call holds the only upstream slot until the test releases it: explicit
        // signals order the two calls, not sleeps that a loaded machine can outlast.
        let (entered, enteredSignal) = AsyncStream.makeStream(of: Void.self)
        let (released, releaseSignal) = AsyncStream.makeStream(of: Void.self)
        transport.setReply { request in
            if request.path == "/v2/models/identity_fp32" {
                enteredSignal.yield()
                for await _ in released { break }
            }
            return RawHTTPResponse(status: 200, headers: [], body: [])
        }
        try await withApp(overrides: ["limits": "limits:\n  max_concurrent_upstream: 1\n"]) { client in
            let headers = fields([(.authorization, "Bearer \(token)")])
            async let slow = client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: headers)
            for await _ in entered { break }
            let refused = try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: headers)
            try expectProblem(refused, .serviceUnavailable)
            #expect(refused.headers[.retryAfter] != nil)
            releaseSignal.yield()
            #expect(try await slow.status == .ok)
        }
        #expect(transport.requests.count == 1, "the refused call never reached Triton")
    }

    @Test func failedAuditRecordTurnsTheAnswerInto503() async throws {
        audit.failing.withLockedValue { $0 = true }
        try await withApp { client in
            let response = try await client.execute(uri: "/healthz", method: .get)
            try expectProblem(response, .serviceUnavailable, slug: "audit-unavailable")
            #expect(response.headers[.retryAfter] != nil)
        }
    }

    @Test func metricsExposeRequestsAndAuthFailures() async throws {
        try await withApp { client in
            _ = try await client.execute(uri: "/v2/models/identity_fp32", method: .get)
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: fields([(.authorization, "Bearer \(try setup.token(roles: ["admin"]))")]))
            #expect(metrics.status == .ok)
            #expect(metrics.text.contains("gateway_auth_failures_total{reason="))
            #expect(metrics.text.contains(#"gateway_requests_total{route="/v2/models/{model}",status_class="4xx""#))
        }
    }

    /// `/metrics` names every refusal reason (`gateway_auth_failures_total{reason}`), which
    /// tells a prober which part of a forged token was wrong: by default it answers only to a
    /// token with the `metrics` permission (the scrape token's role), and that permission
    /// opens nothing else.
    @Test func metricsAnswerOnlyToTheMetricsPermissionByDefault() async throws {
        let roles = setup.authSection(extraRoles: "    scraper:\n      permissions: [metrics]\n")
        try await withApp(overrides: ["auth": roles]) { client in
            let anonymous = try await client.execute(uri: "/metrics", method: .get)
            try expectProblem(anonymous, .unauthorized)
            #expect(!anonymous.text.contains("gateway_auth_failures_total"))

            let moderator = fields([(.authorization, "Bearer \(try setup.token(roles: ["client"]))")])
            try expectProblem(try await client.execute(uri: "/metrics", method: .get, headers: moderator), .forbidden)

            let scraper = fields([(.authorization, "Bearer \(try setup.token(subject: "prometheus", roles: ["scraper"]))")])
            let scraped = try await client.execute(uri: "/metrics", method: .get, headers: scraper)
            #expect(scraped.status == .ok)
            #expect(scraped.text.contains("gateway_auth_failures_total{reason="))
            try expectProblem(try await client.execute(uri: "/admin/traffic", method: .get, headers: scraper), .forbidden)
            try expectProblem(try await client.execute(uri: "/v2/models/identity_fp32", method: .get, headers: scraper), .forbidden)
        }
    }

    /// What an administrator acted on is in the audit record (the validated path
    /// parameters), and a model load cannot upload model files (`file:` parameters: code
    /// Triton would run) unless the operator allows it.
    @Test func repositoryAndSharedMemoryCallsRecordTheirTargetAndModelFileUploadsAreRefused() async throws {
        let admin = fields([(.authorization, "Bearer \(try setup.token(subject: "operator", roles: ["admin"]))"), (.contentType, "application/json")])
        let upload = #"{"parameters": {"config": "{}", "file:1/model.py": "aW1wb3J0IG9z"}}"#
        try await withApp { client in
            let load = try await client.execute(uri: "/v2/repository/models/identity_fp32/load", method: .post, headers: admin, body: ByteBuffer(string: "{}"))
            #expect(load.status == .ok)
            let unregister = try await client.execute(uri: "/v2/systemsharedmemory/region/input_region/unregister", method: .post, headers: admin)
            #expect(unregister.status == .ok)
            let refused = try await client.execute(uri: "/v2/repository/models/evil/load", method: .post, headers: admin, body: ByteBuffer(string: upload))
            try expectProblem(refused, .forbidden, slug: "model-files-not-allowed")
        }
        #expect(transport.requests.map(\.path) == ["/v2/repository/models/identity_fp32/load", "/v2/systemsharedmemory/region/input_region/unregister"],
                "the upload never reached Triton")
        let events = audit.events.withLockedValue { $0 }
        #expect(events.first { $0.endpoint == "/v2/repository/models/{model}/load" && $0.status == 200 }?.target == ["model": "identity_fp32"])
        #expect(events.first { $0.endpoint.hasPrefix("/v2/systemsharedmemory") }?.target == ["region": "input_region"])
        #expect(events.first { $0.status == 403 }?.target == ["model": "evil"])

        try await withApp(overrides: ["admin": "admin:\n  allow_model_files: true\n"]) { client in
            let allowed = try await client.execute(uri: "/v2/repository/models/evil/load", method: .post, headers: admin, body: ByteBuffer(string: upload))
            #expect(allowed.status == .ok)
        }
        #expect(transport.requests.last?.path == "/v2/repository/models/evil/load")
    }

    @Test func everyRouteIsInTheOpenAPIDocumentAndBack() async throws {
        let configuration = try setup.configuration(tritonURL: "http://127.0.0.1:9")
        let core = try buildCore(configuration: configuration, parts: GatewayParts(transport: transport), logger: quietLogger())
        let router = buildRouter(core: core)
        var routerOperations = Set<String>()
        for route in router.routes {
            // `:name` and the console's catch-all `**` are `{name}` and `{asset}` in the document.
            let path = route.path.description.split(separator: "/").map {
                $0.hasPrefix(":") ? "{\($0.dropFirst())}" : $0 == "**" ? "{asset}" : String($0)
            }.joined(separator: "/")
            routerOperations.insert("\(route.method.rawValue.lowercased()) /\(path)")
        }
        let expected = routerOperations
        try await withApp { client in
            var documentOperations = Set<String>()
            let response = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(response.status == .ok)
            var currentPath: String?
            for line in response.text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("  /") && line.hasSuffix(":") { currentPath = String(line.dropFirst(2).dropLast()); continue }
                if !line.hasPrefix("  ") { currentPath = nil }
                if let path = currentPath, line.hasPrefix("    "), !line.hasPrefix("     "),
                    let method = ["get", "post", "put", "delete"].first(where: { line == "    \($0):" }) {
                    documentOperations.insert("\(method) \(path)")
                }
            }
            #expect(!expected.isEmpty)
            #expect(expected.subtracting(documentOperations).isEmpty, "routes missing from the document: \(expected.subtracting(documentOperations).sorted())")
            #expect(documentOperations.subtracting(expected).isEmpty, "document paths without a route: \(documentOperations.subtracting(expected).sorted())")
        }
    }
}

@Suite struct ConfigurationTests {
    @Test func errorsNameTheKey() throws {
        let setup = try TestSetup()
        let cases: [(String, String, String)] = [
            ("listen", "listen:\n  port: 70000\n", "listen.port"),
            ("triton", "triton:\n  url: ftp://x\n", "triton.url"),
            ("timeouts", "timeouts:\n  upstream_deadline: 0\n", "timeouts.upstream_deadline"),
            ("limits", "limits:\n  max_body_bytes: 10\n", "limits.max_body_bytes"),
            ("routes", "routes:\n  default: nope\n", "routes.default"),
            ("logging", "logging:\n  level: loud\n", "logging.level"),
            ("limits", "limits:\n  max_header_bytes: \"big\"\n", "limits.max_header_bytes"),
        ]
        for (section, yaml, key) in cases {
            #expect {
                try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: [section: yaml])
            } throws: { error in
                (error as? ConfigurationError)?.key == key
            }
        }
    }

    @Test("a key the gateway does not read is refused with its path and the keys allowed there, not ignored")
    func unknownKeysAreRefused() throws {
        let setup = try TestSetup()
        let cases: [(String, String, String, String)] = [
            ("listen", "listen:\n  host: 127.0.0.1\n  max_conections: 10\n", "listen.max_conections", "max_connections"),
            ("listen", "listen:\n  trusted_proxy: [10.0.0.0/8]\n", "listen.trusted_proxy", "trusted_proxies"),
            ("metrics", "metrics:\n  require_authentication: false\n", "metrics.require_authentication", "require_auth"),
            ("triton", "triton:\n  url: http://127.0.0.1:9\n  tls:\n    verify_peers: false\n", "triton.tls.verify_peers", "verify_peer"),
            ("auth", setup.authSection().replacingOccurrences(of: "      algorithm: HS256", with: "      algorithm: HS256\n      algorithms: [RS256]"),
             "auth.keys[0].algorithms", "algorithm"),
            ("auth", setup.authSection().replacingOccurrences(of: "      secret_file: dev-secret", with: "      secret_file: dev-secret\n      pem: x"),
             "auth.keys[0].pem", "README"),
            ("ratelimit", "ratelimit:\n  enabled: false\n", "ratelimit", "rate_limit"),
        ]
        for (section, yaml, key, allowed) in cases {
            #expect {
                try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: [section: yaml])
            } throws: { error in
                guard let error = error as? ConfigurationError else { return false }
                return error.key == key && "\(error)".contains(allowed)
            }
        }
        // An infinite duration does not switch the check off (JSON has no such number).
        #expect {
            try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: ["timeouts": "timeouts:\n  idle: .inf\n  idel: 3\n"])
        } throws: { ($0 as? ConfigurationError)?.key == "timeouts.idel" }
        // A key that is not a name is an error, not a crash; merge keys count as the keys they bring.
        #expect {
            try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: ["listen": "listen:\n  host: 127.0.0.1\n  ? [a, b]\n  : 1\n"])
        } throws: { ($0 as? ConfigurationError)?.key.hasPrefix("listen.") == true }
        #expect {
            try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: ["limits": "limits:\n  <<: {max_bodybytes: 70000}\n"])
        } throws: { ($0 as? ConfigurationError)?.key == "limits.max_bodybytes" }
        let merged = try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: [
            "limits": "limits:\n  <<: {max_body_bytes: 70000}\n  max_header_bytes: 16384\n",
        ])
        #expect(merged.limits.maxBodyBytes == 70000)
        // Maps keyed by the operator (roles, routes) and empty values are not unknown keys.
        let accepted = try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: [
            "routes": "routes:\n  default: alt\n  models:\n    alt:\n      model: identity_fp32\n      version: \"1\"\n",
            "audit": "audit:\n  enabled: false\n  path:\n",
        ])
        #expect(accepted.routes.models["alt"]?.version == "1")
    }

    @Test func committedDevelopmentConfigurationParses() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("config/gateway.yaml"), encoding: .utf8)
        let configuration = try GatewayConfiguration.parse(yaml: text, baseDirectory: root.appendingPathComponent("config"))
        #expect(configuration.routes.defaultRoute == "moderation")
        #expect(configuration.routes.models["moderation"]?.model == "moderation")
    }
}
