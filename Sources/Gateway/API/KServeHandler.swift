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

    /// One route per operation of `OpenAPIDocument.passthroughPaths` (the table the
    /// document is written from, so the two cannot drift): infer operations go to
    /// `infer`, all others to `passthrough` with the permission the table gives.
    func register(on router: Router<GatewayRequestContext>) {
        let v2 = router.group("v2")
        for (template, operations) in OpenAPIDocument.passthroughPaths {
            // "/v2/models/{model}/infer" is "models/:model/infer" under the /v2 group.
            let routePath = template.dropFirst("/v2".count).split(separator: "/")
                .map { $0.hasPrefix("{") ? ":" + $0.dropFirst().dropLast() : String($0) }.joined(separator: "/")
            for operation in operations {
                let method: HTTPRequest.Method = operation.method == "post" ? .post : .get
                if operation.body == .infer {
                    v2.on(RouterPath(routePath), method: method) { try await self.infer($0, $1, template: template) }
                } else {
                    v2.on(RouterPath(routePath), method: method) {
                        try await self.passthrough($0, $1, template: template, permission: operation.permission, method: method)
                    }
                }
            }
        }
    }

    /// A validated path parameter (model, version, region), recorded as the call's
    /// target for the audit log.
    static func name(_ context: GatewayRequestContext, _ key: String) throws -> String {
        guard let value = context.parameters.get(key) else { throw GatewayProblem.badRequest("Missing \(key) in the path.") }
        let valid = key == "version" ? NameRules.isValidVersion(value) : NameRules.isValidName(value)
        guard valid else {
            throw GatewayProblem.badRequest(key == "version" ? "The version must be a positive integer." : "The \(key) name must match [A-Za-z0-9_.-] and not contain '..'.")
        }
        context.record.update { $0.target[key] = value }
        return value
    }

    static let loadTemplate = "/v2/repository/models/{model}/load"

    /// A model load whose `parameters` carry model files (`file:<path>` keys, base64
    /// contents Triton writes and runs) is refused unless `admin.allow_model_files`.
    func checkModelFiles(_ body: JSONValue, template: String) throws {
        guard template == Self.loadTemplate, !core.configuration.admin.allowModelFiles,
            case .object(let fields) = body, let parameters = fields.first(where: { $0.key == "parameters" })?.value,
            case .object(let entries) = parameters, entries.contains(where: { $0.key.hasPrefix("file:") })
        else { return }
        throw GatewayProblem(.forbidden, "model-files-not-allowed",
                             "Model loads may not carry model files (file: parameters) here; admin.allow_model_files is off.")
    }

    /// `template` with each `{name}` replaced by its validated value from the path (400 for a bad one).
    static func path(_ template: String, _ context: GatewayRequestContext) throws -> String {
        var path = template
        for parameter in OpenAPIDocument.parameterNames(template) {
            path = path.replacingOccurrences(of: "{\(parameter)}", with: try name(context, parameter))
        }
        return path
    }

    func infer(_ request: Request, _ context: GatewayRequestContext, template: String) async throws -> Response {
        context.record.update { $0.routeTemplate = template }
        let model = try Self.name(context, "model")
        var version: String?
        if template.contains("{version}") { version = try Self.name(context, "version") }
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
        // The validator's tree holds at most `max_json_values` nodes, and a document needs
        // at least two bytes per value: reserve for whichever is fewer.
        let maxValues = core.configuration.limits.maxJSONValues
        let body = try await core.readBody(request, copies: 1, extra: { min(maxValues, $0 / 2) * InferRequestValidator.bytesPerValue }) { body in
            context.record.update {
                $0.inputBytes = body.count
                $0.inputHMAC = core.inputHMAC(body)
            }
            do throws(InferRequestValidator.Invalid) {
                try InferRequestValidator.validate(body: body, headerLength: headerLength, maxValues: maxValues)
            } catch {
                throw GatewayProblem(.badRequest, "invalid-inference-request", error.detail)
            }
            return body
        }
        var headers: [(String, String)] = [
            ("Content-Type", headerLength == nil ? "application/json" : "application/octet-stream"),
            ("traceparent", context.trace.childHeader()), ("X-Request-Id", context.requestID),
        ]
        if let headerLength { headers.append(("Inference-Header-Content-Length", String(headerLength))) }
        let upstreamRequest = RawHTTPRequest(method: "POST", path: Self.inferPath(decision), headers: headers, body: body)
        return try await forward(upstreamRequest, context: context, decision: decision, kind: "kserve")
    }

    /// Any other KServe or Triton call: names checked, then the caller's permission
    /// (and, for `infer` operations on a model, its model allowlist), then a JSON body if
    /// one is allowed; Triton gets only the headers the gateway chooses.
    func passthrough(
        _ request: Request, _ context: GatewayRequestContext, template: String, permission: Permission, method: HTTPRequest.Method
    ) async throws -> Response {
        context.record.update { $0.routeTemplate = template }
        let path = try Self.path(template, context)
        let model = permission == .infer && template.contains("{model}") ? context.parameters.get("model") : nil
        try core.authorize(request, context: context, permission: permission, model: model)
        var body: [UInt8] = []
        var headers: [(String, String)] = [("traceparent", context.trace.childHeader()), ("X-Request-Id", context.requestID)]
        if method == .post {
            // Under the same body budget and value cap as every other body.
            let maxValues = core.configuration.limits.maxJSONValues
            body = try await core.readBody(request, copies: 1, extra: { min(maxValues, $0 / 2) * InferRequestValidator.bytesPerValue }) { body in
                context.record.update {
                    $0.inputBytes = body.count
                    $0.inputHMAC = core.inputHMAC(body)
                }
                if !body.isEmpty {
                    guard let parsed = try? JSONValue.parse(body, maxValues: maxValues), case .object = parsed else {
                        throw GatewayProblem.badRequest("The body must be a JSON object.")
                    }
                    try checkModelFiles(parsed, template: template)
                }
                return body
            }
            // Triton answers 500 to an empty body on the settings and shared-memory POSTs;
            // `{}` means the same there (read the settings; a register names what it lacks).
            if body.isEmpty { body = Array("{}".utf8) }
            headers.append(("Content-Type", "application/json"))
        }
        let upstreamRequest = RawHTTPRequest(method: method.rawValue, path: path, headers: headers, body: body)
        return try await forward(upstreamRequest, context: context, decision: nil, kind: permission == .admin ? "admin" : "kserve")
    }

    /// Whether Triton refused a load or unload because its model control mode is not
    /// `explicit`: a 503 whose message says so (a state of the server, not a failure: 409,
    /// not 502). A 503 for anything else, such as a server starting or draining, stays 502.
    static func isModelControlRefusal(path: String, status: Int, body: [UInt8]) -> Bool {
        guard status == 503, path.hasPrefix("/v2/repository/models/"), path.hasSuffix("/load") || path.hasSuffix("/unload") else { return false }
        return (ModerationHandler.tritonErrorMessage(body) ?? "").contains("load / unload is not allowed")
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
        if Self.isModelControlRefusal(path: upstreamRequest.path, status: upstream.status, body: upstream.body) {
            throw GatewayProblem(.conflict, "model-control-disabled",
                                 "Triton does not load or unload models on request: it runs without explicit model control (--model-control-mode=explicit).")
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
