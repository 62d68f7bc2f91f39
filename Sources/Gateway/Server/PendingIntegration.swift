// TEMPORARY shims for types that the `auth` branch provides.
// This file is deleted when those branches are merged; nothing here is final.
import Crypto
import Foundation

// MARK: - auth branch

public struct AuthConfiguration: Codable, Sendable {
    public var issuer: String
    public var audience: String
    public var leewaySeconds: Double?
    public var hs256SecretFile: String?
    public var roles: [String: RoleGrant]
    public struct RoleGrant: Codable, Sendable {
        public var permissions: [Permission]
        public var models: [String]?
    }
    enum CodingKeys: String, CodingKey {
        case issuer, audience, roles
        case leewaySeconds = "leeway_seconds"
        case hs256SecretFile = "hs256_secret_file"
    }
    public func validate(baseDirectory: URL) throws {}
    var developmentSecretFile: String? { hs256SecretFile }
}

public struct AuthFailure: Error, Sendable {
    public struct Reason: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
    }
    public var reason: Reason
    public var status: Int
    public var detail: String
}

public final class JWTAuthenticator: Sendable {
    let configuration: AuthConfiguration
    let secret: [UInt8]?
    public init(configuration: AuthConfiguration, baseDirectory: URL) throws {
        self.configuration = configuration
        if let f = configuration.hs256SecretFile {
            let path = f.hasPrefix("/") ? f : baseDirectory.appendingPathComponent(f).path
            secret = FileManager.default.contents(atPath: path).map { [UInt8]($0) }
        } else {
            secret = nil
        }
    }
    static func b64(_ s: Substring) -> Data? {
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while t.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t)
    }
    func fail(_ r: String, _ s: Int = 401) -> Result<Principal, AuthFailure> {
        .failure(AuthFailure(reason: .init(rawValue: r), status: s, detail: "The bearer token is not valid."))
    }
    public func authenticate(authorizationHeader: String?, now: Date) -> Result<Principal, AuthFailure> {
        guard let h = authorizationHeader else { return fail("missing") }
        if h.utf8.count > 8192 { return fail("oversize", 431) }
        guard h.hasPrefix("Bearer ") else { return fail("malformed") }
        let token = h.dropFirst(7)
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let secret, let hd = Self.b64(parts[0]), let pd = Self.b64(parts[1]), let sig = Self.b64(parts[2]),
            let header = try? JSONSerialization.jsonObject(with: hd) as? [String: Any], header["alg"] as? String == "HS256",
            let payload = try? JSONSerialization.jsonObject(with: pd) as? [String: Any]
        else { return fail("malformed") }
        let mac = HMAC<SHA256>.authenticationCode(for: Data((parts[0] + "." + parts[1]).utf8), using: SymmetricKey(data: secret))
        guard Data(mac) == sig else { return fail("bad_signature") }
        guard let exp = payload["exp"] as? Int, Double(exp) > now.timeIntervalSince1970 else { return fail("expired") }
        guard payload["iss"] as? String == configuration.issuer else { return fail("issuer") }
        let sub = payload["sub"] as? String ?? ""
        let roles = payload["roles"] as? [String] ?? []
        var perms = Set<Permission>()
        var models: Set<String>? = []
        for r in roles {
            if let g = configuration.roles[r] {
                perms.formUnion(g.permissions)
                if let m = g.models { models?.formUnion(m) } else { models = nil }
            }
        }
        return .success(Principal(subject: sub, issuer: configuration.issuer, roles: roles, permissions: perms, allowedModels: models, expiresAt: Date(timeIntervalSince1970: Double(exp))))
    }
    public func authorize(_ principal: Principal, permission: Permission, model: String?) -> AuthFailure? {
        if !principal.permissions.contains(permission) { return AuthFailure(reason: .init(rawValue: "forbidden"), status: 403, detail: "missing permission") }
        if let model, let allowed = principal.allowedModels, !allowed.contains(model) {
            return AuthFailure(reason: .init(rawValue: "model_forbidden"), status: 403, detail: "model not allowed")
        }
        return nil
    }
}

public enum DevelopmentToken {
    public static func mint(secret: [UInt8], kid: String?, issuer: String, audience: String, subject: String, roles: [String], ttl: TimeInterval) throws -> String {
        func enc(_ d: Data) -> String {
            d.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let h = try JSONSerialization.data(withJSONObject: ["alg": "HS256", "typ": "JWT"])
        let p = try JSONSerialization.data(withJSONObject: ["iss": issuer, "aud": audience, "sub": subject, "roles": roles, "exp": Int(Date().timeIntervalSince1970 + ttl), "iat": Int(Date().timeIntervalSince1970)])
        let input = enc(h) + "." + enc(p)
        let mac = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: secret))
        return input + "." + enc(Data(mac))
    }
}

public final class RateLimiter: @unchecked Sendable {
    public struct Decision: Sendable {
        public var allowed: Bool
        public var retryAfterSeconds: Int
    }
    let rate: Double
    let burst: Double
    let lock = NSLock()
    var buckets: [String: (tokens: Double, at: Date)] = [:]
    public init(ratePerSecond: Double, burst: Int) {
        rate = ratePerSecond
        self.burst = Double(burst)
    }
    public func acquire(subject: String, now: Date) -> Decision {
        lock.lock()
        defer { lock.unlock() }
        var b = buckets[subject] ?? (burst, now)
        b.tokens = min(burst, b.tokens + now.timeIntervalSince(b.at) * rate)
        b.at = now
        if b.tokens >= 1 {
            b.tokens -= 1
            buckets[subject] = b
            return Decision(allowed: true, retryAfterSeconds: 0)
        }
        buckets[subject] = b
        return Decision(allowed: false, retryAfterSeconds: max(1, Int(((1 - b.tokens) / rate).rounded(.up))))
    }
}
