/// Why a request was not let through by authentication or authorization.
///
/// `reason` is a bounded label for metrics and the audit log; `detail` is a
/// fixed sentence that is safe to return to the client (it never contains the
/// token, a claim value or key material).
public struct AuthFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Reason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// No `Authorization` header.
        public static let missingToken = Reason(rawValue: "missing_token")
        /// Not exactly `Bearer <one compact JWS>`.
        public static let malformedHeader = Reason(rawValue: "malformed_header")
        /// The `Authorization` header is larger than `max_token_bytes` (431).
        public static let oversized = Reason(rawValue: "oversized")
        /// Bad base64url, bad or too deeply nested JSON, header fields of the wrong type.
        public static let malformedToken = Reason(rawValue: "malformed_token")
        /// `none`, a case variant, or an algorithm other than the one pinned for the key.
        public static let algorithmNotAllowed = Reason(rawValue: "algorithm_not_allowed")
        /// `kid` names no configured key, or no `kid` while several keys are configured.
        public static let unknownKey = Reason(rawValue: "unknown_key")
        public static let badSignature = Reason(rawValue: "bad_signature")
        /// The header has `crit`: we understand no extensions, so we refuse them all.
        public static let crit = Reason(rawValue: "crit")
        public static let missingExp = Reason(rawValue: "missing_exp")
        public static let expired = Reason(rawValue: "expired")
        public static let notYetValid = Reason(rawValue: "not_yet_valid")
        public static let issuedInFuture = Reason(rawValue: "issued_in_future")
        /// A registered claim of the wrong JSON type (e.g. `exp` as a string or a float).
        public static let badClaimType = Reason(rawValue: "bad_claim_type")
        public static let missingSubject = Reason(rawValue: "missing_subject")
        public static let wrongIssuer = Reason(rawValue: "wrong_issuer")
        public static let wrongAudience = Reason(rawValue: "wrong_audience")
        /// A valid token whose roles do not grant the permission or model (403).
        public static let forbidden = Reason(rawValue: "forbidden")
        /// The peer address has failed authentication too often; refused before its
        /// token was looked at (429, `Retry-After`).
        public static let peerLimited = Reason(rawValue: "peer_limited")

        /// Every reason this module produces, to pre-create metric series.
        public static let allCases: [Reason] = [
            .missingToken, .malformedHeader, .oversized, .malformedToken, .algorithmNotAllowed, .unknownKey,
            .badSignature, .crit, .missingExp, .expired, .notYetValid, .issuedInFuture, .badClaimType,
            .missingSubject, .wrongIssuer, .wrongAudience, .forbidden, .peerLimited,
        ]
    }

    public var reason: Reason
    /// HTTP status: 401, 431 for an oversized `Authorization` header, 403 for `forbidden`,
    /// 429 for `peerLimited`.
    public var status: Int
    /// Safe to show to the client.
    public var detail: String
    /// For 429: whole seconds until the peer may try again (`Retry-After`).
    public var retryAfterSeconds: Int?

    public init(reason: Reason, status: Int, detail: String, retryAfterSeconds: Int? = nil) {
        self.reason = reason
        self.status = status
        self.detail = detail
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// Whether this refusal counts against the peer's failed-authentication budget: a
    /// token (or its absence) that did not authenticate. Not 403 (a valid token) and not
    /// the limiter's own 429.
    public var countsAgainstPeer: Bool { status == 401 || status == 431 }

    static func peerLimited(retryAfterSeconds: Int) -> AuthFailure {
        AuthFailure(
            reason: .peerLimited, status: 429,
            detail: "Too many failed authentications from this address; try again later.", retryAfterSeconds: retryAfterSeconds)
    }

    /// True when the response must carry `WWW-Authenticate` (every 401).
    public var isUnauthorized: Bool { status == 401 }

    /// The `WWW-Authenticate` value for this refusal (RFC 6750 section 3): plain `Bearer`
    /// when no token was sent, `invalid_request` for a malformed header, `invalid_token`
    /// for any other 401, `insufficient_scope` for 403; `nil` for 431.
    public var wwwAuthenticate: String? {
        switch (status, reason) {
        case (401, .missingToken): return "Bearer"
        case (401, .malformedHeader): return #"Bearer error="invalid_request""#
        case (401, _): return #"Bearer error="invalid_token""#
        case (403, _): return #"Bearer error="insufficient_scope""#
        default: return nil
        }
    }

    public var description: String { "\(status) \(reason.rawValue): \(detail)" }

    static func unauthorized(_ reason: Reason, _ detail: String) -> AuthFailure {
        AuthFailure(reason: reason, status: 401, detail: detail)
    }

    static func forbidden(_ detail: String) -> AuthFailure {
        AuthFailure(reason: .forbidden, status: 403, detail: detail)
    }
}
