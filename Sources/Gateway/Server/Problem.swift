import Foundation
import HTTPTypes
import Hummingbird

/// A refusal, rendered as `application/problem+json` (RFC 9457) by `EdgeMiddleware`.
///
/// `detail` is written by the gateway for the client; it never carries a token,
/// a header value or Triton's own error text.
public struct GatewayProblem: Error, Sendable {
    public var status: HTTPResponse.Status
    /// Short, stable slug: the problem type and the audit `errorCode`.
    public var slug: String
    public var detail: String
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`).
    public var headers: [(HTTPField.Name, String)]

    public init(_ status: HTTPResponse.Status, _ slug: String, _ detail: String, headers: [(HTTPField.Name, String)] = []) {
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = headers
    }

    public var type: String { "https://moderation-gateway.invalid/problems/\(slug)" }

    static func badRequest(_ detail: String) -> Self { .init(.badRequest, "bad-request", detail) }
    static func unsupportedMediaType(_ detail: String) -> Self { .init(.unsupportedMediaType, "unsupported-media-type", detail) }
    static func payloadTooLarge(_ detail: String) -> Self { .init(.contentTooLarge, "payload-too-large", detail) }
    static func unprocessableImage(_ detail: String) -> Self { .init(.unprocessableContent, "invalid-image", detail) }
    static func serviceUnavailable(_ slug: String, _ detail: String, retryAfter: Int) -> Self {
        .init(.serviceUnavailable, slug, detail, headers: [(.retryAfter, String(max(1, retryAfter)))])
    }

    /// The response body.
    func body(instance: String) -> [UInt8] {
        // Members in sorted order, as before; written directly because refusals
        // (401, 404, 429) must stay cheap to produce.
        var json = CompactJSONWriter()
        json.string("detail", detail)
        // tritonclient reads `error` from failed KServe answers; give it our text, never Triton's.
        json.string("error", detail)
        json.string("instance", instance)
        json.int("status", Int(status.code))
        json.string("title", status.reasonPhrase.isEmpty ? "Error" : status.reasonPhrase)
        json.string("type", type)
        return json.finish()
    }

    func response(instance: String) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = "application/problem+json"
        for (name, value) in headers { fields.append(HTTPField(name: name, value: value)) }
        let bytes = body(instance: instance)
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
    /// The id ``ConnectionGuard`` gives each request as it arrives, for ``EdgeMiddleware``:
    /// internal, always replaced by the guard (a client's value never survives it), never
    /// sent to Triton (which gets only the headers a handler chooses).
    static let gatewayRequestID = HTTPField.Name("X-Gateway-Request-Id")!
    /// The client's address as ``ConnectionGuard`` established it (the socket's peer, or
    /// behind `listen.trusted_proxies` the address `X-Forwarded-For` names): internal like
    /// `gatewayRequestID`, always replaced by the guard.
    static let gatewayClientAddress = HTTPField.Name("X-Gateway-Client-Address")!
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let traceparent = HTTPField.Name("traceparent")!
    static let inferenceHeaderContentLength = HTTPField.Name("Inference-Header-Content-Length")!
}
