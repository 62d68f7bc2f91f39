import Foundation

/// A key the gateway verifies tokens with, pinned to one algorithm.
struct VerificationKey: Sendable {
    enum Material: Sendable {
        /// HS256 shared secret (at least 32 bytes).
        case secret([UInt8])
        /// RS256/ES256 public key, verified through libjwt.
        case publicKey(PublicKeyMaterial)
    }

    var kid: String
    var algorithm: JWTAlgorithm
    var material: Material
}

/// The configured keys, by `kid`. Built in one go from the key files, so a
/// reload either yields a whole new ring or fails and leaves the old one.
struct KeyRing: Sendable {
    private(set) var keysByKid: [String: VerificationKey] = [:]
    /// At a reload, the entries that yield no key any more, each with why: their file was
    /// removed, or their JWK Set no longer holds the pinned kid (or any fitting key).
    /// Removing a key is how an operator revokes it, so these are dropped, not errors.
    private(set) var revoked: [String] = []

    static let maxKidBytes = 256
    static let maxPEMFileBytes = 64 * 1024
    static let maxJWKSFileBytes = 1024 * 1024
    static let maxSecretFileBytes = 4096

    var count: Int { keysByKid.count }

    /// The key a token's `kid` names. The `kid` is only ever a dictionary key
    /// here: never a path, a URL or a query.
    func key(forKid kid: String?) -> VerificationKey? {
        if let kid { return keysByKid[kid] }
        // No kid: unambiguous only when a single key is configured.
        return keysByKid.count == 1 ? keysByKid.values.first : nil
    }

    static func isAcceptableKid(_ kid: String) -> Bool {
        !kid.isEmpty && kid.utf8.count <= maxKidBytes && kid.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// Loads every configured entry. At start (`reloading` false) each must yield a key.
    /// At a reload, an entry whose file is gone or whose JWK Set no longer holds its key is
    /// revoked (listed in `revoked`, possibly leaving no key at all: every token is then
    /// refused); a file that is present but unreadable or malformed still fails the load,
    /// so a half-written file never drops the keys in use.
    static func load(
        _ configuration: AuthConfiguration, baseDirectory: URL, reloading: Bool = false
    ) throws(AuthConfigurationError) -> KeyRing {
        var ring = KeyRing()
        for (index, key) in configuration.keys.enumerated() {
            let path = "auth.keys[\(index)]"
            if reloading, let file = key.secretFile ?? key.pemFile ?? key.jwksFile,
                !FileManager.default.fileExists(atPath: configuration.resolve(file, baseDirectory: baseDirectory).path) {
                ring.revoked.append("\(path) (\(file)): the file was removed")
                continue
            }
            let loaded: [VerificationKey]
            if let file = key.secretFile {
                let url = configuration.resolve(file, baseDirectory: baseDirectory)
                let secret = try loadSecret(url, path: path + ".secret_file")
                loaded = [VerificationKey(kid: key.kid ?? "", algorithm: .hs256, material: .secret(secret))]
            } else if let file = key.pemFile {
                let url = configuration.resolve(file, baseDirectory: baseDirectory)
                let bytes = try readFile(url, limit: maxPEMFileBytes, path: path + ".pem_file", secret: false)
                do throws(KeyMaterialError) {
                    let material = try PublicKeyMaterial.fromPEM(String(decoding: bytes, as: UTF8.self), algorithm: key.algorithm)
                    loaded = [VerificationKey(kid: key.kid ?? "", algorithm: key.algorithm, material: .publicKey(material))]
                } catch {
                    throw AuthConfigurationError(path: path + ".pem_file", message: "\(file): \(error.message)")
                }
            } else if let file = key.jwksFile {
                let url = configuration.resolve(file, baseDirectory: baseDirectory)
                let bytes = try readFile(url, limit: maxJWKSFileBytes, path: path + ".jwks_file", secret: false)
                do throws(KeyMaterialError) {
                    loaded = try keysFromJWKS(bytes, algorithm: key.algorithm, kid: key.kid)
                } catch where reloading && error.noFittingKey {
                    ring.revoked.append("\(path) (\(file)): \(error.message) any more")
                    continue
                } catch {
                    throw AuthConfigurationError(path: path + ".jwks_file", message: "\(file): \(error.message)")
                }
            } else {
                throw AuthConfigurationError(path: path, message: "needs exactly one of pem_file, jwks_file, secret_file")
            }
            for verificationKey in loaded {
                guard ring.keysByKid.updateValue(verificationKey, forKey: verificationKey.kid) == nil else {
                    throw AuthConfigurationError(path: path, message: "duplicate kid \(verificationKey.kid.debugDescription)")
                }
            }
        }
        guard ring.count > 0 || reloading else { throw AuthConfigurationError(path: "auth.keys", message: "no usable keys were loaded") }
        return ring
    }

    /// An HS256 secret file: its bytes, less one trailing newline, at least 32 of them.
    static func loadSecret(_ url: URL, path: String) throws(AuthConfigurationError) -> [UInt8] {
        var secret = try readFile(url, limit: maxSecretFileBytes, path: path, secret: true)
        if secret.last == UInt8(ascii: "\n") { secret.removeLast() }
        if secret.last == UInt8(ascii: "\r") { secret.removeLast() }
        guard secret.count >= AuthConfiguration.minimumSecretBytes else {
            throw AuthConfigurationError(
                path: path, message: "secret is \(secret.count) bytes; HS256 needs at least \(AuthConfiguration.minimumSecretBytes)")
        }
        return secret
    }

    /// The file's bytes, after checking its mode (``KeyFilePermissions``).
    private static func readFile(_ url: URL, limit: Int, path: String, secret: Bool) throws(AuthConfigurationError) -> [UInt8] {
        if let problem = secret ? KeyFilePermissions.secretProblem(url.path) : KeyFilePermissions.publicKeyProblem(url.path) {
            throw AuthConfigurationError(path: path, message: problem)
        }
        let data: Data
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
            if let size = attributes[.size] as? NSNumber, size.intValue > limit {
                throw AuthConfigurationError(path: path, message: "\(url.path) is larger than \(limit) bytes")
            }
            data = try Data(contentsOf: url)
        } catch let error as AuthConfigurationError {
            throw error
        } catch {
            throw AuthConfigurationError(path: path, message: "cannot read \(url.path): \(error.localizedDescription)")
        }
        guard data.count <= limit else {
            throw AuthConfigurationError(path: path, message: "\(url.path) is larger than \(limit) bytes")
        }
        return Array(data)
    }

    /// Keys from a JWK Set that fit `algorithm`: `kty` RSA for RS256, EC P-256
    /// for ES256; `use` absent or `sig`; `alg` absent or equal to `algorithm`.
    /// With `kid` given, exactly that key (or the only fitting key when it has no kid).
    static func keysFromJWKS(_ bytes: [UInt8], algorithm: JWTAlgorithm, kid: String?) throws(KeyMaterialError) -> [VerificationKey] {
        let document: TokenJSON
        do throws(TokenJSONError) {
            document = try TokenJSONParser.parse(bytes, limits: .init(maxBytes: maxJWKSFileBytes, maxDepth: 8))
        } catch {
            throw KeyMaterialError("not valid JSON (\(error.message) at byte \(error.offset))")
        }
        guard case .array(let entries)? = document["keys"] else {
            throw KeyMaterialError("expected an object with a \"keys\" array")
        }
        let wantedType: String
        switch algorithm {
        case .rs256: wantedType = "RSA"
        case .es256: wantedType = "EC"
        default: throw KeyMaterialError("JWKS keys must be RS256 or ES256")
        }
        var candidates: [(kid: String?, material: PublicKeyMaterial)] = []
        for (index, entry) in entries.enumerated() {
            guard case .object = entry else { throw KeyMaterialError("keys[\(index)] is not an object") }
            guard entry["kty"]?.stringValue == wantedType else { continue }
            if let use = entry["use"], use.stringValue != "sig" { continue }
            if let alg = entry["alg"], alg.stringValue != algorithm.rawValue { continue }
            let entryKid: String?
            switch entry["kid"] {
            case nil: entryKid = nil
            case .string(let value)? where isAcceptableKid(value): entryKid = value
            default: throw KeyMaterialError("keys[\(index)].kid must be 1 to \(maxKidBytes) printable ASCII characters")
            }
            if let kid, let entryKid, entryKid != kid { continue }
            func field(_ name: String) throws(KeyMaterialError) -> [UInt8] {
                guard let text = entry[name]?.stringValue, let bytes = JOSEBase64URL.decode(Array(text.utf8)) else {
                    throw KeyMaterialError("keys[\(index)].\(name) must be unpadded base64url")
                }
                return bytes
            }
            let material: PublicKeyMaterial
            do throws(KeyMaterialError) {
                if wantedType == "RSA" {
                    material = try PublicKeyMaterial.rsa(modulus: try field("n"), exponent: try field("e"))
                } else {
                    guard entry["crv"]?.stringValue == "P-256" else { continue }
                    material = try PublicKeyMaterial.p256(x: try field("x"), y: try field("y"))
                }
            } catch {
                throw KeyMaterialError("keys[\(index)]: \(error.message)")
            }
            candidates.append((entryKid, material))
        }
        if let kid {
            let exact = candidates.filter { $0.kid == kid }
            let chosen = exact.count == 1 ? exact : (candidates.count == 1 && candidates[0].kid == nil ? candidates : [])
            guard let only = chosen.first, chosen.count == 1 else {
                throw KeyMaterialError("no single \(algorithm) key with kid \(kid.debugDescription)", noFittingKey: true)
            }
            return [VerificationKey(kid: kid, algorithm: algorithm, material: .publicKey(only.material))]
        }
        let keys = candidates.compactMap { candidate in
            candidate.kid.map { VerificationKey(kid: $0, algorithm: algorithm, material: .publicKey(candidate.material)) }
        }
        guard !keys.isEmpty else { throw KeyMaterialError("no \(algorithm) key with a kid", noFittingKey: true) }
        return keys
    }
}
