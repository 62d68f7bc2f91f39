import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import TritonClient

/// The pluggable parts a gateway is built with. Defaults: a route → fixed
/// model resolver from the configuration and an audit sink that keeps nothing.
public struct GatewayParts: Sendable {
    public var resolver: (any VariantResolver)?
    public var auditSink: (any AuditSink)?
    /// Background services of the parts (audit writer, traffic watcher, canary
    /// controller); they run in the application's service group and stop after it.
    public var services: [any Service]
    /// The Triton connection; default: an `InferenceServerClient` for `triton.url`.
    public var transport: (any TritonTransport)?
    /// The traffic runtime (router, watcher, canary) for the admin API and mirroring; set by `GatewayParts.live`.
    public var traffic: TrafficRuntime?
    /// The audit log for the admin API; set by `GatewayParts.live`.
    public var auditLog: AuditLog?

    public init(resolver: (any VariantResolver)? = nil, auditSink: (any AuditSink)? = nil, services: [any Service] = [],
                transport: (any TritonTransport)? = nil) {
        self.resolver = resolver
        self.auditSink = auditSink
        self.services = services
        self.transport = transport
    }
}

/// Builds the router with every route and the edge middleware.
public func buildRouter(core: GatewayCore) -> Router<GatewayRequestContext> {
    let router = Router(context: GatewayRequestContext.self)
    // The middleware wraps only routes added after it, so it comes first and learns the
    // routes (for 405's Allow) once they are all there.
    let methods = RouteMethods()
    router.add(middleware: EdgeMiddleware(core: core, methods: methods))
    OperationsHandlers(core: core).register(on: router)
    let moderation = ModerationHandler(core: core)
    router.post("v1/moderate") { request, context in try await moderation.handle(request, context: context) }
    KServeHandler(core: core).register(on: router)
    AdminHandler(core: core).register(on: router)
    ConsoleHandler(bundle: core.console).register(on: router)
    methods.install(router.routes.map { (path: $0.path.description, method: $0.method.rawValue) })
    return router
}

/// Builds the shared state from a validated configuration.
public func buildCore(configuration: GatewayConfiguration, parts: GatewayParts = GatewayParts(), logger: Logger) throws -> GatewayCore {
    let transport: any TritonTransport
    if let given = parts.transport {
        transport = given
    } else {
        var clientConfiguration = InferenceServerClient.Configuration()
        clientConfiguration.connectTimeout = .milliseconds(Int64(configuration.timeouts.connect * 1000))
        // The concurrency limiter already bounds calls; the pool gets headroom for
        // readiness probes and mirrored copies, so no call ever waits in libcurl's
        // own queue (where its timeout would run before anything is sent).
        clientConfiguration.maxConnectionsPerHost = configuration.limits.maxConcurrentUpstream + 8
        // Triton's answers are small (decisions, tensors of test models); a bogus
        // or runaway response must not take the gateway's memory.
        clientConfiguration.maxResponseBytes = 64 << 20
        clientConfiguration.tls.caFile = configuration.triton.tls.caFile.map { configuration.resolvePath($0).path }
        clientConfiguration.tls.certificateFile = configuration.triton.tls.certificateFile.map { configuration.resolvePath($0).path }
        clientConfiguration.tls.privateKeyFile = configuration.triton.tls.privateKeyFile.map { configuration.resolvePath($0).path }
        clientConfiguration.tls.verifyPeer = configuration.triton.tls.verifyPeer
        clientConfiguration.tls.verifyHost = configuration.triton.tls.verifyHost
        transport = try InferenceServerClient(
            url: configuration.triton.url, configuration: clientConfiguration, logger: logger.withLabel("triton-client"))
    }
    let authenticator = try JWTAuthenticator(configuration: configuration.auth, baseDirectory: configuration.baseDirectory)
    return try GatewayCore(
        configuration: configuration, authenticator: authenticator,
        resolver: parts.resolver ?? StaticVariantResolver(routes: configuration.routes),
        auditSink: parts.auditSink ?? DiscardingAuditSink(), transport: transport, metrics: GatewayMetrics(), logger: logger,
        traffic: parts.traffic, auditLog: parts.auditLog, console: try configuration.loadConsole())
}

/// The gateway application: HTTP server plus its background services (readiness
/// poller and the parts' services), used by the executable and by the tests.
public func buildApplication(
    configuration: GatewayConfiguration, parts: GatewayParts = GatewayParts(), logger: Logger,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    let core = try buildCore(configuration: configuration, parts: parts, logger: logger)
    let router = buildRouter(core: core)
    let counter = PeerConnectionCounter(limit: configuration.listen.maxConnectionsPerPeer, totalLimit: configuration.listen.maxConnections)
    let headTimeout = TimeAmount.milliseconds(Int64(configuration.timeouts.request * 1000))
    let decoderLimit = max(64 * 1024, configuration.limits.maxHeaderBytes * 2)
    let refusal: ConnectionGuard.Refusal?
    if core.authFailureLimiter != nil {
        refusal = { peer, path, authorization in core.refusalBeforeRouting(peer: peer, path: path, authorization: authorization) }
    } else {
        refusal = nil
    }
    let timeoutReport: ConnectionGuard.TimeoutReport = { requestID, connectedAt, _ in core.recordHeadTimeout(requestID: requestID, connectedAt: connectedAt) }
    let http1 = HTTP1Channel.Configuration(
        additionalChannelHandlers: [ConnectionGuard(counter: counter, headTimeout: headTimeout, refusal: refusal, timeoutReport: timeoutReport,
                                                       trustedProxies: configuration.listen.trustedProxyBlocks)],
        idleTimeout: .milliseconds(Int64(configuration.timeouts.idle * 1000)),
        httpDecoderConfiguration: .init(maxHeaderFieldSize: decoderLimit, maxHeaderListSize: decoderLimit, maxHeaderFieldCount: 256))
    let app = Application(
        router: router,
        server: .http1(configuration: http1),
        configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "moderation-gateway"),
        services: [core.readiness, KeyFileWatcher(authenticator: core.authenticator, logger: logger.withLabel("auth-keys"))] + parts.services,
        onServerRunning: onServerRunning,
        logger: logger)
    return app
}

/// Runs the application in a service group whose graceful shutdown (SIGTERM or
/// SIGINT: stop accepting, drain in-flight requests, then stop the background
/// services in reverse order) is bounded by `timeouts.shutdown_grace`.
public func runGateway(_ app: some ApplicationProtocol, configuration: GatewayConfiguration) async throws {
    var groupConfiguration = ServiceGroupConfiguration(
        services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: app.logger)
    groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(Int64(configuration.timeouts.shutdownGrace * 1000))
    try await ServiceGroup(configuration: groupConfiguration).run()
}

extension Logger {
    func withLabel(_ label: String) -> Logger {
        var copy = Logger(label: label)
        copy.logLevel = logLevel
        return copy
    }
}
