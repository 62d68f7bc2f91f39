/// The tensor element types of the KServe v2 protocol, spelled as Triton spells them on the wire.
public enum TritonDataType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case bool = "BOOL"
    case uint8 = "UINT8"
    case uint16 = "UINT16"
    case uint32 = "UINT32"
    case uint64 = "UINT64"
    case int8 = "INT8"
    case int16 = "INT16"
    case int32 = "INT32"
    case int64 = "INT64"
    case fp16 = "FP16"
    case fp32 = "FP32"
    case fp64 = "FP64"
    case bf16 = "BF16"
    case bytes = "BYTES"

    /// Size of one element in the binary tensor layout, or `nil` for `BYTES`
    /// (whose elements are variable-length, each prefixed by a 4-byte little-endian length).
    public var elementSize: Int? {
        switch self {
        case .bool, .uint8, .int8: return 1
        case .uint16, .int16, .fp16, .bf16: return 2
        case .uint32, .int32, .fp32: return 4
        case .uint64, .int64, .fp64: return 8
        case .bytes: return nil
        }
    }

    /// Whether the JSON form of the protocol can carry this type (FP16 and BF16 have no JSON form).
    public var hasJSONRepresentation: Bool {
        self != .fp16 && self != .bf16
    }

    public var description: String { rawValue }
}
