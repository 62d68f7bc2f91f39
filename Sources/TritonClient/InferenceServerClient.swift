import Foundation
import Logging

/// Per-call settings every method accepts: extra headers, query parameters and a timeout.
public struct CallOptions: Sendable {
    /// Headers added to this call (after the client's default headers).
    public var headers: [(String, String)]
    /// Query parameters appended to the URL.
    public var query: [(String, String)]
    /// Limit for the whole call; overrides ``InferenceServerClient/Configuration/requestTimeout``.
    public var timeout: Duration?

    public init(headers: [(String, String)] = [], query: [(String, String)] = [], timeout: Duration? = nil) {
        self.headers = headers
        self.query = query
        self.timeout = timeout
    }
}

/// A client for Triton Inference Server's HTTP/REST API (KServe v2 protocol and Triton's extensions).
///
/// One client keeps one pool of connections, driven by one libcurl thread, and is safe to
/// share between any number of tasks:
///
/// ```swift
/// let client = try InferenceServerClient(url: "http://localhost:8000")
/// guard try await client.isServerReady() else { return }
/// var input = InferInput(name: "INPUT0", shape: [1, 3], datatype: .fp32)
/// try input.setData([1, 2, 3] as [Float])
/// let result = try await client.infer("identity_fp32", inputs: [input])
/// print(try result.asFloat("OUTPUT0"))
/// ```
///
/// Every method is `async throws` and throws ``TritonClientError``. Cancelling the calling
/// task aborts the HTTP transfer.
public final class InferenceServerClient: Sendable {
    /// The base URL, without a trailing slash (for example `http://localhost:8000`).
    public let url: String
    public let configuration: Configuration
    private let logger: Logger
    /// The curl thread's loop (internal so tests can watch it end).
    let loop: CurlMultiLoop

    /// Creates a client for the Triton at `url` (`http://host:port`, `https://…`, or `host:port`).
    public init(url: String, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "TritonClient"))
        throws(TritonClientError)
    {
        var base = url.trimmingCharacters(in: .whitespaces)
        if !base.contains("://") { base = "http://" + base }
        while base.hasSuffix("/") { base.removeLast() }
        guard let components = URLComponents(string: base), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty,
            components.query == nil, components.fragment == nil
        else {
            throw .invalidArgument("'\(url)' is not an http(s) URL of a Triton server")
        }
        self.url = base
        self.configuration = configuration
        self.logger = logger
        self.loop = try CurlMultiLoop(settings: CurlSettings(
            connectTimeoutMS: configuration.connectTimeout.roundedUpMilliseconds,
            defaultTimeout: configuration.requestTimeout,
            maxConnectionsPerHost: max(configuration.maxConnectionsPerHost, 0),
            httpVersion: configuration.httpVersion.curlValue,
            http2: configuration.httpVersion.isHTTP2,
            caFile: configuration.tls.caFile,
            certificateFile: configuration.tls.certificateFile,
            privateKeyFile: configuration.tls.privateKeyFile,
            verifyPeer: configuration.tls.verifyPeer,
            verifyHost: configuration.tls.verifyHost,
            verbose: configuration.verbose,
            maxResponseBytes: max(configuration.maxResponseBytes, 0)))
    }

    deinit { loop.shutdown() }

    /// The client's own thread as a task executor.
    ///
    /// Calls made from a task that prefers this executor run on the thread that drives the
    /// connections: starting a transfer and resuming the caller when the answer arrives then
    /// cost no thread switch. Worth it for a task doing little else between calls (a load
    /// generator, a proxy); CPU-heavy work between calls belongs on the default pool.
    ///
    /// ```swift
    /// try await withTaskExecutorPreference(client.executor) {
    ///     let result = try await client.infer("identity_fp32", inputs: [input])
    /// }
    /// ```
    public var executor: any TaskExecutor { loop }

    // MARK: - Transport

    func perform(_ request: TransportRequest) async throws(TritonClientError) -> TransportResponse {
        if Task.isCancelled { throw TritonClientError(code: .cancelled, message: "the call was cancelled") }
        let transfer = CurlTransfer(request: request)
        let loop = self.loop
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    transfer.continuation = continuation
                    loop.submit(transfer)
                }
            } onCancel: {
                loop.cancel(transfer)
            }
        } catch let error as TritonClientError {
            logger.debug("triton call failed", metadata: [
                "triton.method": "\(request.method)", "triton.url": "\(request.url)",
                "triton.error.code": "\(error.code)", "triton.error.message": "\(error.message)",
            ])
            throw error
        } catch {
            throw TritonClientError(code: .transport, message: "\(error)")
        }
    }

    private func send(
        _ method: String, _ path: String, body: [UInt8] = [], contentType: String? = nil,
        extraHeaders: [(String, String)] = [], compressBody: Bool = false, options: CallOptions
    ) async throws(TritonClientError) -> TransportResponse {
        var headers = configuration.headers
        headers.append(contentsOf: options.headers)
        var payload = body
        if let contentType { headers.append(("Content-Type", contentType)) }
        headers.append(contentsOf: extraHeaders)
        if compressBody, let algorithm = configuration.requestCompression, !body.isEmpty {
            payload = try BodyCompression.compress(body, algorithm: algorithm)
            headers.append(("Content-Encoding", algorithm.rawValue))
        }
        try Self.validate(headers: headers)
        let request = TransportRequest(
            method: method, url: url + path + Self.queryString(options.query), headers: headers, body: payload,
            timeout: options.timeout, acceptEncoding: configuration.responseCompression?.rawValue,
            suppressDefaultHeaders: false)
        logger.trace("triton call", metadata: ["triton.method": "\(method)", "triton.path": "\(path)"])
        return try await perform(request)
    }

    /// Sends a call whose answer is JSON, and returns the parsed JSON (or `.null` for an empty body).
    private func sendJSON(
        _ method: String, _ path: String, body: JSONValue? = nil, options: CallOptions
    ) async throws(TritonClientError) -> JSONValue {
        var bytes: [UInt8] = []
        if let body {
            var writer = JSONWriter()
            writer.write(body)
            bytes = writer.bytes
        }
        let response = try await send(
            method, path, body: bytes, contentType: body == nil ? nil : "application/json", options: options)
        try Self.checkStatus(response)
        if response.body.isEmpty { return .null }
        return try JSONValue.parse(response.body)
    }

    static func checkStatus(_ response: TransportResponse) throws(TritonClientError) {
        guard !(200..<300).contains(response.status) else { return }
        throw errorFromResponse(status: response.status, body: response.body)
    }

    /// Triton's `{"error": "…"}` message as a ``TritonClientError`` (``TritonClientError/Code/httpStatus``).
    static func errorFromResponse(status: Int, body: [UInt8]) -> TritonClientError {
        let message: String
        if let json = try? JSONValue.parse(body), let text = json["error"]?.stringValue {
            message = text
        } else if body.isEmpty {
            message = "HTTP \(status) with an empty body"
        } else {
            message = String(decoding: body.prefix(1024), as: UTF8.self)
        }
        return TritonClientError(code: .httpStatus, message: message, httpStatus: status)
    }

    static func validate(headers: [(String, String)]) throws(TritonClientError) {
        for (name, value) in headers {
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
                throw .invalidArgument("invalid header name '\(name)'")
            }
            guard !value.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0 }) else {
                throw .invalidArgument("header '\(name)' has a line break in its value")
            }
        }
    }

    private static let unreserved: CharacterSet = {
        var set = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(128)))
        set.insert(charactersIn: "-._~")
        return set
    }()

    static func percentEncode(_ text: String) -> String {
        let plain = text.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x2D || c == 0x2E || c == 0x5F || c == 0x7E
        }
        if plain { return text }
        return text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    static func queryString(_ query: [(String, String)]) -> String {
        guard !query.isEmpty else { return "" }
        return "?" + query.map { percentEncode($0.0) + "=" + percentEncode($0.1) }.joined(separator: "&")
    }

    static func modelPath(_ name: String, version: String?) throws(TritonClientError) -> String {
        guard !name.isEmpty else { throw .invalidArgument("the model name is empty") }
        var path = "/v2/models/" + percentEncode(name)
        if let version, !version.isEmpty { path += "/versions/" + percentEncode(version) }
        return path
    }

    // MARK: - Health

    /// `GET /v2/health/live`: whether the server process is up.
    public func isServerLive(options: CallOptions = CallOptions()) async throws(TritonClientError) -> Bool {
        try await send("GET", "/v2/health/live", options: options).status == 200
    }

    /// `GET /v2/health/ready`: whether the server is ready for inference.
    public func isServerReady(options: CallOptions = CallOptions()) async throws(TritonClientError) -> Bool {
        try await send("GET", "/v2/health/ready", options: options).status == 200
    }

    /// `GET /v2/models/{name}[/versions/{version}]/ready`: whether a model (version) can serve requests.
    public func isModelReady(_ modelName: String, version: String? = nil, options: CallOptions = CallOptions())
        async throws(TritonClientError) -> Bool
    {
        try await send("GET", Self.modelPath(modelName, version: version) + "/ready", options: options).status == 200
    }

    // MARK: - Metadata and configuration

    /// `GET /v2`: the server's name, version and supported extensions.
    public func serverMetadata(options: CallOptions = CallOptions()) async throws(TritonClientError) -> ServerMetadata {
        try ServerMetadata(json: await sendJSON("GET", "/v2", options: options))
    }

    /// `GET /v2/models/{name}[/versions/{version}]`: a model's inputs, outputs and versions.
    public func modelMetadata(_ modelName: String, version: String? = nil, options: CallOptions = CallOptions())
        async throws(TritonClientError) -> ModelMetadata
    {
        try ModelMetadata(json: await sendJSON("GET", Self.modelPath(modelName, version: version), options: options))
    }

    /// `GET /v2/models/{name}[/versions/{version}]/config`: the model's configuration as JSON.
    public func modelConfig(_ modelName: String, version: String? = nil, options: CallOptions = CallOptions())
        async throws(TritonClientError) -> JSONValue
    {
        try await sendJSON("GET", Self.modelPath(modelName, version: version) + "/config", options: options)
    }

    // MARK: - Inference

    /// `POST /v2/models/{name}[/versions/{version}]/infer`: runs one inference.
    ///
    /// Inputs marked ``InferInput/binaryData`` travel in the binary tensor extension, the others
    /// as JSON. With no `outputs`, all outputs come back (binary unless
    /// ``InferOptions/binaryDataOutput`` is `false`).
    public func infer(
        _ modelName: String,
        inputs: [InferInput],
        outputs: [InferRequestedOutput] = [],
        version: String? = nil,
        inferOptions: InferOptions = InferOptions(),
        options: CallOptions = CallOptions()
    ) async throws(TritonClientError) -> InferResult {
        let path = try Self.modelPath(modelName, version: version) + "/infer"
        let encoded = try InferRequestEncoder.encode(inputs: inputs, outputs: outputs, options: inferOptions)
        var extra: [(String, String)] = []
        if let headerLength = encoded.jsonHeaderLength {
            extra.append(("Inference-Header-Content-Length", String(headerLength)))
        }
        let response = try await send(
            "POST", path, body: encoded.body,
            contentType: encoded.jsonHeaderLength == nil ? "application/json" : "application/octet-stream",
            extraHeaders: extra, compressBody: true, options: options)
        try Self.checkStatus(response)
        var headerLength: Int?
        if let value = response.header("Inference-Header-Content-Length") {
            guard let length = Int(value) else {
                throw .malformed("Inference-Header-Content-Length '\(value)' is not a number")
            }
            headerLength = length
        }
        return try InferResult(body: response.body, jsonHeaderLength: headerLength)
    }

    // MARK: - Model repository

    /// `POST /v2/repository/index`: the models in the repository and their states.
    public func repositoryIndex(readyOnly: Bool = false, options: CallOptions = CallOptions())
        async throws(TritonClientError) -> [RepositoryModel]
    {
        let json = try await sendJSON("POST", "/v2/repository/index", body: ["ready": .bool(readyOnly)], options: options)
        guard let items = json.arrayValue else { throw .malformed("the repository index is not a JSON array") }
        return try items.map { (item) throws(TritonClientError) -> RepositoryModel in try RepositoryModel(json: item) }
    }

    /// `POST /v2/repository/models/{name}/load`: loads (or reloads) a model (explicit model control).
    ///
    /// - Parameters:
    ///   - config: a model configuration in JSON to use instead of the repository's `config.pbtxt`.
    ///   - files: file contents to use instead of the repository's, keyed by path inside the model
    ///     folder (for example `"1/model.onnx"`); Triton requires `config` with them.
    public func loadModel(
        _ modelName: String, config: String? = nil, files: [String: Data] = [:], options: CallOptions = CallOptions()
    ) async throws(TritonClientError) {
        guard !modelName.isEmpty else { throw .invalidArgument("the model name is empty") }
        var parameters: [(key: String, value: JSONValue)] = []
        if let config { parameters.append((key: "config", value: .string(config))) }
        for (path, contents) in files.sorted(by: { $0.key < $1.key }) {
            parameters.append((key: "file:" + path, value: .string(contents.base64EncodedString())))
        }
        let body: JSONValue = parameters.isEmpty ? .object([]) : .object([(key: "parameters", value: .object(parameters))])
        _ = try await sendJSON(
            "POST", "/v2/repository/models/" + Self.percentEncode(modelName) + "/load", body: body, options: options)
    }

    /// `POST /v2/repository/models/{name}/unload`: unloads a model, and optionally the models it depends on.
    public func unloadModel(_ modelName: String, unloadDependents: Bool = false, options: CallOptions = CallOptions())
        async throws(TritonClientError)
    {
        guard !modelName.isEmpty else { throw .invalidArgument("the model name is empty") }
        let body: JSONValue = ["parameters": ["unload_dependents": .bool(unloadDependents)]]
        _ = try await sendJSON(
            "POST", "/v2/repository/models/" + Self.percentEncode(modelName) + "/unload", body: body, options: options)
    }

    // MARK: - Statistics, trace and log settings

    /// `GET /v2/models[/{name}[/versions/{version}]]/stats`: inference statistics (all models when `modelName` is nil).
    public func inferenceStatistics(modelName: String? = nil, version: String? = nil, options: CallOptions = CallOptions())
        async throws(TritonClientError) -> JSONValue
    {
        let path = try modelName.map { (name) throws(TritonClientError) in try Self.modelPath(name, version: version) } ?? "/v2/models"
        return try await sendJSON("GET", path + "/stats", options: options)
    }

    /// `GET /v2[/models/{name}]/trace/setting`: the global (or a model's) trace settings.
    public func traceSettings(modelName: String? = nil, options: CallOptions = CallOptions())
        async throws(TritonClientError) -> JSONValue
    {
        try await sendJSON("GET", Self.tracePath(modelName), options: options)
    }

    /// `POST /v2[/models/{name}]/trace/setting`: changes trace settings (a `nil`/`.null` value clears a
    /// model's override) and returns the settings now in force.
    public func updateTraceSettings(
        modelName: String? = nil, settings: [String: JSONValue], options: CallOptions = CallOptions()
    ) async throws(TritonClientError) -> JSONValue {
        let body = JSONValue.object(settings.sorted(by: { $0.key < $1.key }).map { (key: $0.key, value: $0.value) })
        return try await sendJSON("POST", Self.tracePath(modelName), body: body, options: options)
    }

    private static func tracePath(_ modelName: String?) throws(TritonClientError) -> String {
        guard let modelName else { return "/v2/trace/setting" }
        return try modelPath(modelName, version: nil) + "/trace/setting"
    }

    /// `GET /v2/logging`: the server's log settings.
    public func logSettings(options: CallOptions = CallOptions()) async throws(TritonClientError) -> JSONValue {
        try await sendJSON("GET", "/v2/logging", options: options)
    }

    /// `POST /v2/logging`: changes log settings and returns the settings now in force.
    public func updateLogSettings(_ settings: [String: JSONValue], options: CallOptions = CallOptions())
        async throws(TritonClientError) -> JSONValue
    {
        let body = JSONValue.object(settings.sorted(by: { $0.key < $1.key }).map { (key: $0.key, value: $0.value) })
        return try await sendJSON("POST", "/v2/logging", body: body, options: options)
    }

    // MARK: - System shared memory

    /// `GET /v2/systemsharedmemory[/region/{name}]/status`: registered system shared-memory regions.
    public func systemSharedMemoryStatus(regionName: String? = nil, options: CallOptions = CallOptions())
        async throws(TritonClientError) -> JSONValue
    {
        let path = regionName.map { "/v2/systemsharedmemory/region/" + Self.percentEncode($0) } ?? "/v2/systemsharedmemory"
        return try await sendJSON("GET", path + "/status", options: options)
    }

    /// `POST /v2/systemsharedmemory/region/{name}/register`: registers a POSIX shared-memory object
    /// (`key`, as given to `shm_open`) under `name`.
    public func registerSystemSharedMemory(
        name: String, key: String, byteSize: Int, offset: Int = 0, options: CallOptions = CallOptions()
    ) async throws(TritonClientError) {
        guard !name.isEmpty, byteSize >= 0, offset >= 0 else {
            throw .invalidArgument("a shared-memory region needs a name, a byte size and an offset of at least 0")
        }
        let body: JSONValue = ["key": .string(key), "offset": .int(Int64(offset)), "byte_size": .int(Int64(byteSize))]
        _ = try await sendJSON(
            "POST", "/v2/systemsharedmemory/region/" + Self.percentEncode(name) + "/register", body: body, options: options)
    }

    /// `POST /v2/systemsharedmemory[/region/{name}]/unregister`: unregisters one region, or all when `name` is nil.
    public func unregisterSystemSharedMemory(name: String? = nil, options: CallOptions = CallOptions())
        async throws(TritonClientError)
    {
        let path = name.map { "/v2/systemsharedmemory/region/" + Self.percentEncode($0) } ?? "/v2/systemsharedmemory"
        _ = try await sendJSON("POST", path + "/unregister", options: options)
    }
}
