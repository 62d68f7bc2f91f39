@preconcurrency import Crypto
@preconcurrency import _CryptoExtras
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import Gateway

/// Keys, files and token builders for the auth tests. Keys are generated at
/// test time (RSA with the `openssl` command, EC with swift-crypto) and tokens
/// are signed here, independently of the code under test.
final class AuthFixture: Sendable {
    static let issuer = "https://issuer.test"
    static let audience = "moderation-gateway"
    /// A fixed clock for every token test.
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static var nowSeconds: Int { Int(now.timeIntervalSince1970) }

    let directory: URL
    /// PEM paths of two RSA private keys: the configured one and the one in the JWKS file.
    let rsaPrivateKey: String
    let jwksRSAPrivateKey: String
    /// The configured RSA public key file, byte for byte (what an attacker could know).
    let rsaPublicPEM: [UInt8]
    let ecKey: P256.Signing.PrivateKey
    let jwksECKey: P256.Signing.PrivateKey
    let secret: [UInt8]
    let configuration: AuthConfiguration
    let authenticator: JWTAuthenticator

    /// Built once, on a thread of its own (two `openssl genpkey` children), and awaited.
    /// A lazy `static let` would make every suite instance that needs it *block* its
    /// cooperative-pool thread in the one-time initializer while the keys are generated:
    /// with one pool thread per core, that stalled every other test for seconds.
    private static let sharedFixture = Task { try await offThePool { try AuthFixture() } }
    static func shared() async throws -> AuthFixture { try await sharedFixture.value }

    init() throws {
        directory = try AuthFixture.makeTemporaryDirectory()
        rsaPrivateKey = directory.appendingPathComponent("rsa.key").path
        jwksRSAPrivateKey = directory.appendingPathComponent("jwks-rsa.key").path
        try AuthFixture.generateRSAKey(at: rsaPrivateKey)
        try AuthFixture.generateRSAKey(at: jwksRSAPrivateKey)
        try AuthFixture.openssl(["pkey", "-in", rsaPrivateKey, "-pubout", "-out", directory.appendingPathComponent("rsa.pub").path])
        rsaPublicPEM = Array(try Data(contentsOf: directory.appendingPathComponent("rsa.pub")))

        ecKey = P256.Signing.PrivateKey()
        try ecKey.publicKey.pemRepresentation.write(to: directory.appendingPathComponent("ec.pub"), atomically: true, encoding: .utf8)

        jwksECKey = P256.Signing.PrivateKey()
        let jwks = """
            {"keys": [
              \(try AuthFixture.rsaJWK(privateKey: jwksRSAPrivateKey, kid: "jwks-rsa")),
              \(AuthFixture.ecJWK(jwksECKey.publicKey, kid: "jwks-ec")),
              {"kty": "oct", "kid": "ignored-symmetric", "k": "c2VjcmV0"}
            ]}
            """
        try jwks.write(to: directory.appendingPathComponent("jwks.json"), atomically: true, encoding: .utf8)

        secret = Array("development-secret-0123456789-abcdef".utf8)
        try writeSecret(secret + [UInt8(ascii: "\n")], to: directory.appendingPathComponent("dev.secret"))

        configuration = AuthFixture.configuration()
        authenticator = try JWTAuthenticator(configuration: configuration, baseDirectory: directory)
    }

    static func configuration(keys: [KeyConfiguration]? = nil) -> AuthConfiguration {
        AuthConfiguration(
            issuers: [issuer, "https://second-issuer.test"],
            audiences: [audience],
            leewaySeconds: 30,
            maxTokenBytes: 8192,
            roleClaim: "roles",
            keys: keys ?? [
                KeyConfiguration(kid: "rsa-1", algorithm: .rs256, pemFile: "rsa.pub"),
                KeyConfiguration(kid: "ec-1", algorithm: .es256, pemFile: "ec.pub"),
                KeyConfiguration(kid: "dev", algorithm: .hs256, secretFile: "dev.secret"),
                KeyConfiguration(kid: nil, algorithm: .rs256, jwksFile: "jwks.json"),
                KeyConfiguration(kid: nil, algorithm: .es256, jwksFile: "jwks.json"),
            ],
            roles: [
                "client": RoleConfiguration(permissions: [.moderate, .infer], models: ["moderation", "text_detector"]),
                "admin": RoleConfiguration(permissions: [.admin, .infer, .moderate]),
                "viewer": RoleConfiguration(permissions: [.moderate]),
            ])
    }

    // MARK: - Token building

    enum Signer {
        case hs256([UInt8])
        case rs256(privateKeyPath: String)
        case es256(P256.Signing.PrivateKey)
        /// Use this exact signature segment.
        case raw(String)
    }

    /// Claims that pass every check, as raw JSON values so tests can put in anything.
    static func validClaims(_ overrides: [String: String?] = [:]) -> [String: String] {
        var claims: [String: String] = [
            "iss": "\"\(issuer)\"",
            "aud": "\"\(audience)\"",
            "sub": "\"user-42\"",
            "roles": "[\"client\"]",
            "iat": "\(nowSeconds - 10)",
            "nbf": "\(nowSeconds - 10)",
            "exp": "\(nowSeconds + 300)",
        ]
        for (key, value) in overrides { claims[key] = value }
        return claims
    }

    static func json(_ members: [String: String]) -> String {
        "{" + members.keys.sorted().map { "\"\($0)\":\(members[$0] ?? "null")" }.joined(separator: ",") + "}"
    }

    static func token(headerJSON: String, claimsJSON: String, signer: Signer) throws -> String {
        let signingInput = base64URL(Array(headerJSON.utf8)) + "." + base64URL(Array(claimsJSON.utf8))
        let signature: String
        switch signer {
        case .hs256(let key):
            signature = base64URL(Array(HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: SymmetricKey(data: key))))
        case .rs256(let path):
            let key = try rsaSigningKey(path)
            signature = base64URL(Array(try key.signature(for: Array(signingInput.utf8), padding: .insecurePKCS1v1_5).rawRepresentation))
        case .es256(let key):
            signature = base64URL(Array(try key.signature(for: Array(signingInput.utf8)).rawRepresentation))
        case .raw(let value):
            signature = value
        }
        return signingInput + "." + signature
    }

    func token(
        alg: String = "RS256", kid: String? = "rsa-1", extraHeader: [String: String] = [:],
        claims: [String: String?] = [:], signer: Signer? = nil
    ) throws -> String {
        var header: [String: String] = ["alg": "\"\(alg)\"", "typ": "\"JWT\""]
        if let kid { header["kid"] = "\"\(kid)\"" }
        for (key, value) in extraHeader { header[key] = value }
        return try AuthFixture.token(
            headerJSON: AuthFixture.json(header), claimsJSON: AuthFixture.json(AuthFixture.validClaims(claims)),
            signer: signer ?? defaultSigner(forKid: kid))
    }

    func defaultSigner(forKid kid: String?) -> Signer {
        switch kid {
        case "ec-1": return .es256(ecKey)
        case "dev": return .hs256(secret)
        case "jwks-rsa": return .rs256(privateKeyPath: jwksRSAPrivateKey)
        case "jwks-ec": return .es256(jwksECKey)
        default: return .rs256(privateKeyPath: rsaPrivateKey)
        }
    }

    func authenticate(_ token: String) -> Result<Principal, AuthFailure> {
        authenticator.authenticate(authorizationHeader: "Bearer " + token, now: AuthFixture.now)
    }

    // MARK: - Helpers

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func makeTemporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("auth-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// RSA private keys by PEM path, parsed once. Tokens are signed in-process with
    /// swift-crypto (BoringSSL), still independent of the gateway's verifier (libjwt on
    /// OpenSSL); an `openssl dgst` child per token made the auth tests block a thread of
    /// the shared cooperative pool for every RS256 token.
    private static let rsaKeys = Mutex<[String: _RSA.Signing.PrivateKey]>([:])

    static func rsaSigningKey(_ path: String) throws -> _RSA.Signing.PrivateKey {
        if let key = rsaKeys.withLock({ $0[path] }) { return key }
        let key = try _RSA.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: path, encoding: .utf8))
        rsaKeys.withLock { $0[path] = key }
        return key
    }

    static func generateRSAKey(at path: String, bits: Int = 2048) throws {
        try openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:\(bits)", "-out", path])
    }

    /// An RSA JWK (`n`, `e`) for the public half of a PEM private key, read with `openssl`.
    static func rsaJWK(privateKey: String, kid: String) throws -> String {
        let text = String(decoding: try openssl(["rsa", "-in", privateKey, "-noout", "-modulus"]), as: UTF8.self)
        guard let hex = text.split(separator: "=").last?.trimmingCharacters(in: .whitespacesAndNewlines) else {
            throw FixtureError("cannot read the RSA modulus")
        }
        var modulus: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { throw FixtureError("bad modulus hex") }
            modulus.append(byte)
            index = next
        }
        return #"{"kty":"RSA","kid":"\#(kid)","use":"sig","alg":"RS256","n":"\#(base64URL(modulus))","e":"AQAB"}"#
    }

    static func ecJWK(_ key: P256.Signing.PublicKey, kid: String?) -> String {
        let raw = Array(key.rawRepresentation)
        let kidMember = kid.map { #""kid":"\#($0)","# } ?? ""
        return #"{"kty":"EC","crv":"P-256",\#(kidMember)"x":"\#(base64URL(Array(raw[0..<32])))","y":"\#(base64URL(Array(raw[32..<64])))"}"#
    }

    @discardableResult
    static func openssl(_ arguments: [String], input: [UInt8] = []) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(Data(input))
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        _ = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureError("openssl \(arguments.first ?? "") exited with \(process.terminationStatus)")
        }
        return Array(output)
    }

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

/// Asserts a refusal: its reason and status, and that its client-facing text echoes no part of the token.
func expectAuthFailure(
    _ result: Result<Principal, AuthFailure>, _ reason: AuthFailure.Reason, status: Int = 401, token: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    switch result {
    case .success(let principal):
        Issue.record("expected \(reason) but the token was accepted for \(principal.subject)", sourceLocation: sourceLocation)
    case .failure(let failure):
        #expect(failure.reason == reason, sourceLocation: sourceLocation)
        #expect(failure.status == status, sourceLocation: sourceLocation)
        if let token {
            for segment in token.split(separator: ".") where segment.count >= 8 {
                #expect(!failure.detail.contains(segment), "detail echoes the token", sourceLocation: sourceLocation)
            }
        }
    }
}

func expectAuthAccepted(
    _ result: Result<Principal, AuthFailure>, sourceLocation: SourceLocation = #_sourceLocation
) -> Principal? {
    switch result {
    case .success(let principal):
        return principal
    case .failure(let failure):
        Issue.record("expected the token to be accepted, got \(failure)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A TCP listener on 127.0.0.1 that only reports whether anyone connected.
final class AuthLoopbackListener {
    private var descriptor: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw AuthFixture.FixtureError("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, listen(fd, 8) == 0, named == 0 else {
            _ = Glibc.close(fd)
            throw AuthFixture.FixtureError("bind/listen failed")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        descriptor = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    /// True when a connection is waiting to be accepted.
    func pendingConnection() -> Bool {
        let client = accept(descriptor, nil, nil)
        if client >= 0 {
            _ = Glibc.close(client)
            return true
        }
        return false
    }

    func close() {
        if descriptor >= 0 { _ = Glibc.close(descriptor) }
        descriptor = -1
    }
}
