/// An error from ``InferenceServerClient``.
///
/// The ``code`` tells what went wrong in a way a caller can act on (retry only
/// ``Code/connectionFailed``, map ``Code/timeout`` to 504…); ``message`` is for people.
public struct TritonClientError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// Triton could not be reached (resolve or connect failed): the request was never sent,
        /// so it is safe to retry.
        public static let connectionFailed = Code("connectionFailed")
        /// Another libcurl failure (send/receive error, TLS…); ``TritonClientError/curlCode`` has curl's code.
        public static let transport = Code("transport")
        /// The call took longer than its timeout.
        public static let timeout = Code("timeout")
        /// The Swift task was cancelled; the transfer was aborted.
        public static let cancelled = Code("cancelled")
        /// Triton answered with a non-success HTTP status; ``TritonClientError/message`` holds its `error` text.
        public static let httpStatus = Code("httpStatus")
        /// Triton's answer could not be understood (bad JSON, truncated binary data…).
        public static let malformedResponse = Code("malformedResponse")
        /// The caller passed something that cannot be sent (shape and data disagree, bad name…).
        public static let invalidArgument = Code("invalidArgument")

        public var description: String { name }
    }

    public var code: Code
    public var message: String
    /// libcurl's `CURLcode` for transport-level failures.
    public var curlCode: Int?
    /// The HTTP status Triton answered with, when there was an answer.
    public var httpStatus: Int?

    public init(code: Code, message: String, curlCode: Int? = nil, httpStatus: Int? = nil) {
        self.code = code
        self.message = message
        self.curlCode = curlCode
        self.httpStatus = httpStatus
    }

    public var description: String {
        var text = "TritonClientError(\(code)): \(message)"
        if let httpStatus { text += " [HTTP \(httpStatus)]" }
        if let curlCode { text += " [curl \(curlCode)]" }
        return text
    }

    static func invalidArgument(_ message: String) -> TritonClientError {
        TritonClientError(code: .invalidArgument, message: message)
    }

    static func malformed(_ message: String) -> TritonClientError {
        TritonClientError(code: .malformedResponse, message: message)
    }
}
