/// An HTTP request passed to Triton as it is, for proxies such as the gateway's `/v2` passthrough.
public struct RawHTTPRequest: Sendable {
    /// The HTTP method (`GET`, `POST`…).
    public var method: String
    /// The path, starting with `/v2/` (or exactly `/v2`), without a query string.
    public var path: String
    /// Query parameters (sent percent-encoded).
    public var query: [(String, String)]
    /// Headers to send. `Content-Length`, `Host`, `Connection`, `Transfer-Encoding`, `Expect`,
    /// `Keep-Alive`, `TE` and `Upgrade` are managed by the connection and ignored here.
    public var headers: [(String, String)]
    /// The body, sent unchanged.
    public var body: [UInt8]
    /// Limit for the whole exchange; `nil` uses the client's ``InferenceServerClient/Configuration/requestTimeout``.
    public var timeout: Duration?

    public init(
        method: String, path: String, query: [(String, String)] = [], headers: [(String, String)] = [],
        body: [UInt8] = [], timeout: Duration? = nil
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// Triton's answer to a ``RawHTTPRequest``, unchanged: any status, its headers, its body.
public struct RawHTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first header named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first(where: { $0.0.lowercased() == name.lowercased() })?.1
    }
}

extension InferenceServerClient {
    private static let connectionManagedHeaders: Set<String> = [
        "content-length", "host", "connection", "transfer-encoding", "expect", "keep-alive", "te", "upgrade",
        "proxy-connection",
    ]

    /// Sends `request` to Triton over the client's pooled connections and returns the answer as is.
    ///
    /// Non-success statuses are returned, not thrown; only failures to get an answer throw
    /// (``TritonClientError/Code/connectionFailed`` means nothing was sent and a retry is safe).
    /// The client's default headers are not added; response bodies are not decoded.
    public func execute(_ request: RawHTTPRequest) async throws(TritonClientError) -> RawHTTPResponse {
        let method = request.method.uppercased()
        guard !method.isEmpty, method.utf8.allSatisfy({ (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }) else {
            throw .invalidArgument("invalid HTTP method '\(request.method)'")
        }
        let path = request.path
        guard path == "/v2" || path.hasPrefix("/v2/") else {
            throw .invalidArgument("the path must start with /v2/, got '\(path)'")
        }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.contains(where: { $0 == ".." || $0 == "." }),
            path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") })
        else {
            throw .invalidArgument("the path '\(path)' has characters or segments that cannot be forwarded")
        }
        let headers = request.headers.filter { !Self.connectionManagedHeaders.contains($0.0.lowercased()) }
        try Self.validate(headers: headers)
        let transportRequest = TransportRequest(
            method: method, url: url + path + Self.queryString(request.query), headers: headers, body: request.body,
            timeout: request.timeout, acceptEncoding: nil, suppressDefaultHeaders: true)
        let response = try await perform(transportRequest)
        return RawHTTPResponse(status: response.status, headers: response.headers, body: response.body)
    }
}
