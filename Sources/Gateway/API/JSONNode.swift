import Foundation

/// A parsed JSON value that keeps booleans, integers and other numbers apart,
/// for checking client documents exactly.
indirect enum JSONNode: Decodable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONNode])
    case object([String: JSONNode])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .integer(i); return }
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONNode].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONNode].self))
    }

    static func parse(_ bytes: some Collection<UInt8>) -> JSONNode? {
        try? JSONDecoder().decode(JSONNode.self, from: Data(bytes))
    }

    subscript(key: String) -> JSONNode? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var string: String? { if case .string(let s) = self { return s } else { return nil } }
    var integer: Int64? { if case .integer(let i) = self { return i } else { return nil } }
    var array: [JSONNode]? { if case .array(let a) = self { return a } else { return nil } }
    var object: [String: JSONNode]? { if case .object(let o) = self { return o } else { return nil } }
}
