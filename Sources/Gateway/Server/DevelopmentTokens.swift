import Foundation

/// Why `moderation-gateway token` refused.
public struct TokenMintingError: Error, CustomStringConvertible {
    public var description: String
}

/// Mints an HS256 development token from the configured development secret.
/// Refuses when the configuration names no such secret.
public func mintDevelopmentToken(configuration: GatewayConfiguration, subject: String, roles: [String], ttlSeconds: Int) throws -> String {
    guard let secretFile = configuration.auth.developmentSecretFile else {
        throw TokenMintingError(description: "no development (HS256) secret is configured in auth; tokens for production keys are not minted here")
    }
    guard let secret = FileManager.default.contents(atPath: configuration.resolvePath(secretFile).path) else {
        throw TokenMintingError(description: "the development secret file \(secretFile) is not readable")
    }
    guard secret.count >= 32 else {
        throw TokenMintingError(description: "the development secret must be at least 32 bytes")
    }
    return try DevelopmentToken.mint(
        secret: [UInt8](secret), kid: nil, issuer: configuration.auth.issuer, audience: configuration.auth.audience,
        subject: subject, roles: roles, ttl: TimeInterval(ttlSeconds))
}
