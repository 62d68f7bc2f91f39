import Foundation
import TritonClient
import HTTPTypes
import Hummingbird
import Logging

/// `POST /v1/moderate`: one image in, a decision out.
struct ModerationHandler: Sendable {
    let core: GatewayCore

    static let template = "/v1/moderate"

    func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let clock = ContinuousClock()
        let start = clock.now
        context.record.update { $0.routeTemplate = Self.template }
        let routeName = core.configuration.routes.defaultRoute

        let principal: Principal
        do {
            principal = try core.authorize(request, context: context, permission: .moderate)
        } catch {
            // Refusals are resolved too, so the audit event names the route and variant.
            let decision = core.resolver.resolve(route: routeName, stickyKey: nil, headers: Self.headerPairs(request))
            context.record.update { $0.decision = decision }
            throw error
        }
        guard let decision = core.resolver.resolve(route: routeName, stickyKey: principal.subject, headers: Self.headerPairs(request)) else {
            throw GatewayProblem.serviceUnavailable("route-unavailable", "No model serves this route right now.", retryAfter: 5)
        }
        context.record.update { $0.decision = decision }

        let (image, contentType) = try await readImage(request, context: context)
        let format = try checkImage(image)
        if let declared = ImageFormat.fromMediaType(contentType), declared != format {
            throw GatewayProblem.unsupportedMediaType(
                "The body is a \(format.rawValue) image but was sent as \(Self.printable(contentType)).")
        }

        let upstreamRequest = Self.inferRequest(image: image, decision: decision, context: context)
        let exchange: Upstream.Exchange
        do {
            exchange = try await core.upstream.call(upstreamRequest, kind: "moderate", logger: context.logger)
        } catch let problem as GatewayProblem {
            if problem.status.code >= 502 && problem.slug != "upstream-saturated" && problem.slug != "upstream-unavailable" {
                core.resolver.observe(decision, outcome: UpstreamOutcome(isServerError: true, latencySeconds: (clock.now - start).seconds))
            }
            throw problem
        }
        let response = exchange.response
        context.record.update {
            $0.upstreamStatus = response.status
            $0.upstreamLatencySeconds = exchange.seconds
        }
        guard response.status == 200 else {
            let problem = Self.mapRefusal(response)
            core.resolver.observe(decision, outcome: UpstreamOutcome(isServerError: problem.status.code >= 500, latencySeconds: exchange.seconds))
            if problem.status.code >= 500 {
                context.logger.warning("upstream refused moderation", metadata: ["upstream.status": "\(response.status)"])
            }
            throw problem
        }
        let result: ModerationResult
        do {
            result = try ModerationResult.parse(response.body)
        } catch {
            core.resolver.observe(decision, outcome: UpstreamOutcome(isServerError: true, latencySeconds: exchange.seconds))
            core.metrics.recordUpstreamError("malformed")
            throw GatewayProblem(.badGateway, "upstream-malformed", "The model's answer could not be read.")
        }
        core.resolver.observe(decision, outcome: UpstreamOutcome(isServerError: false, latencySeconds: exchange.seconds))
        context.record.update {
            $0.verdict = result.decision
            $0.reasonCodes = result.reasonCodes
        }
        _ = contentType
        let totalMs = (clock.now - start).seconds * 1000
        var version: Any = NSNull()
        if let v = result.modelVersion ?? decision.version { version = v }
        let body: [String: Any] = [
            "request_id": context.requestID,
            "decision": result.decision,
            "reasons": result.reasons,
            "scores": result.scores,
            "text": result.text,
            "evidence": result.evidence ?? NSNull(),
            "model": ["route": decision.route, "variant": decision.variant, "name": decision.model, "version": version,
                      "revision": decision.revision] as [String: Any],
            "timing_ms": ["total": Self.round3(totalMs), "upstream": Self.round3(exchange.seconds * 1000)],
        ]
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        core.addRoutingHeaders(&headers, decision: decision)
        let responseBody = core.body(ByteBuffer(bytes: data), decision: decision, logger: context.logger) { target in
            Self.inferRequest(image: image, decision: target, context: context)
        }
        return Response(status: .ok, headers: headers, body: responseBody)
    }

    static func round3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }

    /// The image of a `{"image": "<base64>"}` body. Only that member is kept: the rest
    /// of the document is checked as JSON and dropped as it is read, so whatever else it
    /// holds (four million zeros) costs no memory.
    static func imageFromJSON(_ body: [UInt8]) throws -> [UInt8] {
        let member: JSONValue?
        do {
            member = try JSONValue.member("image", ofObject: body)
        } catch {
            throw GatewayProblem.badRequest("The body is not a valid JSON object with one \"image\" member.")
        }
        guard case .string(let encoded)? = member else {
            throw GatewayProblem.badRequest("The JSON body needs a string member \"image\" holding base64 image bytes.")
        }
        guard let decoded = Data(base64Encoded: encoded, options: [.ignoreUnknownCharacters]), !decoded.isEmpty,
            isStrictBase64(encoded)
        else {
            throw GatewayProblem.badRequest("The \"image\" member is not valid base64.")
        }
        return [UInt8](decoded)
    }

    static func headerPairs(_ request: Request) -> [(String, String)] {
        request.headers.map { ($0.name.canonicalName, $0.value) }.filter { $0.0 != "authorization" }
    }

    /// The image bytes from a raw `image/*` body or a JSON `{"image": base64}` body.
    func readImage(_ request: Request, context: GatewayRequestContext) async throws -> ([UInt8], String) {
        guard let contentTypeHeader = request.headers[.contentType] else {
            throw GatewayProblem.unsupportedMediaType("Send the image as image/jpeg, image/png, image/webp, image/gif, image/bmp or application/json.")
        }
        let mediaType = contentTypeHeader.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let isJSON = mediaType == "application/json"
        guard isJSON || ImageFormat.fromMediaType(mediaType) != nil else {
            throw GatewayProblem.unsupportedMediaType("Content type \(Self.printable(mediaType)) is not accepted; send an image or application/json.")
        }
        context.record.update { $0.contentType = mediaType }
        // A JSON body holds, at its peak, the body, the base64 text and the decoded image.
        let image = try await core.readBody(request, copies: isJSON ? 3 : 1) { body in
            context.record.update { $0.inputBytes = body.count }
            return isJSON ? try Self.imageFromJSON(body) : body
        }
        context.record.update { $0.inputHMAC = core.inputHMAC(image) }
        return (image, mediaType)
    }

    /// Base64 alphabet with optional padding and line breaks only.
    static func isStrictBase64(_ s: String) -> Bool {
        var count = 0
        var padding = 0
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "+"), UInt8(ascii: "/"):
                if padding > 0 { return false }
                count += 1
            case UInt8(ascii: "="):
                padding += 1
                count += 1
            case 0x0A, 0x0D:
                continue
            default:
                return false
            }
        }
        return count % 4 == 0 && padding <= 2
    }

    /// Magic-number sniffing and the pixel cap, from the header alone.
    func checkImage(_ image: [UInt8]) throws -> ImageFormat {
        guard let format = ImageFormat.sniff(image) else {
            throw GatewayProblem.unsupportedMediaType("The bytes are not a JPEG, PNG, WebP, GIF or BMP image.")
        }
        guard let size = format.dimensions(of: image) else {
            throw GatewayProblem.unprocessableImage("The \(format.rawValue) header is truncated or malformed.")
        }
        if size.pixels > core.configuration.limits.maxImagePixels {
            throw GatewayProblem(.contentTooLarge, "image-too-large",
                                 "The image is \(size.width)×\(size.height) pixels; the limit is \(core.configuration.limits.maxImagePixels).")
        }
        return format
    }

    /// A KServe v2 infer request with the binary tensor extension: JSON header,
    /// then the BYTES element (4-byte little-endian length, then the bytes).
    /// No output list: Triton answers with every output of the model, as JSON,
    /// so a pipeline with `EVIDENCE` and one without (an older variant in an
    /// A/B split) are both served.
    static func inferRequest(image: [UInt8], decision: RouteDecision, context: GatewayRequestContext) -> RawHTTPRequest {
        let header = "{\"id\":\"\(context.requestID)\",\"parameters\":{\"binary_data_output\":false},\"inputs\":[{\"name\":\"IMAGE\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":\(image.count + 4)}}]}"
        var body = [UInt8](header.utf8)
        let headerLength = body.count
        body.reserveCapacity(headerLength + 4 + image.count)
        let n = UInt32(image.count)
        body.append(contentsOf: [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)])
        body.append(contentsOf: image)
        var path = "/v2/models/\(decision.model)"
        if let version = decision.version { path += "/versions/\(version)" }
        path += "/infer"
        return RawHTTPRequest(
            method: "POST", path: path,
            headers: [
                ("Content-Type", "application/octet-stream"), ("Inference-Header-Content-Length", String(headerLength)),
                ("traceparent", context.trace.childHeader()), ("X-Request-Id", context.requestID),
            ],
            body: body)
    }

    /// Triton wraps a refusal from `preprocess` in its own message; map by the stable prefix.
    static func mapRefusal(_ response: RawHTTPResponse) -> GatewayProblem {
        let message = Self.tritonErrorMessage(response.body) ?? ""
        if message.contains("invalid_image:") {
            return GatewayProblem.unprocessableImage("The image could not be decoded.")
        }
        if message.contains("unsupported_format:") {
            return GatewayProblem.unsupportedMediaType("The image format is not supported by the model.")
        }
        if message.contains("image_too_large:") {
            return GatewayProblem(.contentTooLarge, "image-too-large", "The image is too large for the model.")
        }
        if message.contains("unknown model") || message.contains("is not ready") || message.contains("not found") || response.status == 404 {
            return GatewayProblem.serviceUnavailable("model-unavailable", "The model for this route is not available right now.", retryAfter: 5)
        }
        return GatewayProblem(.badGateway, "upstream-error", "The inference server could not process the request.")
    }

    static func tritonErrorMessage(_ body: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        return object["error"] as? String
    }

    /// A media type safe to put in a detail message.
    static func printable(_ s: String) -> String {
        let cleaned = s.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F && $0 != "\"" }
        return "\"" + String(String.UnicodeScalarView(cleaned.prefix(64))) + "\""
    }
}

/// The ensemble's outputs, read from Triton's JSON answer.
struct ModerationResult {
    var decision: String
    var reasons: Any
    var scores: Any
    var text: String
    /// What the decision rests on (matched spans, orientation applied, text
    /// classifier score, OCR counts); nil from a pipeline without `EVIDENCE`.
    var evidence: Any?
    var modelVersion: String?

    var reasonCodes: [String] {
        guard let list = reasons as? [Any] else { return [] }
        return list.compactMap { item in
            if let s = item as? String { return s }
            if let d = item as? [String: Any] { return d["code"] as? String }
            return nil
        }
    }

    struct Malformed: Error {}

    static func parse(_ body: [UInt8]) throws -> ModerationResult {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let outputs = object["outputs"] as? [[String: Any]]
        else { throw Malformed() }
        func first(_ name: String) -> String? {
            guard let output = outputs.first(where: { $0["name"] as? String == name }), let data = output["data"] as? [Any] else { return nil }
            return data.first as? String
        }
        // The decision becomes a metric label and the API's contract: only the three known values.
        guard let decision = first("DECISION"), ["allow", "review", "block"].contains(decision) else { throw Malformed() }
        func json(_ name: String) -> Any? {
            guard let text = first(name) else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        }
        return ModerationResult(
            decision: decision, reasons: json("REASONS") ?? [Any](), scores: json("SCORES") ?? [String: Any](),
            text: first("TEXT") ?? "", evidence: json("EVIDENCE") as? [String: Any],
            modelVersion: object["model_version"] as? String)
    }
}
