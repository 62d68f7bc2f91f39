import HTTPTypes
import Hummingbird
import NIOCore

/// Reads a request body up to a byte limit and a time limit: over the limit by
/// `Content-Length` → 413 before reading anything; over it while streaming → 413
/// as soon as the count passes it; too slow → 408.
enum BodyReader {
    static func read(_ request: Request, limit: Int, timeout: Duration) async throws -> [UInt8] {
        if let declared = request.headers[.contentLength] {
            guard let length = Int(declared), length >= 0 else {
                throw GatewayProblem.badRequest("Content-Length is not a number.")
            }
            if length > limit {
                throw GatewayProblem.payloadTooLarge("The body is larger than the limit of \(limit) bytes.")
            }
        }
        let body = request.body
        return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                var bytes: [UInt8] = []
                for try await var chunk in body {
                    if bytes.count + chunk.readableBytes > limit {
                        throw GatewayProblem.payloadTooLarge("The body is larger than the limit of \(limit) bytes.")
                    }
                    if let part = chunk.readBytes(length: chunk.readableBytes) { bytes.append(contentsOf: part) }
                }
                return bytes
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let bytes = first else {
                throw GatewayProblem(.requestTimeout, "request-timeout", "The request body did not arrive in time.",
                                     headers: [(.connection, "close")])
            }
            return bytes
        }
    }
}
