import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The parts every handler shares, built once by `buildApplication`.
public final class GatewayCore: Sendable {
    public let configuration: GatewayConfiguration
    public let authenticator: JWTAuthenticator
    public let rateLimiter: RateLimiter?
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
        self.resolver = resolver
        self.auditSink = auditSink
        self.metrics = metrics
        self.upstream = Upstream(transport: transport, configuration: configuration, metrics: metrics)
        self.readiness = ReadinessProbe(
            transport: transport, models: configuration.readinessModels, cacheSeconds: configuration.readiness.cacheSeconds,
            pollInterval: .seconds(2), connectTimeout: .milliseconds(Int64(configuration.timeouts.connect * 1000)),
            breaker: upstream.breaker, logger: logger)
    }

    /// Keyed hash of request bytes for the audit log (never the bytes themselves),
    /// with the audit log's key; `nil` without an audit log or without bytes.
    func inputHMAC(_ bytes: [UInt8]) -> String? {
        guard let auditLog, !bytes.isEmpty else { return nil }
        return auditLog.hmac(bytes)
    }

    /// Verifies the bearer token, checks the permission (and model allowlist),
    /// then the caller's rate limit. Throws the matching problem (401/431/403/429).
    @discardableResult
    func authorize(_ request: Request, context: GatewayRequestContext, permission: Permission, model: String? = nil) throws -> Principal {
        let header = request.headers[.authorization]
        switch authenticator.authenticate(authorizationHeader: header, now: Date()) {
        case .failure(let failure):
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

    static func problem(for failure: AuthFailure, tokenPresent: Bool) -> GatewayProblem {
        switch failure.status {
        case 403:
            return GatewayProblem(.forbidden, "forbidden", "The token does not grant access to this resource.")
        case 431:
            return GatewayProblem(.requestHeaderFieldsTooLarge, "header-too-large", "The Authorization header is too large.")
        default:
            let challenge = tokenPresent ? "Bearer realm=\"moderation-gateway\", error=\"invalid_token\"" : "Bearer realm=\"moderation-gateway\""
            return GatewayProblem(.unauthorized, "unauthorized", "A valid bearer token is required.", headers: [(.wwwAuthenticate, challenge)])
        }
    }
}
