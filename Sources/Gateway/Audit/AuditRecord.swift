import Crypto
import Foundation

/// The key that seals an audit chain: derived from the audit key file (the one behind
/// `input_hmac`, kept outside the audit directory), separated from the input key so the
/// two uses never share a MAC key. Without it a record cannot be rewritten and the chain
/// recomputed: the chain is keyed, not merely hashed.
public struct AuditChainKey: Sendable {
    let key: SendableKey

    /// `keyBytes`: the audit key file's contents, as the gateway reads them.
    public init(keyBytes: [UInt8]) {
        let derived = HMAC<SHA256>.authenticationCode(
            for: Array("moderation-gateway audit chain v1".utf8), using: SymmetricKey(data: keyBytes))
        key = SendableKey(SymmetricKey(data: Array(derived)))
    }

    /// HMAC-SHA-256 of `body` with the chain key, lowercase hex.
    func seal<Bytes: DataProtocol>(_ body: Bytes) -> String {
        HexEncoding.lowercase(HMAC<SHA256>.authenticationCode(for: body, using: key.key))
    }
}

/// The framing of one audit line, shared by the writer and the verifier:
///
///     {"seq":1,…,"prev_hash":"<64 hex>","hash":"<64 hex>"}\n
///
/// `hash` = HMAC-SHA-256, with the ``AuditChainKey``, of the line's bytes without the
/// `,"hash":"…"` member, that is of `{"seq":1,…,"prev_hash":"…"}` exactly as written.
/// Sealing the written bytes (not a re-serialisation) means no canonical JSON form is
/// needed to verify. The first record of a chain has `prev_hash` = 64 zeros; a line is
/// complete only with its trailing newline.
enum AuditFraming {
    static let genesisHash = String(repeating: "0", count: 64)
    static let hashSuffixPrefix = Array(",\"hash\":\"".utf8)
    /// `,"hash":"` + 64 hex + `"}`
    static let hashSuffixLength = hashSuffixPrefix.count + 64 + 2

    /// Seals a body that ends with `"prev_hash":"…"}`: returns the full line
    /// (with newline) and its hash.
    static func seal(body: [UInt8], key: AuditChainKey) -> (line: [UInt8], hash: String) {
        let hash = key.seal(body)
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
