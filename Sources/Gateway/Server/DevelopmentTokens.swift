import Foundation

/// Mints an HS256 development token from the configured development secret
/// (the first HS256 key with a `secret_file`). Throws when there is none.
public func mintDevelopmentToken(configuration: GatewayConfiguration, subject: String, roles: [String], ttlSeconds: Int) throws -> String {
    try DevelopmentToken.mint(
        configuration: configuration.auth, baseDirectory: configuration.baseDirectory, subject: subject, roles: roles,
        ttl: .seconds(ttlSeconds))
}
