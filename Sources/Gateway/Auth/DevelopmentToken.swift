import Crypto
import Foundation

/// Mints HS256 tokens from the development secret, for `moderation-gateway token`
/// and for tests. Production tokens come from a real issuer with RS256/ES256.
public enum DevelopmentToken {
    public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// Longest lifetime a development token may have.
    public static let maxTTL: Duration = .seconds(30 * 24 * 3600)

    /// A compact HS256 JWS with `iss`, `aud`, `sub`, `roles`, `iat`, `nbf`, `exp` (= now + ttl).
    public static func mint(
        secret: [UInt8], kid: String, issuer: String, audience: String, subject: String, roles: [String],
        ttl: Duration, now: Date = Date()
    ) throws -> String {
        guard secret.count >= AuthConfiguration.minimumSecretBytes else {
            throw Error("the development secret must be at least \(AuthConfiguration.minimumSecretBytes) bytes")
        }
        guard KeyRing.isAcceptableKid(kid) else { throw Error("kid must be 1 to \(KeyRing.maxKidBytes) printable ASCII characters") }
        for (name, value) in [("issuer", issuer), ("audience", audience), ("subject", subject)]
        where value.isEmpty || AuthText.hasControlCharacters(value) {
            throw Error("\(name) must be a non-empty string without control characters")
        }
        guard subject.utf8.count <= JWTAuthenticator.maxSubjectBytes else {
            throw Error("subject must be at most \(JWTAuthenticator.maxSubjectBytes) bytes")
        }
        for role in roles where role.isEmpty || role.contains(" ") || AuthText.hasControlCharacters(role) {
            throw Error("role names must be non-empty, without spaces or control characters")
        }
        guard ttl > .zero, ttl <= maxTTL else { throw Error("ttl must be more than 0 and at most 30 days") }
        let nowSeconds = now.timeIntervalSince1970.rounded(.down)
        guard nowSeconds.isFinite, abs(nowSeconds) < 1e12 else { throw Error("the clock is out of range") }
        let issuedAt = Int64(nowSeconds)
        let header: TokenJSON = .object(["alg": .string("HS256"), "typ": .string("JWT"), "kid": .string(kid)])
        let claims: TokenJSON = .object([
            "iss": .string(issuer),
            "aud": .string(audience),
            "sub": .string(subject),
            "roles": .array(roles.map(TokenJSON.string)),
            "iat": .integer(issuedAt),
            "nbf": .integer(issuedAt),
            "exp": .integer(issuedAt + ttl.components.seconds),
        ])
        return sign(header: header, claims: claims, secret: secret)
    }

    /// Mints with the configuration's HS256 key (the first one), its first issuer and audience.
    /// Throws when no development secret is configured.
    public static func mint(
        configuration: AuthConfiguration, baseDirectory: URL, subject: String, roles: [String], ttl: Duration,
        now: Date = Date()
    ) throws -> String {
        try configuration.validate()
        guard let index = configuration.keys.firstIndex(where: { $0.algorithm == .hs256 && $0.secretFile != nil }),
            let file = configuration.keys[index].secretFile, let kid = configuration.keys[index].kid
        else { throw Error("no development secret is configured (an HS256 key with secret_file in auth.keys)") }
        let secret = try KeyRing.loadSecret(
            configuration.resolve(file, baseDirectory: baseDirectory), path: "auth.keys[\(index)].secret_file")
        guard let issuer = configuration.issuers.first, let audience = configuration.audiences.first else {
            throw Error("auth.issuers and auth.audiences must not be empty")
        }
        return try mint(
            secret: secret, kid: kid, issuer: issuer, audience: audience, subject: subject, roles: roles, ttl: ttl, now: now)
    }

    static func sign(header: TokenJSON, claims: TokenJSON, secret: [UInt8]) -> String {
        let signingInput = JOSEBase64URL.encode(header.serialized.utf8) + "." + JOSEBase64URL.encode(claims.serialized.utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: SymmetricKey(data: secret))
        return signingInput + "." + JOSEBase64URL.encode(Array(mac))
    }
}
