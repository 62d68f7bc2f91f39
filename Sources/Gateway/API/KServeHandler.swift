import Foundation
import TritonClient
import HTTPTypes
import Hummingbird
import Logging

/// The KServe v2 passthrough under `/v2`: names are validated, the caller's
/// permission and model allowlist checked, infer requests validated, and the
/// upstream request built by the gateway (only the headers it chooses).
struct KServeHandler: Sendable {
    let core: GatewayCore

    /// Routes open to callers with `infer`, by template.
    func register(on router: Router<GatewayRequestContext>) {
        let v2 = router.group("v2")
        v2.get { try await self.passthrough($0, $1, template: "/v2", permission: .infer, path: "/v2") }
        v2.get("health/live") { try await self.passthrough($0, $1, template: "/v2/health/live", permission: .infer, path: "/v2/health/live") }
        v2.get("health/ready") { try await self.passthrough($0, $1, template: "/v2/health/ready", permission: .infer, path: "/v2/health/ready") }
        for suffix in ["", "/ready", "/config", "/stats"] {
            v2.get("models/:model\(suffix)") { request, context in
                try await self.model(request, context, suffix: suffix, versioned: false)
            }
            v2.get("models/:model/versions/:version\(suffix)") { request, context in
                try await self.model(request, context, suffix: suffix, versioned: true)
            }
        }
        v2.post("models/:model/infer") { try await self.infer($0, $1, versioned: false) }
        v2.post("models/:model/versions/:version/infer") { try await self.infer($0, $1, versioned: true) }

        // Admin only: everything that changes or reveals server state beyond one model.
        v2.get("models/stats") { try await self.passthrough($0, $1, template: "/v2/models/stats", permission: .admin, path: "/v2/models/stats") }
        v2.post("repository/index") {
            try await self.passthrough($0, $1, template: "/v2/repository/index", permission: .admin, path: "/v2/repository/index", method: "POST")
        }
        for action in ["load", "unload"] {
            v2.post("repository/models/:model/\(action)") { request, context in
                let model = try Self.name(context, "model")
                return try await self.passthrough(
                    request, context, template: "/v2/repository/models/{model}/\(action)", permission: .admin,
                    path: "/v2/repository/models/\(model)/\(action)", method: "POST")
            }
        }
        for kind in ["systemsharedmemory", "cudasharedmemory"] {
            v2.get("\(kind)/status") { try await self.passthrough($0, $1, template: "/v2/\(kind)/status", permission: .admin, path: "/v2/\(kind)/status") }
            v2.get("\(kind)/region/:region/status") { request, context in
                let region = try Self.name(context, "region")
                return try await self.passthrough(request, context, template: "/v2/\(kind)/region/{region}/status", permission: .admin,
                                                  path: "/v2/\(kind)/region/\(region)/status")
            }
            v2.post("\(kind)/unregister") {
                try await self.passthrough($0, $1, template: "/v2/\(kind)/unregister", permission: .admin, path: "/v2/\(kind)/unregister", method: "POST")
            }
            for action in ["register", "unregister"] {
                v2.post("\(kind)/region/:region/\(action)") { request, context in
                    let region = try Self.name(context, "region")
                    return try await self.passthrough(request, context, template: "/v2/\(kind)/region/{region}/\(action)", permission: .admin,
                                                      path: "/v2/\(kind)/region/\(region)/\(action)", method: "POST")
                }
            }
        }
        v2.get("trace/setting") { try await self.passthrough($0, $1, template: "/v2/trace/setting", permission: .admin, path: "/v2/trace/setting") }
        v2.post("trace/setting") {
            try await self.passthrough($0, $1, template: "/v2/trace/setting", permission: .admin, path: "/v2/trace/setting", method: "POST")
        }
        for method in ["GET", "POST"] {
            let handler: @Sendable (Request, GatewayRequestContext) async throws -> Response = { request, context in
                let model = try Self.name(context, "model")
                return try await self.passthrough(request, context, template: "/v2/models/{model}/trace/setting", permission: .admin,
                                                  path: "/v2/models/\(model)/trace/setting", method: method)
            }
            if method == "GET" { v2.get("models/:model/trace/setting", use: handler) } else { v2.post("models/:model/trace/setting", use: handler) }
        }
        v2.get("logging") { try await self.passthrough($0, $1, template: "/v2/logging", permission: .admin, path: "/v2/logging") }
        v2.post("logging") { try await self.passthrough($0, $1, template: "/v2/logging", permission: .admin, path: "/v2/logging", method: "POST") }
    }

    /// A validated path parameter (model, version, region).
    static func name(_ context: GatewayRequestContext, _ key: String) throws -> String {
        guard let value = context.parameters.get(key) else { throw GatewayProblem.badRequest("Missing \(key) in the path.") }
        let valid = key == "version" ? NameRules.isValidVersion(value) : NameRules.isValidName(value)
        guard valid else {
            throw GatewayProblem.badRequest(key == "version" ? "The version must be a positive integer." : "The \(key) name must match [A-Za-z0-9_.-] and not contain '..'.")
        }
        return value
    }

    func model(_ request: Request, _ context: GatewayRequestContext, suffix: String, versioned: Bool) async throws -> Response {
        let template = "/v2/models/{model}" + (versioned ? "/versions/{version}" : "") + suffix
        context.record.update { $0.routeTemplate = template }
        let model = try Self.name(context, "model")
        var path = "/v2/models/\(model)"
        if versioned { path += "/versions/\(try Self.name(context, "version"))" }
        return try await passthrough(request, context, template: template, permission: .infer, path: path + suffix, model: model)
    }

    func infer(_ request: Request, _ context: GatewayRequestContext, versioned: Bool) async throws -> Response {
        let template = "/v2/models/{model}" + (versioned ? "/versions/{version}" : "") + "/infer"
        context.record.update { $0.routeTemplate = template }
        let model = try Self.name(context, "model")
        var version: String?
        if versioned { version = try Self.name(context, "version") }
        let headerPairs = ModerationHandler.headerPairs(request)
        var decision = core.kserveDecision(name: model, version: version, stickyKey: nil, headers: headerPairs)
        context.record.update { [decision] in $0.decision = decision }
        let principal = try core.authorize(request, context: context, permission: .infer, model: model)
        if decision.isRouted {
            // Routed: the sticky choice for this caller (the one above only names the route for refusals).
            decision = core.kserveDecision(name: model, version: version, stickyKey: principal.subject, headers: headerPairs)
            context.record.update { [decision] in $0.decision = decision }
        }

        let mediaType = request.headers[.contentType].flatMap { $0.split(separator: ";").first }
            .map { NameRules.trimmedSpaces(String($0)).lowercased() }
        guard mediaType == nil || mediaType == "application/json" || mediaType == "application/octet-stream" else {
            throw GatewayProblem.unsupportedMediaType("Inference requests are application/json or application/octet-stream.")
        }
        var headerLength: Int?
        if let raw = request.headers[.inferenceHeaderContentLength] {
            guard let n = Int(NameRules.trimmedSpaces(raw)), n > 0 else {
                throw GatewayProblem.badRequest("Inference-Header-Content-Length must be a positive integer.")
            }
            headerLength = n
        }
        context.record.update { $0.contentType = mediaType ?? "application/json" }
        let body = try await BodyReader.read(request, limit: core.configuration.limits.maxBodyBytes)
        context.record.update {
            $0.inputBytes = body.count
            $0.inputHMAC = core.inputHMAC(body)
        }
        do {
            try InferRequestValidator.validate(body: body, headerLength: headerLength)
        } catch {
            throw GatewayProblem(.badRequest, "invalid-inference-request", error.detail)
        }
        var headers: [(String, String)] = [
            ("Content-Type", headerLength == nil ? "application/json" : "application/octet-stream"),
            ("traceparent", context.trace.childHeader()), ("X-Request-Id", context.requestID),
        ]
        if let headerLength { headers.append(("Inference-Header-Content-Length", String(headerLength))) }
        let upstreamRequest = RawHTTPRequest(method: "POST", path: Self.inferPath(decision), headers: headers, body: body)
        return try await forward(upstreamRequest, context: context, decision: decision, kind: "kserve")
    }

    func passthrough(
        _ request: Request, _ context: GatewayRequestContext, template: String, permission: Permission, path: String,
        method: String = "GET", model: String? = nil
    ) async throws -> Response {
        context.record.update { $0.routeTemplate = template }
        try core.authorize(request, context: context, permission: permission, model: model)
        var body: [UInt8] = []
        var headers: [(String, String)] = [("traceparent", context.trace.childHeader()), ("X-Request-Id", context.requestID)]
        if method == "POST" {
            body = try await BodyReader.read(request, limit: core.configuration.limits.maxBodyBytes)
            if !body.isEmpty {
                guard let parsed = try? JSONValue.parse(body), case .object = parsed else { throw GatewayProblem.badRequest("The body must be a JSON object.") }
                headers.append(("Content-Type", "application/json"))
            }
            context.record.update {
                $0.inputBytes = body.count
                $0.inputHMAC = core.inputHMAC(body)
            }
        }
        let upstreamRequest = RawHTTPRequest(method: method, path: path, headers: headers, body: body)
        return try await forward(upstreamRequest, context: context, decision: nil, kind: permission == .admin ? "admin" : "kserve")
    }

    /// Sends the request and copies back Triton's answer: status, body, and only
    /// the content headers. Error answers are rewritten without Triton's text.
    func forward(_ upstreamRequest: RawHTTPRequest, context: GatewayRequestContext, decision: RouteDecision?, kind: String) async throws -> Response {
        let exchange: Upstream.Exchange
        do {
            exchange = try await core.upstream.call(upstreamRequest, kind: kind, logger: context.logger)
        } catch let problem as GatewayProblem {
            if let decision, problem.status.code >= 502, problem.slug != "upstream-saturated", problem.slug != "upstream-unavailable" {
                core.resolver.observe(decision, outcome: UpstreamOutcome(isServerError: true, latencySeconds: 0))
            }
            throw problem
        }
        let upstream = exchange.response
        context.record.update {
            $0.upstreamStatus = upstream.status
            $0.upstreamLatencySeconds = exchange.seconds
        }
        if let decision {
            core.resolver.observe(decision, outcome: UpstreamOutcome(isServerError: upstream.status >= 500, latencySeconds: exchange.seconds))
        }
        if upstream.status >= 500 {
            throw GatewayProblem(.badGateway, "upstream-error", "The inference server failed to handle the request.")
        }
        if !(200..<300).contains(upstream.status) && !(400..<500).contains(upstream.status) {
            // 1xx/3xx from Triton is not something a KServe client expects.
            throw GatewayProblem(.badGateway, "upstream-error", "The inference server gave an unexpected answer.")
        }
        if upstream.status >= 400 {
            let status = HTTPResponse.Status(code: upstream.status)
            let detail = upstream.status == 404 || (ModerationHandler.tritonErrorMessage(upstream.body) ?? "").contains("unknown model")
                ? "The inference server does not know this model or version."
                : "The inference server refused the request."
            throw GatewayProblem(status, upstream.status == 404 ? "not-found" : "upstream-refused", detail)
        }
        var fields = HTTPFields()
        for (name, value) in upstream.headers {
            switch name.lowercased() {
            case "content-type":
                if !NameRules.hasControlBreaks(value) { fields[.contentType] = value }
            case "inference-header-content-length":
                if let n = Int(NameRules.trimmedSpaces(value)), n >= 0, n <= upstream.body.count {
                    fields[.inferenceHeaderContentLength] = String(n)
                }
            default:
                continue
            }
        }
        if let decision, decision.isRouted {
            core.addRoutingHeaders(&fields, decision: decision)
            let responseBody = core.body(ByteBuffer(bytes: upstream.body), decision: decision, logger: context.logger) { target in
                RawHTTPRequest(method: "POST", path: Self.inferPath(target), headers: upstreamRequest.headers, body: upstreamRequest.body)
            }
            return Response(status: .init(code: upstream.status), headers: fields, body: responseBody)
        }
        return Response(status: .init(code: upstream.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: upstream.body)))
    }

    /// Triton's infer path for the model (and version) a decision names.
    static func inferPath(_ decision: RouteDecision) -> String {
        var path = "/v2/models/\(decision.model)"
        if let version = decision.version { path += "/versions/\(version)" }
        return path + "/infer"
    }
}
