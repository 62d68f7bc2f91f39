import Crypto
import Foundation

/// The framing of one audit line, shared by the writer and the verifier:
///
///     {"seq":1,…,"prev_hash":"<64 hex>","hash":"<64 hex>"}\n
///
/// `hash` = SHA-256 of the line's bytes without the `,"hash":"…"` member, that is of
/// `{"seq":1,…,"prev_hash":"…"}` exactly as written. Hashing the written bytes (not a
/// re-serialisation) means no canonical JSON form is needed to verify. The first
/// record of a chain has `prev_hash` = 64 zeros; a line is complete only with its
/// trailing newline.
enum AuditFraming {
    static let genesisHash = String(repeating: "0", count: 64)
    static let hashSuffixPrefix = Array(",\"hash\":\"".utf8)
    /// `,"hash":"` + 64 hex + `"}`
    static let hashSuffixLength = hashSuffixPrefix.count + 64 + 2

    /// Seals a body that ends with `"prev_hash":"…"}`: returns the full line
    /// (with newline) and its hash.
    static func seal(body: [UInt8]) -> (line: [UInt8], hash: String) {
        let hash = HexEncoding.lowercase(SHA256.hash(data: body))
        var line = body
        line.removeLast()  // "}"
        line.append(contentsOf: hashSuffixPrefix)
        line.append(contentsOf: Array(hash.utf8))
        line.append(contentsOf: Array("\"}\n".utf8))
        return (line, hash)
    }

    /// Splits a line (without newline) into the hashed body and the stated hash;
    /// `nil` when the line does not end in a hash member.
    static func unseal(line: ArraySlice<UInt8>) -> (body: [UInt8], statedHash: String)? {
        guard line.count > hashSuffixLength + 2 else { return nil }
        let suffixStart = line.endIndex - hashSuffixLength
        guard Array(line[suffixStart..<(suffixStart + hashSuffixPrefix.count)]) == hashSuffixPrefix,
              line[line.endIndex - 2] == UInt8(ascii: "\""), line[line.endIndex - 1] == UInt8(ascii: "}") else {
            return nil
        }
        let hashBytes = line[(suffixStart + hashSuffixPrefix.count)..<(line.endIndex - 2)]
        guard hashBytes.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        var body = Array(line[line.startIndex..<suffixStart])
        body.append(UInt8(ascii: "}"))
        return (body, String(decoding: hashBytes, as: UTF8.self))
    }
}

/// Writes one JSON object member by member in a fixed order; strings are escaped
/// so that no control character (CR, LF, NUL…) can reach the file raw.
struct AuditJSONWriter {
    private(set) var bytes: [UInt8] = [UInt8(ascii: "{")]
    private var first = true

    init() {
        bytes.reserveCapacity(768)
    }

    private mutating func key(_ name: String) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        Self.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func string(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        Self.appendString(value, to: &bytes)
    }

    mutating func int(_ name: String, _ value: Int?) {
        guard let value else { return }
        key(name)
        bytes.append(contentsOf: Array(String(value).utf8))
    }

    mutating func double(_ name: String, _ value: Double?) {
        guard let value else { return }
        key(name)
        Self.appendDouble(value, to: &bytes)
    }

    mutating func strings(_ name: String, _ values: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            Self.appendString(value, to: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func value(_ name: String, _ value: AuditValue) {
        key(name)
        Self.appendValue(value, to: &bytes)
    }

    mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    static func appendValue(_ value: AuditValue, to bytes: inout [UInt8]) {
        switch value {
        case .string(let s): appendString(s, to: &bytes)
        case .int(let i): bytes.append(contentsOf: Array(String(i).utf8))
        case .double(let d): appendDouble(d, to: &bytes)
        case .bool(let b): bytes.append(contentsOf: Array((b ? "true" : "false").utf8))
        case .null: bytes.append(contentsOf: Array("null".utf8))
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                appendValue(item, to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                appendString(key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                appendValue(members[key] ?? .null, to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    static func appendDouble(_ value: Double, to bytes: inout [UInt8]) {
        if value.isFinite {
            bytes.append(contentsOf: Array("\(value)".utf8))
        } else {
            bytes.append(contentsOf: Array("null".utf8))
        }
    }

    static func appendString(_ value: String, to bytes: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20, 0x7F:
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
