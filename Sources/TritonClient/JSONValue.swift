/// A JSON document as Triton sends it, parsed without losing anything a caller may need.
///
/// Objects keep their members in order and tolerate duplicate keys (Triton 2.51 can emit
/// the same key twice in a response's `parameters`); lookups by key return the last
/// occurrence. Integers are kept exact (`Int64`/`UInt64`) so 64-bit tensor values survive.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default:
            if let a = lhs.exactInteger, let b = rhs.exactInteger { return a == b }
            if let a = lhs.doubleValue, let b = rhs.doubleValue, lhs.isNumber, rhs.isNumber { return a == b }
            return false
        }
    }

    private var isNumber: Bool {
        switch self {
        case .int, .uint, .double: return true
        default: return false
        }
    }

    private var exactInteger: (negative: Bool, magnitude: UInt64)? {
        switch self {
        case .int(let v): return (v < 0, v.magnitude)
        case .uint(let v): return (false, v)
        default: return nil
        }
    }

    /// The member named `key` of an object (the last one if the key repeats), else `nil`.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }

    /// The element at `index` of an array, else `nil`.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The value as `Int64` when it is an integer that fits (or a whole double).
    public var int64Value: Int64? {
        switch self {
        case .int(let v): return v
        case .uint(let v): return Int64(exactly: v)
        case .double(let d): return Int64(exactly: d)
        default: return nil
        }
    }

    /// The value as `UInt64` when it is a non-negative integer that fits.
    public var uint64Value: UInt64? {
        switch self {
        case .int(let v): return UInt64(exactly: v)
        case .uint(let v): return v
        case .double(let d): return UInt64(exactly: d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .uint(let v): return Double(v)
        case .double(let d): return d
        default: return nil
        }
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [(key: String, value: JSONValue)]? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The object's members as a dictionary; for a repeated key the last value wins.
    public var dictionaryValue: [String: JSONValue]? {
        guard case .object(let members) = self else { return nil }
        var result: [String: JSONValue] = [:]
        for member in members { result[member.key] = member.value }
        return result
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: CustomStringConvertible {
    /// The value serialized as compact JSON.
    public var description: String {
        var writer = JSONWriter()
        writer.write(self)
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}

// MARK: - Parsing

extension JSONValue {
    /// Parses a complete JSON document. Throws ``TritonClientError/Code/malformedResponse`` on any error.
    public static func parse(_ bytes: some Collection<UInt8>) throws(TritonClientError) -> JSONValue {
        try parse(bytes, maxValues: .max)
    }

    /// Parses a complete JSON document of at most `maxValues` values (every scalar, array
    /// and object counts one): the tree of a document that passes holds at most that many
    /// nodes, whatever the document's size. Throws past the limit, as on any error.
    public static func parse(_ bytes: some Collection<UInt8>, maxValues: Int) throws(TritonClientError) -> JSONValue {
        try withParser(bytes, maxValues: maxValues) { (parser) throws(TritonClientError) in try parser.parseDocument() }
    }

    /// The value of the member `name` of a document that must be a JSON object; `nil` when
    /// it has none. The whole document's syntax is checked, but nothing outside that
    /// member is kept, so the memory this takes does not grow with what else the document
    /// holds (only that member's value counts against `maxValues`). Throws on malformed
    /// JSON, on a document that is not an object, and when `name` appears twice.
    public static func member(
        _ name: String, ofObject bytes: some Collection<UInt8>, maxValues: Int = .max
    ) throws(TritonClientError) -> JSONValue? {
        try withParser(bytes, maxValues: maxValues) { (parser) throws(TritonClientError) in try parser.parseMember(name) }
    }

    private static func withParser<T>(
        _ bytes: some Collection<UInt8>, maxValues: Int, _ body: (inout JSONParser) throws(TritonClientError) -> T
    ) throws(TritonClientError) -> T {
        // Contiguous bytes (an array or a slice of one) are read in place, not copied.
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(TritonClientError) -> T in
                var parser = JSONParser(buffer, maxValues: maxValues)
                return try body(&parser)
            }
        }
        if let result { return try result.get() }
        return try Array(bytes).withUnsafeBufferPointer { (buffer) throws(TritonClientError) -> T in
            var parser = JSONParser(buffer, maxValues: maxValues)
            return try body(&parser)
        }
    }

    /// Parses a complete JSON document from a string.
    public static func parse(_ text: String) throws(TritonClientError) -> JSONValue {
        try parse(Array(text.utf8))
    }
}

/// A small recursive-descent JSON parser: strict about syntax, bounded in depth and
/// (optionally) in the number of values it builds, and keeping duplicate object keys
/// instead of failing on them.
struct JSONParser {
    private let input: UnsafeBufferPointer<UInt8>
    private var position = 0
    private var depth = 0
    private static let maxDepth = 256
    private let maxValues: Int
    private var values = 0
    /// Values are checked but not built (`.null` stands in): the parts of a document a
    /// caller does not want cost no memory.
    private var discarding = false

    init(_ input: UnsafeBufferPointer<UInt8>, maxValues: Int = .max) {
        self.input = input
        self.maxValues = maxValues
    }

    mutating func parseDocument() throws(TritonClientError) -> JSONValue {
        let value = try parseValue()
        try expectEnd()
        return value
    }

    private mutating func expectEnd() throws(TritonClientError) {
        skipWhitespace()
        guard position == input.count else { throw fail("trailing characters after the JSON document") }
    }

    /// The top-level object's member `name`, every other member checked and discarded.
    mutating func parseMember(_ name: String) throws(TritonClientError) -> JSONValue? {
        skipWhitespace()
        guard position < input.count, input[position] == UInt8(ascii: "{") else { throw fail("expected an object") }
        guard case .object(let members) = try parseObject(onlyMember: name) else { return nil }
        try expectEnd()
        return members.first?.value
    }

    private func fail(_ what: String) -> TritonClientError {
        .malformed("invalid JSON at byte \(position): \(what)")
    }

    private mutating func skipWhitespace() {
        while position < input.count {
            switch input[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    private mutating func parseValue() throws(TritonClientError) -> JSONValue {
        skipWhitespace()
        guard position < input.count else { throw fail("unexpected end of input") }
        if !discarding {
            values += 1
            if values > maxValues { throw fail("more than \(maxValues) values") }
        }
        switch input[position] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(TritonClientError) {
        let count = literal.utf8CodeUnitCount
        guard input.count - position >= count else { throw fail("unexpected end of input") }
        let base = literal.utf8Start
        for i in 0..<count where input[position + i] != base[i] { throw fail("invalid literal") }
        position += count
    }

    private mutating func enter() throws(TritonClientError) {
        depth += 1
        if depth > Self.maxDepth { throw fail("nesting deeper than \(Self.maxDepth)") }
    }

    /// With `onlyMember`, only that member is kept (the others are checked and discarded),
    /// and a second one with that name is an error.
    private mutating func parseObject(onlyMember: String? = nil) throws(TritonClientError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        position += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if position < input.count, input[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard position < input.count, input[position] == UInt8(ascii: "\"") else { throw fail("expected a key") }
            let key = try parseString()
            skipWhitespace()
            guard position < input.count, input[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            position += 1
            let keep = !discarding && (onlyMember == nil || key == onlyMember)
            if keep, onlyMember != nil, !members.isEmpty { throw fail("member \"\(key)\" given twice") }
            let outerDiscarding = discarding
            discarding = !keep
            let value = try parseValue()
            discarding = outerDiscarding
            if keep { members.append((key: key, value: value)) }
            skipWhitespace()
            guard position < input.count else { throw fail("unexpected end of input in object") }
            if input[position] == UInt8(ascii: ",") { position += 1; continue }
            if input[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func parseArray() throws(TritonClientError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        position += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if position < input.count, input[position] == UInt8(ascii: "]") {
            position += 1
            return .array(items)
        }
        while true {
            let item = try parseValue()
            if !discarding { items.append(item) }
            skipWhitespace()
            guard position < input.count else { throw fail("unexpected end of input in array") }
            if input[position] == UInt8(ascii: ",") { position += 1; continue }
            if input[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func parseString() throws(TritonClientError) -> String {
        position += 1  // opening quote
        let start = position
        // Fast path: no escapes.
        while position < input.count {
            let c = input[position]
            if c == UInt8(ascii: "\"") {
                let s = discarding ? "" : String(decoding: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
                position += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            position += 1
        }
        var bytes = Array(input[start..<position])
        while position < input.count {
            let c = input[position]
            if c == UInt8(ascii: "\"") {
                position += 1
                return String(decoding: bytes, as: UTF8.self)
            }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") {
                bytes.append(c)
                position += 1
                continue
            }
            position += 1
            guard position < input.count else { break }
            let e = input[position]
            position += 1
            switch e {
            case UInt8(ascii: "\""): bytes.append(0x22)
            case UInt8(ascii: "\\"): bytes.append(0x5C)
            case UInt8(ascii: "/"): bytes.append(0x2F)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard input.count - position >= 6, input[position] == UInt8(ascii: "\\"),
                        input[position + 1] == UInt8(ascii: "u")
                    else { throw fail("unpaired surrogate") }
                    position += 2
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw fail("unpaired surrogate")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid unicode escape") }
                bytes.append(contentsOf: String(Character(unicode)).utf8)
            default:
                throw fail("invalid escape")
            }
        }
        throw fail("unterminated string")
    }

    private mutating func parseHex4() throws(TritonClientError) -> UInt32 {
        guard input.count - position >= 4 else { throw fail("short unicode escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = input[position]
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    private mutating func parseNumber() throws(TritonClientError) -> JSONValue {
        let start = position
        var isInteger = true
        if input[position] == UInt8(ascii: "-") { position += 1 }
        let digitsStart = position
        while position < input.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(input[position]) { position += 1 }
        guard position > digitsStart else { throw fail("expected digits") }
        if input[digitsStart] == UInt8(ascii: "0"), position - digitsStart > 1 { throw fail("leading zero") }
        if position < input.count, input[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            let fracStart = position
            while position < input.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(input[position]) { position += 1 }
            guard position > fracStart else { throw fail("expected fraction digits") }
        }
        if position < input.count, input[position] == UInt8(ascii: "e") || input[position] == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if position < input.count, input[position] == UInt8(ascii: "+") || input[position] == UInt8(ascii: "-") {
                position += 1
            }
            let expStart = position
            while position < input.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(input[position]) { position += 1 }
            guard position > expStart else { throw fail("expected exponent digits") }
        }
        if discarding { return .null }
        let text = String(decoding: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
        if isInteger {
            if let v = Int64(text) { return .int(v) }
            if let v = UInt64(text) { return .uint(v) }
        }
        guard let d = Double(text) else { throw fail("invalid number") }
        return .double(d)
    }
}

// MARK: - Writing

/// Appends compact JSON to a byte buffer. Used for every request body the client builds,
/// so the infer hot path never goes through `JSONSerialization`.
struct JSONWriter {
    var bytes: [UInt8]

    init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always) mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inline(__always) mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0x00..<0x20:
                raw("\\u00")
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(hex[Int(c >> 4)])
                bytes.append(hex[Int(c & 0xF)])
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func integer<T: BinaryInteger>(_ v: T) {
        bytes.append(contentsOf: String(v).utf8)
    }

    /// Writes a finite floating-point number in its shortest round-tripping form.
    mutating func double(_ v: Double) throws(TritonClientError) {
        guard v.isFinite else { throw .invalidArgument("\(v) cannot be represented in JSON; send the tensor as binary data") }
        bytes.append(contentsOf: v.description.utf8)
    }

    mutating func float(_ v: Float) throws(TritonClientError) {
        guard v.isFinite else { throw .invalidArgument("\(v) cannot be represented in JSON; send the tensor as binary data") }
        bytes.append(contentsOf: v.description.utf8)
    }

    mutating func write(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let b): if b { raw("true") } else { raw("false") }
        case .int(let v): integer(v)
        case .uint(let v): integer(v)
        case .double(let d): if d.isFinite { bytes.append(contentsOf: d.description.utf8) } else { raw("null") }
        case .string(let s): string(s)
        case .array(let items):
            byte(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { byte(UInt8(ascii: ",")) }
                write(item)
            }
            byte(UInt8(ascii: "]"))
        case .object(let members):
            byte(UInt8(ascii: "{"))
            for (i, member) in members.enumerated() {
                if i > 0 { byte(UInt8(ascii: ",")) }
                string(member.key)
                byte(UInt8(ascii: ":"))
                write(member.value)
            }
            byte(UInt8(ascii: "}"))
        }
    }
}
