import Foundation

/// One output tensor of a response, as Triton described it.
public struct InferOutputTensor: Sendable {
    /// The output's name.
    public let name: String
    /// The element type as Triton sent it (see ``datatype`` for the typed form).
    public let datatypeName: String
    /// The tensor's shape.
    public let shape: [Int64]
    /// The output's `parameters` object, if any.
    public let parameters: JSONValue?

    /// The element type, or `nil` if Triton sent a name this client does not know.
    public var datatype: TritonDataType? { TritonDataType(rawValue: datatypeName) }

    enum Storage: Sendable {
        /// Bytes of the response body (binary extension).
        case binary(Range<Int>)
        /// A JSON `data` array.
        case json([JSONValue])
        /// Written to shared memory; no data in the response.
        case none
    }
    let storage: Storage
}

/// The result of an inference call: the response's metadata and typed access to its outputs.
///
/// ```swift
/// let result = try await client.infer("identity_fp32", inputs: [input])
/// let values = try result.asFloat("OUTPUT0")
/// let shape = try result.shape("OUTPUT0")
/// ```
public struct InferResult: Sendable {
    /// The request id Triton echoed back (empty when none was sent).
    public let id: String
    /// The model that answered.
    public let modelName: String
    /// The version of the model that answered.
    public let modelVersion: String
    /// The response's `parameters` object (Triton may repeat keys in it; lookups take the last).
    public let parameters: JSONValue?
    /// The outputs, in the order Triton returned them.
    public let outputs: [InferOutputTensor]
    /// The full JSON header of the response.
    public let json: JSONValue

    private let body: [UInt8]

    /// Parses an infer response body. `jsonHeaderLength` is the `Inference-Header-Content-Length`
    /// header's value when Triton sent one.
    public init(body: [UInt8], jsonHeaderLength: Int?) throws(TritonClientError) {
        let headerEnd: Int
        if let length = jsonHeaderLength {
            guard length >= 0, length <= body.count else {
                throw .malformed(
                    "Inference-Header-Content-Length is \(length) but the response body has only \(body.count) bytes")
            }
            headerEnd = length
        } else {
            headerEnd = body.count
        }
        let json = try JSONValue.parse(body[0..<headerEnd])
        guard case .object = json else { throw .malformed("the infer response is not a JSON object") }
        self.json = json
        self.body = body
        id = json["id"]?.stringValue ?? ""
        modelName = json["model_name"]?.stringValue ?? ""
        modelVersion = json["model_version"]?.stringValue ?? ""
        parameters = json["parameters"]

        var outputs: [InferOutputTensor] = []
        var offset = headerEnd
        for item in json["outputs"]?.arrayValue ?? [] {
            guard let name = item["name"]?.stringValue else { throw .malformed("an output has no name") }
            guard let datatype = item["datatype"]?.stringValue else {
                throw .malformed("output '\(name)' has no datatype")
            }
            var shape: [Int64] = []
            for dim in item["shape"]?.arrayValue ?? [] {
                guard let d = dim.int64Value, d >= 0 else { throw .malformed("output '\(name)' has an invalid shape") }
                shape.append(d)
            }
            let storage: InferOutputTensor.Storage
            if let sizeValue = item["parameters"]?["binary_data_size"] {
                guard let size = sizeValue.int64Value, size >= 0, let size = Int(exactly: size) else {
                    throw .malformed("output '\(name)' has an invalid binary_data_size")
                }
                guard body.count - offset >= size else {
                    throw .malformed(
                        "output '\(name)' announces \(size) bytes but only \(body.count - offset) bytes of binary data are left")
                }
                storage = .binary(offset..<(offset + size))
                offset += size
            } else if let data = item["data"]?.arrayValue {
                storage = .json(Self.flatten(data))
            } else {
                storage = .none
            }
            outputs.append(InferOutputTensor(
                name: name, datatypeName: datatype, shape: shape, parameters: item["parameters"], storage: storage))
        }
        self.outputs = outputs
    }

    private static func flatten(_ data: [JSONValue]) -> [JSONValue] {
        // Triton sends flat arrays, but the protocol allows nested row-major ones.
        guard data.contains(where: { $0.arrayValue != nil }) else { return data }
        var flat: [JSONValue] = []
        func visit(_ values: [JSONValue]) {
            for value in values {
                if let nested = value.arrayValue { visit(nested) } else { flat.append(value) }
            }
        }
        visit(data)
        return flat
    }

    /// The output named `name`.
    public func output(_ name: String) -> InferOutputTensor? {
        outputs.first(where: { $0.name == name })
    }

    /// The shape of the output named `name`.
    public func shape(_ name: String) throws(TritonClientError) -> [Int64] {
        try tensor(name).shape
    }

    /// The raw binary-extension bytes of an output (little-endian; BYTES length-prefixed),
    /// or `nil` when it came as JSON or went to shared memory.
    public func rawData(_ name: String) throws(TritonClientError) -> [UInt8]? {
        let t = try tensor(name)
        if case .binary(let range) = t.storage { return Array(body[range]) }
        return nil
    }

    private func tensor(_ name: String) throws(TritonClientError) -> InferOutputTensor {
        guard let t = output(name) else {
            throw .invalidArgument("the response has no output '\(name)' (has: \(outputs.map(\.name).joined(separator: ", ")))")
        }
        return t
    }

    private func elementCount(_ t: InferOutputTensor) throws(TritonClientError) -> Int {
        do {
            return try InferInput.elementCount(of: t.shape, name: t.name)
        } catch {
            throw .malformed(error.message)
        }
    }

    private func check(_ t: InferOutputTensor, is accepted: [TritonDataType]) throws(TritonClientError) -> TritonDataType {
        guard let dt = t.datatype, accepted.contains(dt) else {
            throw .invalidArgument(
                "output '\(t.name)' is \(t.datatypeName), not \(accepted.map(\.rawValue).joined(separator: "/"))")
        }
        return dt
    }

    private func fixed<T: BitwiseCopyable>(
        _ name: String, _ accepted: TritonDataType, json convert: (JSONValue) -> T?
    ) throws(TritonClientError) -> [T] {
        let t = try tensor(name)
        _ = try check(t, is: [accepted])
        let count = try elementCount(t)
        switch t.storage {
        case .binary(let range):
            guard range.count == count * MemoryLayout<T>.stride else {
                throw .malformed(
                    "output '\(name)': shape \(t.shape) of \(t.datatypeName) needs \(count * MemoryLayout<T>.stride) bytes, got \(range.count)")
            }
            return RawTensor.decode(body[range], count: count)
        case .json(let values):
            guard values.count == count else {
                throw .malformed("output '\(name)': shape \(t.shape) needs \(count) values, got \(values.count)")
            }
            var result: [T] = []
            result.reserveCapacity(count)
            for value in values {
                guard let v = convert(value) else {
                    throw .malformed("output '\(name)': \(value) is not a valid \(t.datatypeName) value")
                }
                result.append(v)
            }
            return result
        case .none:
            throw .invalidArgument("output '\(name)' has no data in the response (it went to shared memory)")
        }
    }

    /// FP32 values; FP16 and BF16 outputs are widened to `Float`.
    public func asFloat(_ name: String) throws(TritonClientError) -> [Float] {
        let t = try tensor(name)
        switch try check(t, is: [.fp32, .fp16, .bf16]) {
        case .fp16: return try asFloat16(name).map { Float($0) }
        case .bf16:
            let bits: [UInt16] = try fixed(name, .bf16) { _ in nil }
            return bits.map(BFloat16Conversion.float(from:))
        default: return try fixed(name, .fp32) { $0.doubleValue.map { Float($0) } }
        }
    }
    public func asFloat16(_ name: String) throws(TritonClientError) -> [Float16] {
        try fixed(name, .fp16) { $0.doubleValue.map { Float16($0) } }
    }
    public func asDouble(_ name: String) throws(TritonClientError) -> [Double] { try fixed(name, .fp64) { $0.doubleValue } }
    public func asInt8(_ name: String) throws(TritonClientError) -> [Int8] { try fixed(name, .int8) { $0.int64Value.flatMap { Int8(exactly: $0) } } }
    public func asInt16(_ name: String) throws(TritonClientError) -> [Int16] { try fixed(name, .int16) { $0.int64Value.flatMap { Int16(exactly: $0) } } }
    public func asInt32(_ name: String) throws(TritonClientError) -> [Int32] { try fixed(name, .int32) { $0.int64Value.flatMap { Int32(exactly: $0) } } }
    public func asInt64(_ name: String) throws(TritonClientError) -> [Int64] { try fixed(name, .int64) { $0.int64Value } }
    public func asUInt8(_ name: String) throws(TritonClientError) -> [UInt8] { try fixed(name, .uint8) { $0.uint64Value.flatMap { UInt8(exactly: $0) } } }
    public func asUInt16(_ name: String) throws(TritonClientError) -> [UInt16] { try fixed(name, .uint16) { $0.uint64Value.flatMap { UInt16(exactly: $0) } } }
    public func asUInt32(_ name: String) throws(TritonClientError) -> [UInt32] { try fixed(name, .uint32) { $0.uint64Value.flatMap { UInt32(exactly: $0) } } }
    public func asUInt64(_ name: String) throws(TritonClientError) -> [UInt64] { try fixed(name, .uint64) { $0.uint64Value } }
    public func asBool(_ name: String) throws(TritonClientError) -> [Bool] {
        let bytes: [UInt8] = try fixed(name, .bool) { $0.boolValue.map { $0 ? 1 : 0 } }
        return bytes.map { $0 != 0 }
    }

    /// BYTES elements as byte strings.
    public func asBytes(_ name: String) throws(TritonClientError) -> [Data] {
        try bytesElements(name) { Data($0) }
    }

    /// BYTES elements as strings (decoded as UTF-8; classification results come this way).
    public func asStrings(_ name: String) throws(TritonClientError) -> [String] {
        try bytesElements(name) { String(decoding: $0, as: UTF8.self) }
    }

    private func bytesElements<T>(_ name: String, _ make: (ArraySlice<UInt8>) -> T) throws(TritonClientError) -> [T] {
        let t = try tensor(name)
        _ = try check(t, is: [.bytes])
        let count = try elementCount(t)
        var result: [T] = []
        switch t.storage {
        case .binary(let range):
            try BytesCodec.forEach(body[range], name: name, error: TritonClientError.malformed) { result.append(make($0)) }
        case .json(let values):
            for value in values {
                guard let s = value.stringValue else { throw .malformed("output '\(name)': \(value) is not a string") }
                result.append(make(Array(s.utf8)[...]))
            }
        case .none:
            throw .invalidArgument("output '\(name)' has no data in the response (it went to shared memory)")
        }
        guard result.count == count else {
            throw .malformed("output '\(name)': shape \(t.shape) needs \(count) elements, got \(result.count)")
        }
        return result
    }
}
