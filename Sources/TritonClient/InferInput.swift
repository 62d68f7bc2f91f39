import Foundation

/// A value of a request or tensor parameter (`priority`, `binary_data_size`, custom keys…).
public enum InferParameter: Sendable, Hashable, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral
{
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)

    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }

    func write(to writer: inout JSONWriter) throws(TritonClientError) {
        switch self {
        case .bool(let b): if b { writer.raw("true") } else { writer.raw("false") }
        case .int(let v): writer.integer(v)
        case .uint(let v): writer.integer(v)
        case .double(let d): try writer.double(d)
        case .string(let s): writer.string(s)
        }
    }
}

/// One input tensor of an inference request.
///
/// Create it with the tensor's name, shape and datatype, then give it data with one of the
/// typed `setData` methods; the element count is checked against the shape there, before
/// anything is sent.
///
/// ```swift
/// var input = InferInput(name: "INPUT0", shape: [1, 4], datatype: .fp32)
/// try input.setData([1, 2, 3, 4] as [Float])
/// ```
public struct InferInput: Sendable {
    enum Payload: Sendable {
        case none
        /// Tensor bytes in the binary-extension layout (little-endian; BYTES length-prefixed).
        case raw([UInt8])
        case sharedMemory(region: String, byteSize: Int, offset: Int)
    }

    /// The input's name in the model configuration.
    public let name: String
    /// The tensor shape (batch dimension included for batching models).
    public private(set) var shape: [Int64]
    /// The element type.
    public let datatype: TritonDataType
    /// Send the data with the binary tensor extension (`true`, fast) or as a JSON array.
    public var binaryData: Bool = true
    /// Extra per-input parameters sent with the tensor.
    public var parameters: [String: InferParameter] = [:]

    var payload: Payload = .none

    public init(name: String, shape: [Int64], datatype: TritonDataType) {
        self.name = name
        self.shape = shape
        self.datatype = datatype
    }

    /// Changes the shape; data set earlier must be set again if its size no longer fits.
    public mutating func setShape(_ shape: [Int64]) {
        self.shape = shape
    }

    /// Number of elements the shape describes.
    public func elementCount() throws(TritonClientError) -> Int {
        try Self.elementCount(of: shape, name: name)
    }

    static func elementCount(of shape: [Int64], name: String) throws(TritonClientError) -> Int {
        var count = 1
        for dim in shape {
            guard dim >= 0, let d = Int(exactly: dim) else {
                throw .invalidArgument("tensor '\(name)': shape \(shape) has a negative dimension")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw .invalidArgument("tensor '\(name)': shape \(shape) is too large") }
            count = product
        }
        // Byte sizes are count × element size (at most 8 bytes): keeping the count
        // well below Int.max / 8 means no caller can overflow computing them.
        guard count <= Int.max / 16 else { throw .invalidArgument("tensor '\(name)': shape \(shape) is too large") }
        return count
    }

    private func checkCount(_ count: Int, accepted: [TritonDataType]) throws(TritonClientError) {
        guard accepted.contains(datatype) else {
            throw .invalidArgument(
                "tensor '\(name)' is \(datatype); these values fit \(accepted.map(\.rawValue).joined(separator: "/"))")
        }
        let expected = try elementCount()
        guard count == expected else {
            throw .invalidArgument("tensor '\(name)': shape \(shape) needs \(expected) elements, got \(count)")
        }
    }

    private mutating func setFixed<T: BitwiseCopyable>(_ values: [T], accepted: TritonDataType) throws(TritonClientError) {
        try checkCount(values.count, accepted: [accepted])
        payload = .raw(values.withUnsafeBytes { Array($0) })
    }

    /// FP32 data; on a BF16 input the values are rounded to bfloat16, on an FP16 input to half precision.
    public mutating func setData(_ values: [Float]) throws(TritonClientError) {
        switch datatype {
        case .bf16:
            try checkCount(values.count, accepted: [.bf16])
            payload = .raw(values.map(BFloat16Conversion.bits(from:)).withUnsafeBytes { Array($0) })
        case .fp16:
            try checkCount(values.count, accepted: [.fp16])
            payload = .raw(values.map { Float16($0) }.withUnsafeBytes { Array($0) })
        default:
            try checkCount(values.count, accepted: [.fp32, .fp16, .bf16])
            payload = .raw(values.withUnsafeBytes { Array($0) })
        }
    }
    public mutating func setData(_ values: [Float16]) throws(TritonClientError) { try setFixed(values, accepted: .fp16) }
    public mutating func setData(_ values: [Double]) throws(TritonClientError) { try setFixed(values, accepted: .fp64) }
    public mutating func setData(_ values: [Int8]) throws(TritonClientError) { try setFixed(values, accepted: .int8) }
    public mutating func setData(_ values: [Int16]) throws(TritonClientError) { try setFixed(values, accepted: .int16) }
    public mutating func setData(_ values: [Int32]) throws(TritonClientError) { try setFixed(values, accepted: .int32) }
    public mutating func setData(_ values: [Int64]) throws(TritonClientError) { try setFixed(values, accepted: .int64) }
    public mutating func setData(_ values: [UInt8]) throws(TritonClientError) { try setFixed(values, accepted: .uint8) }
    public mutating func setData(_ values: [UInt16]) throws(TritonClientError) { try setFixed(values, accepted: .uint16) }
    public mutating func setData(_ values: [UInt32]) throws(TritonClientError) { try setFixed(values, accepted: .uint32) }
    public mutating func setData(_ values: [UInt64]) throws(TritonClientError) { try setFixed(values, accepted: .uint64) }
    public mutating func setData(_ values: [Bool]) throws(TritonClientError) {
        try checkCount(values.count, accepted: [.bool])
        payload = .raw(values.map { $0 ? 1 : 0 })
    }

    /// BYTES data from strings (sent as their UTF-8 bytes).
    public mutating func setData(_ values: [String]) throws(TritonClientError) {
        try checkCount(values.count, accepted: [.bytes])
        var raw: [UInt8] = []
        raw.reserveCapacity(values.reduce(0) { $0 + 4 + $1.utf8.count })
        for value in values { BytesCodec.append(element: value.utf8, to: &raw) }
        payload = .raw(raw)
    }

    /// BYTES data from arbitrary byte strings.
    public mutating func setData(_ values: [Data]) throws(TritonClientError) {
        try checkCount(values.count, accepted: [.bytes])
        var raw: [UInt8] = []
        raw.reserveCapacity(values.reduce(0) { $0 + 4 + $1.count })
        for value in values { BytesCodec.append(element: value, to: &raw) }
        payload = .raw(raw)
    }

    /// Data already laid out as the binary extension wants it (little-endian elements;
    /// for BYTES, each element prefixed by its 4-byte little-endian length). The size is checked.
    public mutating func setRawData(_ bytes: [UInt8]) throws(TritonClientError) {
        let expected = try elementCount()
        if let size = datatype.elementSize {
            guard bytes.count == expected * size else {
                throw .invalidArgument(
                    "tensor '\(name)': shape \(shape) of \(datatype) needs \(expected * size) bytes, got \(bytes.count)")
            }
        } else {
            let elements = try BytesCodec.count(bytes, name: name, error: TritonClientError.invalidArgument)
            guard elements == expected else {
                throw .invalidArgument("tensor '\(name)': shape \(shape) needs \(expected) elements, got \(elements)")
            }
        }
        payload = .raw(bytes)
    }

    /// Reads the tensor from a registered system shared-memory region instead of the request body.
    public mutating func setSharedMemory(regionName: String, byteSize: Int, offset: Int = 0) {
        payload = .sharedMemory(region: regionName, byteSize: byteSize, offset: offset)
    }
}

/// An output the caller wants back, and in which form.
public struct InferRequestedOutput: Sendable {
    /// The output's name in the model configuration.
    public var name: String
    /// Ask for the tensor in the binary extension (`true`, fast) or as a JSON array.
    public var binaryData: Bool
    /// With a value above 0, ask for the top-N classification of this output instead of the raw
    /// tensor (Triton's classification extension); the result is BYTES `"score:index[:label]"`.
    public var classCount: Int
    /// Extra per-output parameters.
    public var parameters: [String: InferParameter] = [:]
    var sharedMemory: (region: String, byteSize: Int, offset: Int)?

    public init(name: String, binaryData: Bool = true, classCount: Int = 0) {
        self.name = name
        self.binaryData = binaryData
        self.classCount = classCount
    }

    /// Have Triton write the tensor into a registered system shared-memory region.
    public mutating func setSharedMemory(regionName: String, byteSize: Int, offset: Int = 0) {
        sharedMemory = (regionName, byteSize, offset)
    }
}

/// Request-level settings of an inference call (the request's `id` and `parameters`).
public struct InferOptions: Sendable {
    /// Sequence correlation id for stateful models: a number or a string.
    public enum SequenceID: Sendable, Hashable {
        case number(UInt64)
        case string(String)
    }

    /// The request id echoed back in ``InferResult/id``.
    public var requestID: String? = nil
    public var sequenceID: SequenceID? = nil
    public var sequenceStart: Bool = false
    public var sequenceEnd: Bool = false
    /// Scheduling priority (1 is highest; 0 means the model's default).
    public var priority: UInt64? = nil
    /// Server-side timeout in microseconds for the request (Triton's `timeout` parameter).
    public var timeoutMicroseconds: UInt64? = nil
    /// When no outputs are requested explicitly: return all outputs as binary (`true`, the
    /// default here) or as JSON (`false`).
    public var binaryDataOutput: Bool = true
    /// Custom request parameters, passed to the model.
    public var parameters: [String: InferParameter] = [:]

    public init() {}
}
