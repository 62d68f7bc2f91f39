import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix
import TritonClient

/// Reads a request body up to a byte limit: over the limit by `Content-Length` → 413
/// before reading anything; over it while streaming → 413 as soon as the count passes it.
/// A body that trickles is cut off by ``ConnectionGuard`` (408 and close once
/// `timeouts.request` has passed since the request head), so no timer is needed here.
///
/// A body sent with `Content-Encoding: gzip` or `deflate` (what Triton accepts, and what
/// tritonclient sends with `request_compression_algorithm`) is decompressed here, with
/// the same limit on the decompressed size (413 past it, 400 if the stream is broken),
/// and goes upstream uncompressed. Any other coding is 415 before the body is read.
enum BodyReader {
    static func read(_ request: Request, limit: Int) async throws -> [UInt8] {
        let compressed = try contentCoding(request)
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
        } catch let error as GatewayProblem {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch HTTPParserError.invalidEOFState {
            // The connection ended mid-body: the client went away, or the guard closed it.
            throw GatewayProblem(.requestTimeout, "request-timeout", "The request body did not arrive in full.",
                                 headers: [(.connection, "close")])
        } catch let error as HTTPParserError {
            throw GatewayProblem.badRequest("The request body is not well-formed HTTP (\(error)).")
        }
        // A connection cut mid-body (by the client, or by ConnectionGuard's 408) can end
        // the stream early: a partial body is never passed on.
        if let expected, bytes.count != expected {
            throw GatewayProblem(.requestTimeout, "request-timeout", "The request body did not arrive in full.",
                                 headers: [(.connection, "close")])
        }
        // An empty body stays empty (clients that always send the header, on a POST without a body).
        guard compressed, !bytes.isEmpty else { return bytes }
        // Inflating up to the limit can take tens of milliseconds: it runs on NIO's pool for
        // blocking work, so the cooperative pool (one thread per core) keeps serving meanwhile.
        let compressedBytes = bytes
        let inflated = try await NIOThreadPool.singleton.runIfActive {
            Result { () throws(BodyCompression.DecompressionError) in try BodyCompression.decompress(compressedBytes, limit: limit) }
        }
        do {
            return try inflated.get()
        } catch .tooLarge {
            throw GatewayProblem.payloadTooLarge("The decompressed body is larger than the limit of \(limit) bytes.")
        } catch {
            throw GatewayProblem.badRequest("The body is not a complete gzip or deflate stream as its Content-Encoding says.")
        }
    }

    /// The most bytes reading this body can hold at once: for a compressed body the
    /// decompressed limit plus the compressed bytes, otherwise its declared length (or the
    /// limit, when it declares none). A bad header counts as the limit (`read` refuses it).
    static func largestSize(_ request: Request, limit: Int) -> Int {
        let declared = request.headers[.contentLength].flatMap { Int($0) }.map { min(max($0, 0), limit) }
        guard (try? contentCoding(request)) == false else { return limit + (declared ?? limit) }
        return declared ?? limit
    }

    /// Whether the body is compressed: `gzip`, `x-gzip` or `deflate` (one coding);
    /// none or `identity` is plain; anything else is refused.
    private static func contentCoding(_ request: Request) throws -> Bool {
        let values = request.headers[values: .contentEncoding]
        guard !values.isEmpty else { return false }
        let codings = values.flatMap { $0.split(separator: ",") }.map { NameRules.trimmedSpaces(String($0)).lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }  // empty list elements are ignored (RFC 9110 5.6.1)
        switch codings {
        case []: return false
        case ["gzip"], ["x-gzip"], ["deflate"]: return true
        default:
            throw GatewayProblem(
                .unsupportedMediaType, "unsupported-content-encoding",
                "Content-Encoding may be gzip or deflate (one coding), or the body sent uncompressed.")
        }
    }
}
