import Crypto
import Foundation

/// Verifies `Authorization: Bearer <JWT>` headers and turns them into a `Principal`.
///
/// The header is parsed and checked here first: the `kid` picks one configured
/// key, the token's `alg` must equal that key's pinned algorithm exactly, `none`
/// and `crit` are refused, and `jku`/`x5u`/`jwk`/`x5c` are never looked at.
/// Signatures are checked with swift-crypto against keys parsed once at load:
/// HS256 with a constant-time HMAC comparison, RS256 with `_RSA.Signing`, ES256
/// with `P256.Signing`. All claims are checked here.
///
/// A token that passed every check is remembered with its principal (by SHA-256
/// of the whole token, until the key ring changes or the token expires): what
/// it grants depends only on its bytes, the configuration and the keys, so a
/// repeat use skips the parsing and the signature. Its time claims (`exp`,
/// `nbf`, `iat`) are still checked on every request, and only tokens that
/// verified are remembered, so forged tokens cannot fill the cache; forged
/// tokens are bounded per peer by the caller's `admit` instead.
public final class JWTAuthenticator: Sendable {
    public let configuration: AuthConfiguration
    private let baseDirectory: URL
    private let state: Locked<State>
    private let issuers: Set<String>
    private let audiences: Set<String>

    /// Header JSON is small (alg, kid, typ); a `jwk` or `x5c` member nests two levels.
    static let headerLimits = TokenJSONParser.Limits(maxBytes: 2048, maxDepth: 4)
    static let payloadMaxDepth = 16
    static let maxRoles = 64
    static let maxSubjectBytes = 256
    static let maxRememberedTokens = 10_000

    private struct State: Sendable {
        var keyRing: KeyRing
        /// Bumped on every reload, so a verification that raced a reload is not remembered.
        var generation = 0
        /// Tokens that passed every check with this key ring.
        var remembered: [TokenDigest: Remembered] = [:]
    }

    /// An accepted token's principal and the time claims checked again on each use.
    private struct Remembered: Sendable {
        var principal: Principal
        var times: TimeClaims
    }

    private struct TimeClaims: Sendable {
        var exp: Int64
        var nbf: Int64?
        var iat: Int64?
    }

    private struct TokenDigest: Hashable, Sendable {
        var words: (UInt64, UInt64, UInt64, UInt64)
        /// SHA-256 of the token, kept as four words (this runs on every request).
        init(_ token: ArraySlice<UInt8>) {
            words = SHA256.hash(data: token).withUnsafeBytes { raw in
                (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            }
        }
        static func == (lhs: TokenDigest, rhs: TokenDigest) -> Bool { lhs.words == rhs.words }
        func hash(into hasher: inout Hasher) {
            hasher.combine(words.0)
            hasher.combine(words.1)
            hasher.combine(words.2)
            hasher.combine(words.3)
        }
    }

    /// Validates the configuration and loads the keys; files are relative to `baseDirectory`.
    public init(configuration: AuthConfiguration, baseDirectory: URL) throws {
        try configuration.validate()
        self.configuration = configuration
        self.baseDirectory = baseDirectory
        self.state = Locked(State(keyRing: try KeyRing.load(configuration, baseDirectory: baseDirectory)))
        self.issuers = Set(configuration.issuers)
        self.audiences = Set(configuration.audiences)
    }

    /// Re-reads every key file. The new keys replace the old ones all at once, and tokens
    /// accepted before are checked again. A removed file, or a pinned kid gone from its
    /// JWK Set, revokes those keys; the returned lines say which (for the log). When a file
    /// that is there is bad, this throws and the old keys stay in use.
    @discardableResult
    public func reloadKeys() throws -> [String] {
        let ring = try KeyRing.load(configuration, baseDirectory: baseDirectory, reloading: true)
        state.withLock { $0 = State(keyRing: ring, generation: $0.generation + 1) }
        return ring.revoked
    }

    /// Every key file the configuration names, resolved: watch these and call `reloadKeys()`.
    public var keyFiles: [URL] {
        configuration.keys.compactMap { $0.pemFile ?? $0.jwksFile ?? $0.secretFile }
            .map { configuration.resolve($0, baseDirectory: baseDirectory) }
    }

    /// The `kid`s currently loaded, sorted (for logs and `config check`).
    public var keyIDs: [String] {
        state.withLock { $0.keyRing.keysByKid.keys.sorted() }
    }

    /// Checks the header. A token this key ring already accepted costs a hash and a lookup;
    /// for anything else `admit` is asked first (the caller's per-peer limit on failed
    /// authentications), and `.limited` refuses it with 429 before the token is parsed or
    /// any signature is checked.
    public func authenticate(
        authorizationHeader: String?, now: Date = Date(), admit: () -> RateDecision = { .allowed(remaining: 1) }
    ) -> Result<Principal, AuthFailure> {
        do throws(AuthFailure) {
            return .success(try verify(authorizationHeader: authorizationHeader, now: now, admit: admit))
        } catch {
            return .failure(error)
        }
    }

    /// Whether the header carries a token this key ring has already accepted (its time
    /// claims are not checked here): the cheap test the connection guard makes before
    /// refusing a limited peer.
    public func hasRememberedToken(authorizationHeader: String?) -> Bool {
        guard let authorizationHeader else { return false }
        return remembered(Array(authorizationHeader.utf8)).entry != nil
    }

    /// The bearer token of a well-formed header within the size limit, its digest, and
    /// what is remembered for it.
    private func remembered(_ header: [UInt8]) -> (token: ArraySlice<UInt8>?, digest: TokenDigest?, entry: Remembered?) {
        guard header.count <= configuration.maxTokenBytes, let token = try? Self.bearerToken(header) else { return (nil, nil, nil) }
        let digest = TokenDigest(token)
        return (token, digest, state.withLock { $0.remembered[digest] })
    }

    private func verify(authorizationHeader: String?, now: Date, admit: () -> RateDecision) throws(AuthFailure) -> Principal {
        let header = authorizationHeader.map { Array($0.utf8) }
        let known = header.map { remembered($0) }
        if let entry = known?.entry {
            try checkTimes(entry.times, now: now)
            return entry.principal
        }
        if case .limited(let seconds) = admit() { throw .peerLimited(retryAfterSeconds: seconds) }
        guard let header else {
            throw .unauthorized(.missingToken, "This endpoint requires an Authorization header with a Bearer token.")
        }
        guard header.count <= configuration.maxTokenBytes else {
            throw AuthFailure(
                reason: .oversized, status: 431,
                detail: "The Authorization header is larger than \(configuration.maxTokenBytes) bytes.")
        }
        let token: ArraySlice<UInt8>
        if let parsed = known?.token { token = parsed } else { token = try Self.bearerToken(header) }
        let digest = known?.digest ?? TokenDigest(token)
        let parts = try Self.split(token)

        // Header first: it decides which key and which code path verifies the signature.
        guard let headerBytes = JOSEBase64URL.decode(parts.header),
            let joseHeader = try? TokenJSONParser.parse(headerBytes, limits: Self.headerLimits),
            case .object = joseHeader
        else { throw .unauthorized(.malformedToken, "The token header is not valid base64url JSON.") }
        guard case .string(let alg)? = joseHeader["alg"] else {
            throw .unauthorized(.malformedToken, "The token header has no algorithm.")
        }
        if alg.lowercased() == "none" {
            throw .unauthorized(.algorithmNotAllowed, "Unsigned tokens are not accepted.")
        }
        if joseHeader["crit"] != nil {
            throw .unauthorized(.crit, "Tokens with critical header extensions are not accepted.")
        }
        if let typ = joseHeader["typ"], typ.stringValue?.lowercased() != "jwt" {
            throw .unauthorized(.malformedToken, "The token type must be JWT.")
        }
        let kid: String?
        switch joseHeader["kid"] {
        case nil: kid = nil
        case .string(let value)?: kid = value
        default: throw .unauthorized(.malformedToken, "The token key id must be a string.")
        }
        // `jku`, `x5u`, `jwk` and `x5c` are deliberately never read: keys come from configuration only.
        let (found, generation) = state.withLock { ($0.keyRing.key(forKid: kid), $0.generation) }
        guard let key = found else {
            throw .unauthorized(.unknownKey, "The token's signing key is not known.")
        }
        guard alg == key.algorithm.rawValue else {
            throw .unauthorized(.algorithmNotAllowed, "The token's algorithm is not allowed for its key.")
        }

        // The payload is parsed (with limits) before any signature code sees it.
        guard let payloadBytes = JOSEBase64URL.decode(parts.payload),
            let claims = try? TokenJSONParser.parse(
                payloadBytes, limits: .init(maxBytes: configuration.maxTokenBytes, maxDepth: Self.payloadMaxDepth)),
            case .object = claims
        else { throw .unauthorized(.malformedToken, "The token payload is not valid base64url JSON.") }
        guard let signature = JOSEBase64URL.decode(parts.signature) else {
            throw .unauthorized(.malformedToken, "The token signature is not valid base64url.")
        }
        let verified = signatureIsValid(signature, token: token, signingInputCount: parts.signingInputCount, key: key)
        guard verified else { throw .unauthorized(.badSignature, "The token signature is not valid.") }

        let (principal, times) = try principal(from: claims, now: now)
        remember(digest, Remembered(principal: principal, times: times), generation: generation, now: now)
        return principal
    }

    /// `Bearer <token>`: the scheme case-insensitively, one space, then base64url and dots only.
    private static func bearerToken(_ header: [UInt8]) throws(AuthFailure) -> ArraySlice<UInt8> {
        let scheme = Array("bearer".utf8)
        guard header.count > scheme.count + 1, zip(header, scheme).allSatisfy({ $0 | 0x20 == $1 }),
            header[scheme.count] == UInt8(ascii: " ")
        else { throw .unauthorized(.malformedHeader, "Expected 'Authorization: Bearer <token>'.") }
        let token = header[(scheme.count + 1)...]
        guard token.allSatisfy({ JOSEBase64URL.isAlphabet($0) || $0 == UInt8(ascii: ".") }) else {
            throw .unauthorized(.malformedHeader, "Expected 'Authorization: Bearer <token>' with a single token.")
        }
        return token
    }

    private struct Parts {
        var header: ArraySlice<UInt8>
        var payload: ArraySlice<UInt8>
        var signature: ArraySlice<UInt8>
        /// Bytes of `header.payload`, the JWS signing input.
        var signingInputCount: Int
    }

    private static func split(_ token: ArraySlice<UInt8>) throws(AuthFailure) -> Parts {
        let dots = token.indices.filter { token[$0] == UInt8(ascii: ".") }
        guard dots.count == 2 else {
            throw .unauthorized(.malformedToken, "The token is not a compact JWS (three dot-separated parts).")
        }
        let header = token[token.startIndex..<dots[0]]
        let payload = token[(dots[0] + 1)..<dots[1]]
        let signature = token[(dots[1] + 1)...]
        guard !header.isEmpty, !payload.isEmpty else {
            throw .unauthorized(.malformedToken, "The token is not a compact JWS (three dot-separated parts).")
        }
        return Parts(header: header, payload: payload, signature: signature, signingInputCount: dots[1] - token.startIndex)
    }

    private func signatureIsValid(
        _ signature: [UInt8], token: ArraySlice<UInt8>, signingInputCount: Int, key: VerificationKey
    ) -> Bool {
        guard !signature.isEmpty else { return false }
        switch key.material {
        case .secret(let secret):
            guard key.algorithm == .hs256, !secret.isEmpty else { return false }
            let signingInput = token.prefix(signingInputCount)
            // Constant-time comparison inside swift-crypto.
            return HMAC<SHA256>.isValidAuthenticationCode(
                signature, authenticating: Array(signingInput), using: SymmetricKey(data: secret))
        case .publicKey(let material):
            switch (key.algorithm, material.verifier) {
            case (.rs256, .rsa), (.es256, .p256):
                return material.isValidSignature(signature, for: token.prefix(signingInputCount))
            default:
                return false
            }
        }
    }

    /// Keeps an accepted token unless the key ring changed while it was checked.
    /// When full, expired entries go first, then those expiring soonest, until an
    /// eighth is free: the table is walked once per that many new tokens, not per token.
    private func remember(_ digest: TokenDigest, _ entry: Remembered, generation: Int, now: Date) {
        let cutoff = now.timeIntervalSince1970 - Double(configuration.leewaySeconds)
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.remembered.count >= Self.maxRememberedTokens {
                state.remembered = state.remembered.filter { Double($0.value.times.exp) > cutoff }
                let keep = Self.maxRememberedTokens - Self.maxRememberedTokens / 8
                if state.remembered.count > keep {
                    let soonest = state.remembered.sorted { $0.value.times.exp < $1.value.times.exp }
                        .prefix(state.remembered.count - keep)
                    for (key, _) in soonest { state.remembered.removeValue(forKey: key) }
                }
            }
            state.remembered[digest] = entry
        }
    }

    /// `exp` (required), `nbf` and `iat` against the clock, with the configured leeway.
    private func checkTimes(_ times: TimeClaims, now: Date) throws(AuthFailure) {
        let nowSeconds = now.timeIntervalSince1970
        let leeway = Double(configuration.leewaySeconds)
        if nowSeconds >= Double(times.exp) + leeway {
            throw .unauthorized(.expired, "The token has expired.")
        }
        if let nbf = times.nbf, nowSeconds + leeway < Double(nbf) {
            throw .unauthorized(.notYetValid, "The token is not valid yet.")
        }
        if let iat = times.iat, Double(iat) > nowSeconds + leeway {
            throw .unauthorized(.issuedInFuture, "The token was issued in the future.")
        }
    }

    private func principal(from claims: TokenJSON, now: Date) throws(AuthFailure) -> (Principal, TimeClaims) {
        var times: TimeClaims
        switch claims["exp"] {
        case nil: throw .unauthorized(.missingExp, "The token has no expiry (exp).")
        case .integer(let value)?: times = TimeClaims(exp: value)
        default: throw .unauthorized(.badClaimType, "The token's exp must be an integer NumericDate.")
        }
        switch claims["nbf"] {
        case nil: break
        case .integer(let nbf)?: times.nbf = nbf
        default: throw .unauthorized(.badClaimType, "The token's nbf must be an integer NumericDate.")
        }
        switch claims["iat"] {
        case nil: break
        case .integer(let iat)?: times.iat = iat
        default: throw .unauthorized(.badClaimType, "The token's iat must be an integer NumericDate.")
        }
        try checkTimes(times, now: now)

        guard let issuerClaim = claims["iss"] else { throw .unauthorized(.wrongIssuer, "The token has no issuer.") }
        guard case .string(let issuer) = issuerClaim else {
            throw .unauthorized(.badClaimType, "The token's iss must be a string.")
        }
        guard issuers.contains(issuer) else { throw .unauthorized(.wrongIssuer, "The token's issuer is not accepted.") }

        let tokenAudiences: [String]
        switch claims["aud"] {
        case nil: throw .unauthorized(.wrongAudience, "The token has no audience.")
        case .string(let value)?: tokenAudiences = [value]
        case .array(let values)?:
            tokenAudiences = try values.map { value throws(AuthFailure) in
                guard case .string(let audience) = value else {
                    throw .unauthorized(.badClaimType, "The token's aud must be a string or an array of strings.")
                }
                return audience
            }
        default: throw .unauthorized(.badClaimType, "The token's aud must be a string or an array of strings.")
        }
        guard tokenAudiences.contains(where: audiences.contains) else {
            throw .unauthorized(.wrongAudience, "The token is not meant for this service.")
        }

        guard let subjectClaim = claims["sub"] else { throw .unauthorized(.missingSubject, "The token has no subject.") }
        guard case .string(let subject) = subjectClaim, !subject.isEmpty, subject.utf8.count <= Self.maxSubjectBytes,
            !AuthText.hasControlCharacters(subject)
        else {
            throw .unauthorized(
                .badClaimType, "The token's sub must be a string of 1 to \(Self.maxSubjectBytes) bytes without control characters.")
        }

        let claimedRoles = try roles(in: claims)
        var roles: [String] = []
        var permissions: Set<Permission> = []
        var allowedModels: Set<String>? = []
        for name in claimedRoles where !roles.contains(name) {
            guard let role = configuration.roles[name] else { continue }  // unknown roles grant nothing
            roles.append(name)
            permissions.formUnion(role.permissions)
            if role.permissions.contains(.infer) {
                if let models = role.models {
                    allowedModels?.formUnion(models)
                } else {
                    allowedModels = nil
                }
            }
        }
        let principal = Principal(
            subject: subject, issuer: issuer, roles: roles, permissions: permissions, allowedModels: allowedModels,
            expiresAt: Date(timeIntervalSince1970: Double(times.exp)))
        return (principal, times)
    }

    /// The role claim: an array of strings, or a space-separated string (OAuth `scope` style).
    private func roles(in claims: TokenJSON) throws(AuthFailure) -> [String] {
        let claim = claims[configuration.roleClaim] ?? claims["scope"]
        let names: [String]
        switch claim {
        case nil: names = []
        case .string(let value)?: names = value.split(separator: " ").map(String.init)
        case .array(let values)?:
            names = try values.map { value throws(AuthFailure) in
                guard case .string(let name) = value else {
                    throw .unauthorized(.badClaimType, "The token's roles must be strings.")
                }
                return name
            }
        default: throw .unauthorized(.badClaimType, "The token's roles must be an array of strings or a space-separated string.")
        }
        guard names.count <= Self.maxRoles else {
            throw .unauthorized(.badClaimType, "The token names more than \(Self.maxRoles) roles.")
        }
        return names
    }
}

/// Checks that an authenticated caller may use `permission` (and `model`, for
/// the KServe passthrough). Returns a 403 failure, or `nil` when allowed.
public func authorize(_ principal: Principal, permission: Permission, model: String? = nil) -> AuthFailure? {
    guard principal.permissions.contains(permission) else {
        return .forbidden("This token's roles do not grant the '\(permission.rawValue)' permission.")
    }
    if let model, let allowed = principal.allowedModels, !allowed.contains(model) {
        return .forbidden("This token's roles do not allow the requested model.")
    }
    return nil
}
