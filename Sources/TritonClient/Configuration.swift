extension InferenceServerClient {
    /// How a client connects to Triton. The defaults suit a Triton on the same network.
    public struct Configuration: Sendable {
        /// How long to wait for a TCP (and TLS) connection.
        public var connectTimeout: Duration = .seconds(10)
        /// Default limit for a whole call; `nil` waits forever. A call's own timeout overrides it.
        public var requestTimeout: Duration? = nil
        /// Most connections open to one host at once; further calls queue for a free connection.
        /// `0` means no limit.
        public var maxConnectionsPerHost: Int = 64
        /// The HTTP version to speak.
        public var httpVersion: HTTPVersion = .http1_1
        /// TLS settings for `https` URLs.
        public var tls: TLSOptions = TLSOptions()
        /// Compress request bodies of `infer` (and raw requests without their own encoding) with this algorithm.
        public var requestCompression: CompressionAlgorithm? = nil
        /// Ask Triton to compress responses with this algorithm (decoded transparently).
        public var responseCompression: CompressionAlgorithm? = nil
        /// Headers sent with every call (before each call's own headers).
        public var headers: [(String, String)] = []
        /// Largest response body accepted; a bigger one fails the call with
        /// ``TritonClientError/Code/malformedResponse`` instead of exhausting memory.
        public var maxResponseBytes: Int = 1 << 30
        /// Let libcurl print its protocol trace to stderr.
        public var verbose: Bool = false

        public init() {}
    }

    /// An HTTP protocol version choice.
    public struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
        let curlValue: Int
        private let name: String
        private init(_ curlValue: Int, _ name: String) {
            self.curlValue = curlValue
            self.name = name
        }
        /// HTTP/1.1 (the default; what Triton itself speaks).
        public static let http1_1 = HTTPVersion(2, "HTTP/1.1")
        /// HTTP/2 over TLS (negotiated by ALPN), HTTP/1.1 on plain connections.
        public static let http2OverTLS = HTTPVersion(4, "HTTP/2 over TLS")
        /// HTTP/2 without upgrade on plain connections ("prior knowledge"), for an HTTP/2 proxy in front of Triton.
        public static let http2PriorKnowledge = HTTPVersion(5, "HTTP/2 prior knowledge")
        public var description: String { name }
        var isHTTP2: Bool { curlValue != 2 }
    }

    /// TLS options for `https` connections.
    public struct TLSOptions: Sendable {
        /// PEM file of certificate authorities to trust instead of the system store.
        public var caFile: String? = nil
        /// PEM client certificate for mutual TLS.
        public var certificateFile: String? = nil
        /// PEM private key of the client certificate.
        public var privateKeyFile: String? = nil
        /// Verify the server's certificate chain.
        public var verifyPeer: Bool = true
        /// Verify that the certificate names the host.
        public var verifyHost: Bool = true
        public init() {}
    }

    /// A content coding for request or response bodies.
    public enum CompressionAlgorithm: String, Sendable, Hashable {
        case gzip
        case deflate
    }
}

extension Duration {
    /// Whole milliseconds, rounded up so a tiny positive timeout never becomes "no timeout".
    var roundedUpMilliseconds: Int {
        let (seconds, attoseconds) = components
        let fromSeconds = seconds.multipliedReportingOverflow(by: 1000)
        if fromSeconds.overflow { return Int.max }
        let ms = Int(fromSeconds.partialValue) + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
        return max(ms, 1)
    }
}
