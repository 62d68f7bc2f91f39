// Key values are immutable; this swift-crypto release does not mark P256 keys Sendable yet.
@preconcurrency import Crypto
import Foundation
import _CryptoExtras

/// The little DER (X.690) that public key files need: reading and writing a
/// SubjectPublicKeyInfo for RSA and EC P-256 keys. Every key is re-encoded by
/// this code from its parsed numbers before swift-crypto parses it, so the
/// verifier only ever holds a well-formed public key of the type the algorithm expects.
enum PublicKeyDER {
    struct Element {
        var tag: UInt8
        var content: ArraySlice<UInt8>
    }

    struct ParseError: Error {
        var message: String
    }

    /// Reads one TLV at the front of `input`; returns it and what follows.
    static func read(_ input: ArraySlice<UInt8>) throws(ParseError) -> (Element, rest: ArraySlice<UInt8>) {
        var cursor = input.startIndex
        guard cursor < input.endIndex else { throw ParseError(message: "truncated DER") }
        let tag = input[cursor]
        cursor += 1
        guard cursor < input.endIndex else { throw ParseError(message: "truncated DER") }
        let first = input[cursor]
        cursor += 1
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7F)
            guard (1...4).contains(count), input.endIndex - cursor >= count else { throw ParseError(message: "bad DER length") }
            for _ in 0..<count {
                length = length << 8 | Int(input[cursor])
                cursor += 1
            }
            guard length >= 0x80 else { throw ParseError(message: "non-minimal DER length") }
        }
        guard input.endIndex - cursor >= length else { throw ParseError(message: "truncated DER") }
        let content = input[cursor..<cursor + length]
        return (Element(tag: tag, content: content), input[(cursor + length)...])
    }

    /// Reads a whole SEQUENCE's members.
    static func sequence(_ element: Element) throws(ParseError) -> [Element] {
        guard element.tag == 0x30 else { throw ParseError(message: "expected a SEQUENCE") }
        var members: [Element] = []
        var rest = element.content
        while !rest.isEmpty {
            let (member, next) = try read(rest)
            members.append(member)
            rest = next
        }
        return members
    }

    static func encode(tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [tag]
        if content.count < 0x80 {
            out.append(UInt8(content.count))
        } else {
            var lengthBytes: [UInt8] = []
            var length = content.count
            while length > 0 {
                lengthBytes.insert(UInt8(length & 0xFF), at: 0)
                length >>= 8
            }
            out.append(0x80 | UInt8(lengthBytes.count))
            out += lengthBytes
        }
        return out + content
    }

    /// A non-negative INTEGER from big-endian magnitude bytes.
    static func unsignedInteger(_ magnitude: [UInt8]) -> [UInt8] {
        var bytes = Array(magnitude.drop(while: { $0 == 0 }))
        if bytes.isEmpty { bytes = [0] }
        if bytes[0] & 0x80 != 0 { bytes.insert(0, at: 0) }
        return encode(tag: 0x02, bytes)
    }

    static let rsaEncryptionOID: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]  // 1.2.840.113549.1.1.1
    static let ecPublicKeyOID: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]  // 1.2.840.10045.2.1
    static let prime256v1OID: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]  // 1.2.840.10045.3.1.7
}

/// A public key checked and normalised for one algorithm, parsed once when the keys
/// load: verifying a signature then costs the public-key operation alone (tens of
/// microseconds), not a PEM parse per call as through libjwt and OpenSSL (milliseconds).
struct PublicKeyMaterial: Sendable {
    enum Verifier: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
    }

    var verifier: Verifier
    /// Exact length of a valid signature: the RSA modulus size, or 64 for ES256 (R || S).
    var signatureLength: Int

    /// Whether `signature` is this key's RS256 (PKCS #1 v1.5, SHA-256) or ES256
    /// (ECDSA P-256, SHA-256, R || S) signature of `signingInput`.
    func isValidSignature(_ signature: [UInt8], for signingInput: ArraySlice<UInt8>) -> Bool {
        guard signature.count == signatureLength else { return false }
        let digest = SHA256.hash(data: signingInput)
        switch verifier {
        case .rsa(let key):
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: digest, padding: .insecurePKCS1v1_5)
        case .p256(let key):
            guard let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: digest)
        }
    }

    static let minimumRSABits = 2048
    static let maximumRSABits = 8192

    /// RSA from the modulus and exponent as big-endian magnitudes (JWK `n`, `e`).
    static func rsa(modulus: [UInt8], exponent: [UInt8]) throws(KeyMaterialError) -> PublicKeyMaterial {
        let n = Array(modulus.drop(while: { $0 == 0 }))
        let e = Array(exponent.drop(while: { $0 == 0 }))
        guard let top = n.first else { throw KeyMaterialError("RSA modulus is empty") }
        let bits = (n.count - 1) * 8 + (8 - top.leadingZeroBitCount)
        guard bits >= minimumRSABits else { throw KeyMaterialError("RSA modulus has \(bits) bits; at least \(minimumRSABits) required") }
        guard bits <= maximumRSABits else { throw KeyMaterialError("RSA modulus has \(bits) bits; at most \(maximumRSABits) allowed") }
        guard n.last.map({ $0 & 1 == 1 }) == true else { throw KeyMaterialError("RSA modulus is even") }
        guard !e.isEmpty, e.count <= 8, e.last.map({ $0 & 1 == 1 }) == true, e != [1] else {
            throw KeyMaterialError("RSA exponent must be an odd number greater than 1")
        }
        let rsaPublicKey = PublicKeyDER.encode(tag: 0x30, PublicKeyDER.unsignedInteger(n) + PublicKeyDER.unsignedInteger(e))
        let algorithm = PublicKeyDER.encode(tag: 0x30, PublicKeyDER.encode(tag: 0x06, PublicKeyDER.rsaEncryptionOID) + [0x05, 0x00])
        let spki = PublicKeyDER.encode(tag: 0x30, algorithm + PublicKeyDER.encode(tag: 0x03, [0x00] + rsaPublicKey))
        do {
            return PublicKeyMaterial(verifier: .rsa(try _RSA.Signing.PublicKey(derRepresentation: spki)), signatureLength: (bits + 7) / 8)
        } catch {
            throw KeyMaterialError("RSA public key refused by the verifier (exponent too large?)")
        }
    }

    /// EC P-256 from the affine coordinates (JWK `x`, `y`); the point must lie on the curve.
    static func p256(x: [UInt8], y: [UInt8]) throws(KeyMaterialError) -> PublicKeyMaterial {
        guard x.count == 32, y.count == 32 else { throw KeyMaterialError("P-256 coordinates must be 32 bytes each") }
        return try p256(x963: [0x04] + x + y)
    }

    static func p256(x963: [UInt8]) throws(KeyMaterialError) -> PublicKeyMaterial {
        do {
            return PublicKeyMaterial(verifier: .p256(try P256.Signing.PublicKey(x963Representation: x963)), signatureLength: 64)
        } catch {
            throw KeyMaterialError("not a valid P-256 public key")
        }
    }

    /// A PEM file's public key, which must fit `algorithm`.
    static func fromPEM(_ text: String, algorithm: JWTAlgorithm) throws(KeyMaterialError) -> PublicKeyMaterial {
        if text.contains("PRIVATE KEY-----") {
            throw KeyMaterialError("holds a private key; configure the public key only")
        }
        if let der = pemBlock(text, label: "PUBLIC KEY") {
            return try fromSubjectPublicKeyInfo(der, algorithm: algorithm)
        }
        if algorithm == .rs256, let der = pemBlock(text, label: "RSA PUBLIC KEY") {
            return try fromPKCS1(ArraySlice(der))
        }
        throw KeyMaterialError("no '-----BEGIN PUBLIC KEY-----' block found")
    }

    static func fromSubjectPublicKeyInfo(_ der: [UInt8], algorithm: JWTAlgorithm) throws(KeyMaterialError) -> PublicKeyMaterial {
        do {
            let (outer, rest) = try PublicKeyDER.read(ArraySlice(der))
            guard rest.isEmpty else { throw PublicKeyDER.ParseError(message: "trailing data") }
            let spki = try PublicKeyDER.sequence(outer)
            guard spki.count == 2 else { throw PublicKeyDER.ParseError(message: "bad SubjectPublicKeyInfo") }
            let algorithmIdentifier = try PublicKeyDER.sequence(spki[0])
            guard let oid = algorithmIdentifier.first, oid.tag == 0x06 else { throw PublicKeyDER.ParseError(message: "bad algorithm identifier") }
            let bitString = spki[1]
            guard bitString.tag == 0x03, bitString.content.first == 0 else { throw PublicKeyDER.ParseError(message: "bad key bit string") }
            let keyBytes = bitString.content.dropFirst()
            switch Array(oid.content) {
            case PublicKeyDER.rsaEncryptionOID:
                guard algorithm == .rs256 else { throw KeyMaterialError("holds an RSA key, but the algorithm is \(algorithm)") }
                return try fromPKCS1(keyBytes)
            case PublicKeyDER.ecPublicKeyOID:
                guard algorithm == .es256 else { throw KeyMaterialError("holds an EC key, but the algorithm is \(algorithm)") }
                guard algorithmIdentifier.count == 2, algorithmIdentifier[1].tag == 0x06,
                    Array(algorithmIdentifier[1].content) == PublicKeyDER.prime256v1OID
                else { throw KeyMaterialError("EC key is not on curve P-256") }
                return try p256(x963: Array(keyBytes))
            default:
                throw KeyMaterialError("unsupported public key type (RSA or EC P-256 expected)")
            }
        } catch let error as KeyMaterialError {
            throw error
        } catch {
            throw KeyMaterialError("malformed public key DER")
        }
    }

    /// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    static func fromPKCS1(_ der: ArraySlice<UInt8>) throws(KeyMaterialError) -> PublicKeyMaterial {
        let members: [PublicKeyDER.Element]
        do {
            let (outer, rest) = try PublicKeyDER.read(der)
            guard rest.isEmpty else { throw KeyMaterialError("malformed RSA public key") }
            members = try PublicKeyDER.sequence(outer)
        } catch {
            throw KeyMaterialError("malformed RSA public key")
        }
        guard members.count == 2, members[0].tag == 0x02, members[1].tag == 0x02,
            members[0].content.first.map({ $0 & 0x80 == 0 }) == true,
            members[1].content.first.map({ $0 & 0x80 == 0 }) == true
        else { throw KeyMaterialError("malformed RSA public key") }
        return try rsa(modulus: Array(members[0].content), exponent: Array(members[1].content))
    }

    static func pemBlock(_ text: String, label: String) -> [UInt8]? {
        let begin = "-----BEGIN \(label)-----"
        let end = "-----END \(label)-----"
        guard let start = text.range(of: begin), let stop = text.range(of: end, range: start.upperBound..<text.endIndex) else {
            return nil
        }
        let body = text[start.upperBound..<stop.lowerBound].filter { !$0.isWhitespace }
        guard let data = Data(base64Encoded: String(body)) else { return nil }
        return Array(data)
    }
}

/// Why a key could not be used. The message never contains key bytes.
struct KeyMaterialError: Error, Sendable {
    var message: String
    /// The document is sound but holds no key this entry asks for (its pinned kid, or any
    /// fitting key): at a reload that revokes the entry's keys instead of failing.
    var noFittingKey = false
    init(_ message: String, noFittingKey: Bool = false) {
        self.message = message
        self.noFittingKey = noFittingKey
    }
}
