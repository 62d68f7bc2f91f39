import HTTPTypes
import Hummingbird
import NIOCore

/// Reads a request body up to a byte limit: over the limit by `Content-Length` → 413
/// before reading anything; over it while streaming → 413 as soon as the count passes it.
/// A body that trickles is cut off by ``ConnectionGuard`` (408 and close once
/// `timeouts.request` has passed since the request head), so no timer is needed here.
enum BodyReader {
    static func read(_ request: Request, limit: Int) async throws -> [UInt8] {
        var expected: Int?
        if let declared = request.headers[.contentLength] {
            guard let length = Int(declared), length >= 0 else {
                throw GatewayProblem.badRequest("Content-Length is not a number.")
            }
            if length > limit {
                throw GatewayProblem.payloadTooLarge("The body is larger than the limit of \(limit) bytes.")
            }
            expected = length
        }
        var bytes: [UInt8] = []
        do {
            for try await var chunk in request.body {
                if bytes.count + chunk.readableBytes > limit {
                    throw GatewayProblem.payloadTooLarge("The body is larger than the limit of \(limit) bytes.")
                }
                if bytes.isEmpty, chunk.readableBytes > 0 { bytes.reserveCapacity(chunk.readableBytes) }
                if let part = chunk.readBytes(length: chunk.readableBytes) { bytes.append(contentsOf: part) }
            }
        } catch is BodyDeadlineExceeded {
            throw GatewayProblem(.requestTimeout, "request-timeout", "The request body did not arrive in time.",
                                 headers: [(.connection, "close")])
        }
        // A connection cut mid-body (by the client, or by ConnectionGuard's 408) can end
        // the stream early: a partial body is never passed on.
        if let expected, bytes.count != expected {
            throw GatewayProblem(.requestTimeout, "request-timeout", "The request body did not arrive in full.",
                                 headers: [(.connection, "close")])
        }
        return bytes
    }
}
