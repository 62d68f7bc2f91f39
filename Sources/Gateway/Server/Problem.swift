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
        var object: [String: Any] = [
            "type": type,
            "title": status.reasonPhrase.isEmpty ? "Error" : status.reasonPhrase,
            "status": Int(status.code),
            "detail": detail,
            "instance": instance,
        ]
        // tritonclient reads `error` from failed KServe answers; give it our text, never Triton's.
        object["error"] = detail
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return [UInt8](data)
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
    static let traceparent = HTTPField.Name("traceparent")!
    static let inferenceHeaderContentLength = HTTPField.Name("Inference-Header-Content-Length")!
}
