import Foundation

/// A JWS algorithm the gateway accepts. Exactly these spellings; each key is
/// pinned to one of them.
/// Coded as its plain string (RawRepresentable's default Codable).
public struct JWTAlgorithm: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// RSASSA-PKCS1-v1_5 with SHA-256; production.
    public static let rs256 = JWTAlgorithm("RS256")
    /// ECDSA P-256 with SHA-256; production.
    public static let es256 = JWTAlgorithm("ES256")
    /// HMAC-SHA-256 with a shared secret; development only.
    public static let hs256 = JWTAlgorithm("HS256")

    public static let supported: [JWTAlgorithm] = [.rs256, .es256, .hs256]
}

/// One verification key (or, for `jwks_file`, a set of keys) in `auth.keys`.
public struct KeyConfiguration: Codable, Sendable, Equatable {
    /// Key id matched against the token's `kid`. Required for `pem_file` and
    /// `secret_file`. For `jwks_file` it picks the one JWK with that `kid`;
    /// left out, every JWK in the file that fits `algorithm` is loaded under its own `kid`.
    public var kid: String?
    public var algorithm: JWTAlgorithm
    /// SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`; `BEGIN RSA PUBLIC KEY` also for RS256).
    public var pemFile: String?
    /// A JWK Set (RFC 7517) on disk; RSA (`n`, `e`) and EC P-256 (`x`, `y`) keys.
    public var jwksFile: String?
    /// HS256 only, for development: at least 32 bytes (one trailing newline is not counted).
    public var secretFile: String?

    enum CodingKeys: String, CodingKey {
        case kid, algorithm
        case pemFile = "pem_file"
        case jwksFile = "jwks_file"
        case secretFile = "secret_file"
    }

    public init(kid: String?, algorithm: JWTAlgorithm, pemFile: String? = nil, jwksFile: String? = nil, secretFile: String? = nil) {
        self.kid = kid
        self.algorithm = algorithm
        self.pemFile = pemFile
        self.jwksFile = jwksFile
        self.secretFile = secretFile
    }
}

/// What a role may do.
public struct RoleConfiguration: Codable, Sendable, Equatable {
    public var permissions: [Permission]
    /// Models this role may call through the KServe passthrough; `nil` means any.
    public var models: [String]?

    public init(permissions: [Permission], models: [String]? = nil) {
        self.permissions = permissions
        self.models = models
    }
}

/// The `auth:` section of the gateway configuration.
public struct AuthConfiguration: Codable, Sendable, Equatable {
    /// `iss` must equal one of these exactly.
    public var issuers: [String]
    /// `aud` (a string or an array) must contain one of these.
    public var audiences: [String]
    /// Clock skew allowed for `exp`, `nbf` and `iat`; 0...60, default 30.
    public var leewaySeconds: Int
    /// Largest `Authorization` header accepted; larger is 431. Default 8192.
    public var maxTokenBytes: Int
    /// Claim holding the roles: an array of strings or a space-separated string.
    /// When the token lacks it, `scope` is read instead. Default `roles`.
    public var roleClaim: String
    public var keys: [KeyConfiguration]
    public var roles: [String: RoleConfiguration]

    public static let defaultLeewaySeconds = 30
    public static let maxLeewaySeconds = 60
    public static let defaultMaxTokenBytes = 8192
    public static let defaultRoleClaim = "roles"
    /// HS256 secrets shorter than this are refused (RFC 7518 section 3.2).
    public static let minimumSecretBytes = 32

    enum CodingKeys: String, CodingKey {
        case issuers, audiences, keys, roles
        case leewaySeconds = "leeway_seconds"
        case maxTokenBytes = "max_token_bytes"
        case roleClaim = "role_claim"
    }

    public init(
        issuers: [String], audiences: [String], leewaySeconds: Int = AuthConfiguration.defaultLeewaySeconds,
        maxTokenBytes: Int = AuthConfiguration.defaultMaxTokenBytes, roleClaim: String = AuthConfiguration.defaultRoleClaim,
        keys: [KeyConfiguration], roles: [String: RoleConfiguration]
    ) {
        self.issuers = issuers
        self.audiences = audiences
        self.leewaySeconds = leewaySeconds
        self.maxTokenBytes = maxTokenBytes
        self.roleClaim = roleClaim
        self.keys = keys
        self.roles = roles
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.issuers = try container.decode([String].self, forKey: .issuers)
        self.audiences = try container.decode([String].self, forKey: .audiences)
        self.leewaySeconds = try container.decodeIfPresent(Int.self, forKey: .leewaySeconds) ?? Self.defaultLeewaySeconds
        self.maxTokenBytes = try container.decodeIfPresent(Int.self, forKey: .maxTokenBytes) ?? Self.defaultMaxTokenBytes
        self.roleClaim = try container.decodeIfPresent(String.self, forKey: .roleClaim) ?? Self.defaultRoleClaim
        self.keys = try container.decode([KeyConfiguration].self, forKey: .keys)
        self.roles = try container.decodeIfPresent([String: RoleConfiguration].self, forKey: .roles) ?? [:]
    }

    /// Checks everything that can be checked without reading key files.
    /// Errors name the key, e.g. `auth.keys[1].secret_file: ...`.
    public func validate() throws(AuthConfigurationError) {
        func fail(_ path: String, _ message: String) -> AuthConfigurationError {
            AuthConfigurationError(path: "auth." + path, message: message)
        }
        if issuers.isEmpty { throw fail("issuers", "at least one issuer is required") }
        for (index, issuer) in issuers.enumerated() where issuer.isEmpty || AuthText.hasControlCharacters(issuer) {
            throw fail("issuers[\(index)]", "must be a non-empty string without control characters")
        }
        if audiences.isEmpty { throw fail("audiences", "at least one audience is required") }
        for (index, audience) in audiences.enumerated() where audience.isEmpty || AuthText.hasControlCharacters(audience) {
            throw fail("audiences[\(index)]", "must be a non-empty string without control characters")
        }
        if !(0...Self.maxLeewaySeconds).contains(leewaySeconds) {
            throw fail("leeway_seconds", "must be between 0 and \(Self.maxLeewaySeconds), got \(leewaySeconds)")
        }
        if !(512...65536).contains(maxTokenBytes) {
            throw fail("max_token_bytes", "must be between 512 and 65536, got \(maxTokenBytes)")
        }
        if roleClaim.isEmpty || AuthText.hasControlCharacters(roleClaim) {
            throw fail("role_claim", "must be a non-empty claim name")
        }
        if keys.isEmpty { throw fail("keys", "at least one key is required") }
        var seenKids: [String: Int] = [:]
        for (index, key) in keys.enumerated() {
            let path = "keys[\(index)]"
            guard JWTAlgorithm.supported.contains(key.algorithm) else {
                throw fail(path + ".algorithm", "must be one of RS256, ES256, HS256 (exact spelling), got \(key.algorithm.rawValue.debugDescription)")
            }
            let sources = [key.pemFile, key.jwksFile, key.secretFile].compactMap { $0 }
            guard sources.count == 1 else {
                throw fail(path, "needs exactly one of pem_file, jwks_file, secret_file")
            }
            if let file = sources.first, file.isEmpty || file.contains("\0") {
                throw fail(path, "key file path must not be empty")
            }
            if key.secretFile != nil, key.algorithm != .hs256 {
                throw fail(path + ".secret_file", "a shared secret is only allowed with algorithm HS256")
            }
            if key.algorithm == .hs256, key.secretFile == nil {
                throw fail(path + ".algorithm", "HS256 needs secret_file (PEM and JWKS keys are for RS256/ES256)")
            }
            if let kid = key.kid {
                guard KeyRing.isAcceptableKid(kid) else {
                    throw fail(path + ".kid", "must be 1 to \(KeyRing.maxKidBytes) printable ASCII characters")
                }
                if let other = seenKids[kid] {
                    throw fail(path + ".kid", "duplicate kid \(kid.debugDescription), also used by keys[\(other)]")
                }
                seenKids[kid] = index
            } else if key.jwksFile == nil {
                throw fail(path + ".kid", "is required for pem_file and secret_file keys")
            }
        }
        if roles.isEmpty { throw fail("roles", "at least one role is required") }
        let known: Set<Permission> = [.moderate, .infer, .admin, .metrics]
        for name in roles.keys.sorted() {
            guard let role = roles[name] else { continue }
            let path = "roles.\(name)"
            if name.isEmpty || AuthText.hasControlCharacters(name) || name.contains(" ") {
                throw fail(path, "role names must be non-empty and contain no spaces or control characters")
            }
            if role.permissions.isEmpty { throw fail(path + ".permissions", "at least one permission is required") }
            for (index, permission) in role.permissions.enumerated() where !known.contains(permission) {
                throw fail(path + ".permissions[\(index)]", "unknown permission \(permission.rawValue.debugDescription); known: moderate, infer, admin, metrics")
            }
            for (index, model) in (role.models ?? []).enumerated() where !AuthText.isModelName(model) {
                throw fail(path + ".models[\(index)]", "model names use only A-Z a-z 0-9 _ . - (at most 128)")
            }
        }
    }

    func resolve(_ file: String, baseDirectory: URL) -> URL {
        if file.hasPrefix("/") { return URL(fileURLWithPath: file) }
        return baseDirectory.appendingPathComponent(file)
    }
}

/// A configuration or key-loading error that names the offending key.
public struct AuthConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Dotted path of the key, e.g. `auth.keys[1].secret_file`.
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}

/// Text checks shared by the auth configuration and the token checks.
enum AuthText {
    /// C0/C1 controls and DEL: never allowed in values that reach headers or the audit log.
    static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || (0x80..<0xA0).contains($0.value) }
    }

    /// A Triton model name as the gateway accepts it: `[A-Za-z0-9_.-]{1,128}`, not `.` or `..`.
    static func isModelName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 128, text != ".", text != ".." else { return false }
        return text.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }
}
