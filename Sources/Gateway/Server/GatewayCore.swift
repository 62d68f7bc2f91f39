import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The parts every handler shares, built once by `buildApplication`.
public final class GatewayCore: Sendable {
    public let configuration: GatewayConfiguration
    public let authenticator: JWTAuthenticator
    public let rateLimiter: RateLimiter?
    /// Failed authentications per peer address (`auth_failure_limit`).
    public let authFailureLimiter: RateLimiter?
    public let resolver: any VariantResolver
    public let auditSink: any AuditSink
    public let upstream: Upstream
    public let readiness: ReadinessProbe
    public let metrics: GatewayMetrics
    /// Traffic router, file watcher and canary controller when `traffic.file` is set.
    public let traffic: TrafficRuntime?
    /// The audit log when `audit.enabled` (for the admin API).
    public let auditLog: AuditLog?
    /// The last minute of traffic per variant and refusals by reason (for the admin API).
    public let activity = LiveActivity()
    /// The web console's files when `console.enabled` and the folder was found.
    public let console: ConsoleBundle?
    /// `limits.body_memory_bytes`, shared by every request that reads a body.
    let bodyBudget: BodyMemoryBudget

    init(
        configuration: GatewayConfiguration, authenticator: JWTAuthenticator, resolver: any VariantResolver,
        auditSink: any AuditSink, transport: any TritonTransport, metrics: GatewayMetrics, logger: Logger,
        traffic: TrafficRuntime? = nil, auditLog: AuditLog? = nil, console: ConsoleBundle? = nil
    ) throws {
        self.console = console
        self.traffic = traffic
        self.auditLog = auditLog
        self.configuration = configuration
        self.authenticator = authenticator
        self.rateLimiter = configuration.rateLimit.enabled
            ? RateLimiter(ratePerSecond: configuration.rateLimit.ratePerSecond, burst: configuration.rateLimit.burst) : nil
        let failureLimit = configuration.authFailureLimit
        self.authFailureLimiter = failureLimit.enabled
            ? RateLimiter(ratePerSecond: failureLimit.ratePerSecond, burst: failureLimit.burst, maxSubjects: failureLimit.maxPeers) : nil
        self.bodyBudget = BodyMemoryBudget(capacity: configuration.limits.bodyMemoryBytes)
        self.resolver = resolver
        self.auditSink = auditSink
        self.metrics = metrics
        self.upstream = Upstream(transport: transport, configuration: configuration, metrics: metrics)
        self.readiness = ReadinessProbe(
            transport: transport, models: configuration.readinessModels, cacheSeconds: configuration.readiness.cacheSeconds,
            pollInterval: .seconds(2), connectTimeout: .milliseconds(Int64(configuration.timeouts.connect * 1000)),
            breaker: upstream.breaker, logger: logger)
    }

    /// Reads the request's body and makes what the handler needs of it (`parse`) while
    /// holding a share of the body memory budget: the body's largest possible size times
    /// `copies` (the body and what is built from it), plus `extra` for that size.
    func readBody<T: Sendable>(
        _ request: Request, copies: Int, extra: (Int) -> Int = { _ in 0 }, _ parse: ([UInt8]) throws -> T
    ) async throws -> T {
        let limit = configuration.limits.maxBodyBytes
        let size = BodyReader.largestSize(request, limit: limit)
        return try await bodyBudget.withReservation(size * copies + extra(size)) {
            try parse(try await BodyReader.read(request, limit: limit))
        }
    }

    /// Keyed hash of request bytes for the audit log (never the bytes themselves),
    /// with the audit log's key; `nil` without an audit log or without bytes.
    func inputHMAC(_ bytes: [UInt8]) -> String? {
        guard let auditLog, !bytes.isEmpty else { return nil }
        return auditLog.hmac(bytes)
    }

    /// Verifies the bearer token, checks the permission (and model allowlist),
    /// then the caller's rate limit. Throws the matching problem (401/431/403/429).
    /// A peer over its failed-authentication budget gets 429 before its token is checked
    /// (unless the token was already accepted), and each failure is charged to its address.
    @discardableResult
    func authorize(_ request: Request, context: GatewayRequestContext, permission: Permission, model: String? = nil) throws -> Principal {
        let header = request.headers[.authorization]
        // The client as ConnectionGuard established it (trusted proxies' X-Forwarded-For), counted by its /64 if IPv6.
        let peer = PeerAddress.limitKey(request.headers[.gatewayClientAddress] ?? context.peerAddress ?? "unknown")
        let admit = { self.authFailureLimiter?.peek(subject: peer) ?? .allowed(remaining: 1) }
        switch authenticator.authenticate(authorizationHeader: header, now: Date(), admit: admit) {
        case .failure(let failure):
            if failure.countsAgainstPeer { _ = authFailureLimiter?.acquire(subject: peer) }
            context.record.update { $0.authFailureReason = failure.reason.rawValue }
            metrics.recordAuthFailure(reason: failure.reason.rawValue)
            throw Self.problem(for: failure, tokenPresent: header != nil)
        case .success(let principal):
            context.record.update { $0.principal = principal }
            if let failure = Gateway.authorize(principal, permission: permission, model: model) {
                context.record.update { $0.authFailureReason = failure.reason.rawValue }
                metrics.recordAuthFailure(reason: failure.reason.rawValue)
                throw Self.problem(for: failure, tokenPresent: true)
            }
            if let rateLimiter {
                if case .limited(let retryAfter) = rateLimiter.acquire(subject: principal.subject) {
                    metrics.rateLimited.increment()
                    throw GatewayProblem(.tooManyRequests, "rate-limited", "Too many requests for this subject; slow down.",
                                         headers: [(.retryAfter, String(max(1, retryAfter)))])
                }
            }
            return principal
        }
    }

    /// Records a connection whose request head did not arrive within `timeouts.request`
    /// (``ConnectionGuard`` answered it 408 itself): an audit record, as for every answer,
    /// counted in the request metrics under the route `unmatched`.
    func recordHeadTimeout(requestID: String, connectedAt: Date) {
        let seconds = Date().timeIntervalSince(connectedAt)
        metrics.recordRequest(route: "unmatched", status: 408, decision: nil, routing: nil, seconds: seconds)
        activity.recordRefusal(slug: "request-timeout", authReason: nil)
        let event = AuditEvent(requestID: requestID, receivedAt: connectedAt, endpoint: "unmatched", status: 408,
                               errorCode: "request-timeout", latencySeconds: seconds)
        Task {
            do {
                try await self.auditSink.record(event)
            } catch {
                self.metrics.recordAuditFailure()
            }
        }
    }

    /// The answer to a peer over its failed-authentication budget (here and in `ConnectionGuard`).
    static func peerLimitedProblem(retryAfterSeconds: Int) -> GatewayProblem {
        GatewayProblem(.tooManyRequests, "auth-rate-limited", "Too many failed authentications from this address; try again later.",
                       headers: [(.retryAfter, String(max(1, retryAfterSeconds)))])
    }

    /// Whether a request that has just arrived from `peer` is to be refused with 429 before
    /// routing: the peer is over its failed-authentication budget, the path needs a token,
    /// and the request carries none this gateway has already accepted. Returns the
    /// `Retry-After` seconds, or `nil` to let the request through.
    func refusalBeforeRouting(peer: String, path: String, authorization: String?) -> Int? {
        guard let limiter = authFailureLimiter, case .limited(let seconds) = limiter.peek(subject: peer),
            Self.needsToken(path), !authenticator.hasRememberedToken(authorizationHeader: authorization)
        else { return nil }
        metrics.recordAuthFailure(reason: AuthFailure.Reason.peerLimited.rawValue)
        return seconds
    }

    /// Paths whose every route checks a bearer token (`/metrics` only when configured so).
    static func needsToken(_ path: String) -> Bool {
        path.hasPrefix("/v1/") || path.hasPrefix("/v2/") || path.hasPrefix("/admin/")
    }

    static func problem(for failure: AuthFailure, tokenPresent: Bool) -> GatewayProblem {
        switch failure.status {
        case 403:
            return GatewayProblem(.forbidden, "forbidden", "The token does not grant access to this resource.")
        case 431:
            return GatewayProblem(.requestHeaderFieldsTooLarge, "header-too-large", "The Authorization header is too large.")
        case 429:
            return peerLimitedProblem(retryAfterSeconds: failure.retryAfterSeconds ?? 1)
        default:
            let challenge = tokenPresent ? "Bearer realm=\"moderation-gateway\", error=\"invalid_token\"" : "Bearer realm=\"moderation-gateway\""
            return GatewayProblem(.unauthorized, "unauthorized", "A valid bearer token is required.", headers: [(.wwwAuthenticate, challenge)])
        }
    }
}
