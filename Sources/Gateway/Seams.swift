import Foundation

// Contracts between the gateway core and its pluggable parts: authentication,
// traffic routing (A/B, canary) and the audit log. The core depends only on
// these; each part lives in its own folder and conforms to them.

/// A permission a role grants. Checked per route.
/// Coded as its plain string (RawRepresentable's default Codable).
public struct Permission: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// `POST /v1/moderate`.
    public static let moderate = Permission("moderate")
    /// KServe v2 inference and metadata passthrough (subject to a model allowlist).
    public static let infer = Permission("infer")
    /// Repository, shared memory, trace, logging and traffic administration.
    public static let admin = Permission("admin")
    /// `GET /metrics` (Prometheus' scrape token); opens nothing else.
    public static let metrics = Permission("metrics")
}

/// Who is calling, established from a verified token.
public struct Principal: Sendable, Equatable {
    public var subject: String
    public var issuer: String
    public var roles: [String]
    public var permissions: Set<Permission>
    /// Models this caller may reach through the KServe passthrough; `nil` means any.
    public var allowedModels: Set<String>?
    public var expiresAt: Date

    public init(
        subject: String, issuer: String, roles: [String], permissions: Set<Permission>,
        allowedModels: Set<String>?, expiresAt: Date
    ) {
        self.subject = subject
        self.issuer = issuer
        self.roles = roles
        self.permissions = permissions
        self.allowedModels = allowedModels
        self.expiresAt = expiresAt
    }
}

/// The upstream model a request is served by, as chosen by the traffic router.
public struct RouteDecision: Sendable, Equatable {
    /// Route name, e.g. `moderation`.
    public var route: String
    /// Variant name from the traffic file, e.g. `baseline` or `int8`.
    public var variant: String
    /// Triton model name.
    public var model: String
    /// Triton model version; `nil` lets Triton pick by its version policy.
    public var version: String?
    /// Revision (content hash) of the traffic configuration that made the choice.
    public var revision: String

    public init(route: String, variant: String, model: String, version: String?, revision: String) {
        self.route = route
        self.variant = variant
        self.model = model
        self.version = version
        self.revision = revision
    }
}

/// Picks the variant that serves a request. The default implementation maps a
/// route to one fixed model; the traffic part replaces it with weighted, sticky
/// assignment from `traffic.yaml`.
public protocol VariantResolver: Sendable {
    /// `stickyKey` is the subject (or a configured header's value); `nil` when
    /// there is none. Returns `nil` when the route is unknown.
    func resolve(route: String, stickyKey: String?, headers: [(String, String)]) -> RouteDecision?
    /// Called after the upstream call, so canary analysis can see outcomes.
    func observe(_ decision: RouteDecision, outcome: UpstreamOutcome)
}

/// What happened upstream, for canary analysis and metrics.
public struct UpstreamOutcome: Sendable {
    /// True for 5xx answers and upstream failures; client errors (4xx) are false.
    public var isServerError: Bool
    /// Wall time of the upstream call in seconds.
    public var latencySeconds: Double
    public init(isServerError: Bool, latencySeconds: Double) {
        self.isServerError = isServerError
        self.latencySeconds = latencySeconds
    }
}

/// One request as the audit log sees it. Never holds the image or the token.
public struct AuditEvent: Sendable {
    /// The gateway's id for the request (always generated).
    public var requestID: String
    /// The well-formed `X-Request-Id` the client sent, if any: kept for correlation only.
    public var clientRequestID: String?
    public var traceID: String?
    public var receivedAt: Date
    public var subject: String?
    public var issuer: String?
    public var roles: [String]
    /// Route template, e.g. `/v1/moderate` or `/v2/models/{model}/infer`.
    public var endpoint: String
    public var decision: RouteDecision?
    /// Moderation decision (`allow`/`review`/`block`) when there is one.
    public var verdict: String?
    public var reasonCodes: [String]
    public var status: Int
    public var upstreamStatus: Int?
    /// Problem type slug for refusals (e.g. `unauthorized`, `payload-too-large`).
    public var errorCode: String?
    public var latencySeconds: Double
    public var upstreamLatencySeconds: Double?
    public var inputBytes: Int
    public var contentType: String?
    /// HMAC-SHA-256 of the input bytes with the audit key, hex; `nil` when no body.
    public var inputHMAC: String?
    /// What the call acts on: its validated path parameters (`model`, `version`,
    /// `region`), e.g. the model an administrator loaded.
    public var target: [String: String]

    public init(
        requestID: String, clientRequestID: String? = nil, traceID: String? = nil, receivedAt: Date, subject: String? = nil,
        issuer: String? = nil, roles: [String] = [], endpoint: String, decision: RouteDecision? = nil,
        verdict: String? = nil, reasonCodes: [String] = [], status: Int, upstreamStatus: Int? = nil,
        errorCode: String? = nil, latencySeconds: Double, upstreamLatencySeconds: Double? = nil,
        inputBytes: Int = 0, contentType: String? = nil, inputHMAC: String? = nil, target: [String: String] = [:]
    ) {
        self.requestID = requestID
        self.clientRequestID = clientRequestID
        self.traceID = traceID
        self.receivedAt = receivedAt
        self.subject = subject
        self.issuer = issuer
        self.roles = roles
        self.endpoint = endpoint
        self.decision = decision
        self.verdict = verdict
        self.reasonCodes = reasonCodes
        self.status = status
        self.upstreamStatus = upstreamStatus
        self.errorCode = errorCode
        self.latencySeconds = latencySeconds
        self.upstreamLatencySeconds = upstreamLatencySeconds
        self.inputBytes = inputBytes
        self.contentType = contentType
        self.inputHMAC = inputHMAC
        self.target = target
    }
}

/// Receives every request's audit event. `record` returns only when the event
/// is durable (the real log fsyncs, with group commit); a thrown error means it
/// is not, and the gateway must then answer 503 instead of the normal response.
public protocol AuditSink: Sendable {
    func record(_ event: AuditEvent) async throws
}

/// An audit sink that keeps nothing: used when auditing is switched off.
public struct DiscardingAuditSink: AuditSink {
    public init() {}
    public func record(_ event: AuditEvent) async throws {}
}
