/// `GET /v2`: who the server is and which protocol extensions it supports.
public struct ServerMetadata: Sendable, Equatable {
    public var name: String
    public var version: String
    public var extensions: [String]

    init(json: JSONValue) throws(TritonClientError) {
        guard let name = json["name"]?.stringValue else { throw .malformed("server metadata has no name") }
        self.name = name
        version = json["version"]?.stringValue ?? ""
        extensions = (json["extensions"]?.arrayValue ?? []).compactMap(\.stringValue)
    }
}

/// Name, type and shape of one model input or output.
public struct TensorMetadata: Sendable, Equatable {
    public var name: String
    /// The datatype name as Triton sent it (see ``TritonDataType``).
    public var datatype: String
    /// The shape; `-1` marks a variable dimension.
    public var shape: [Int64]

    init(json: JSONValue) throws(TritonClientError) {
        guard let name = json["name"]?.stringValue, let datatype = json["datatype"]?.stringValue else {
            throw .malformed("tensor metadata needs a name and a datatype")
        }
        self.name = name
        self.datatype = datatype
        var shape: [Int64] = []
        for dim in json["shape"]?.arrayValue ?? [] {
            guard let d = dim.int64Value else { throw .malformed("tensor '\(name)' has an invalid shape") }
            shape.append(d)
        }
        self.shape = shape
    }
}

/// `GET /v2/models/{name}`: a model's versions, platform, inputs and outputs.
public struct ModelMetadata: Sendable, Equatable {
    public var name: String
    public var versions: [String]
    public var platform: String
    public var inputs: [TensorMetadata]
    public var outputs: [TensorMetadata]

    init(json: JSONValue) throws(TritonClientError) {
        guard let name = json["name"]?.stringValue else { throw .malformed("model metadata has no name") }
        self.name = name
        versions = (json["versions"]?.arrayValue ?? []).compactMap(\.stringValue)
        platform = json["platform"]?.stringValue ?? ""
        inputs = try (json["inputs"]?.arrayValue ?? []).map { (item) throws(TritonClientError) in try TensorMetadata(json: item) }
        outputs = try (json["outputs"]?.arrayValue ?? []).map { (item) throws(TritonClientError) in try TensorMetadata(json: item) }
    }
}

/// One entry of the repository index.
public struct RepositoryModel: Sendable, Equatable {
    public var name: String
    /// The version, when Triton knows one (absent for models never loaded).
    public var version: String?
    /// `READY`, `UNAVAILABLE`, `LOADING`, `UNLOADING`… (absent for models never loaded).
    public var state: String?
    /// Why the model is in this state (for example a load error).
    public var reason: String?

    init(json: JSONValue) throws(TritonClientError) {
        guard let name = json["name"]?.stringValue else { throw .malformed("a repository index entry has no name") }
        self.name = name
        version = json["version"]?.stringValue
        state = json["state"]?.stringValue
        reason = json["reason"]?.stringValue
    }
}
