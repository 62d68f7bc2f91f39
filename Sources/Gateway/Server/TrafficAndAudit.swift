import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import TritonClient

// Wiring of the traffic router (A/B, canary, mirror) and the audit log into the
// gateway: configuration checks, building the parts, response headers, mirroring.

extension GatewayConfiguration {
    /// `$HOSTNAME` when it is a usable name (the pod name in Kubernetes), else `gateway`.
    static var defaultInstanceID: String {
        if let host = ProcessInfo.processInfo.environment["HOSTNAME"], NameRules.isValidName(host) { return host }
        return "gateway"
    }

    /// Checks of the keys that configure traffic routing and the audit log.
    func validateTrafficAndAudit() throws {
        func check(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw ConfigurationError(key: key, message) }
        }
        try check(NameRules.isValidName(instanceID), "instance_id", "must match [A-Za-z0-9_.-]{1,128}")
        try check(audit.maxFileBytes >= 4096, "audit.max_file_bytes", "must be at least 4096")
        try check(["plain", "hmac"].contains(audit.subjectMode), "audit.subject_mode", "must be plain or hmac")
        try check(traffic.pollInterval > 0 && traffic.pollInterval <= 3600, "traffic.poll_interval", "must be in (0, 3600] seconds")
        if let state = traffic.canaryStateFile {
            try check(!state.isEmpty, "traffic.canary_state_file", "must not be empty")
            let folder = resolvePath(state).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            try check(FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) && isDirectory.boolValue,
                      "traffic.canary_state_file", "folder \(folder) does not exist")
            try check(traffic.file != nil, "traffic.canary_state_file", "needs traffic.file")
        }
    }

    /// Settings for the project's Triton client from `triton` and `timeouts`.
    func tritonClientConfiguration() -> InferenceServerClient.Configuration {
        var clientConfiguration = InferenceServerClient.Configuration()
        clientConfiguration.connectTimeout = .milliseconds(Int64(timeouts.connect * 1000))
        clientConfiguration.maxConnectionsPerHost = limits.maxConcurrentUpstream
        clientConfiguration.tls.caFile = triton.tls.caFile.map { resolvePath($0).path }
        clientConfiguration.tls.certificateFile = triton.tls.certificateFile.map { resolvePath($0).path }
        clientConfiguration.tls.privateKeyFile = triton.tls.privateKeyFile.map { resolvePath($0).path }
        clientConfiguration.tls.verifyPeer = triton.tls.verifyPeer
        clientConfiguration.tls.verifyHost = triton.tls.verifyHost
        return clientConfiguration
    }
}

extension GatewayParts {
    /// The real parts a configuration asks for: the audit log when `audit.enabled`,
    /// the traffic runtime (router, file watcher, canary controller) when
    /// `traffic.file` is set. Parts already in `base` are kept. A traffic file that
    /// does not validate (or names a variant Triton does not report ready) throws.
    public static func live(configuration: GatewayConfiguration, base: GatewayParts = GatewayParts(), logger: Logger) async throws -> GatewayParts {
        var parts = base
        let transport: any TritonTransport
        if let given = base.transport {
            transport = given
        } else {
            transport = try InferenceServerClient(
                url: configuration.triton.url, configuration: configuration.tritonClientConfiguration(), logger: logger.withLabel("triton-client"))
            parts.transport = transport
        }
        var services: [any Service] = []
        var auditLog = base.auditLog
        if auditLog == nil, base.auditSink == nil, configuration.audit.enabled, let path = configuration.audit.path,
            let keyFile = configuration.audit.keyFile
        {
            guard let key = FileManager.default.contents(atPath: configuration.resolvePath(keyFile).path) else {
                throw ConfigurationError(key: "audit.key_file", "file \(keyFile) is not readable")
            }
            let log: AuditLog
            do {
                log = try AuditLog.open(
                    .init(directory: configuration.resolvePath(path), instanceID: configuration.instanceID, key: [UInt8](key),
                          maxFileBytes: configuration.audit.maxFileBytes,
                          subjectMode: AuditLog.SubjectMode(rawValue: configuration.audit.subjectMode) ?? .plain),
                    logger: logger.withLabel("audit"))
            } catch {
                throw ConfigurationError(key: "audit.path", "cannot open the audit log in \(path): \(error)")
            }
            auditLog = log
        }
        if let auditLog {
            parts.auditLog = auditLog
            if parts.auditSink == nil { parts.auditSink = auditLog }
            services.append(auditLog)
        }
        if parts.traffic == nil, base.resolver == nil, let file = configuration.traffic.file {
            let readiness = Self.readinessCheck(transport: transport, timeout: configuration.timeouts.connect)
            let runtime: TrafficRuntime
            do {
                runtime = try await TrafficRuntime.start(
                    trafficFile: configuration.resolvePath(file),
                    canaryStateFile: configuration.traffic.canaryStateFile.map { configuration.resolvePath($0) },
                    instanceID: configuration.instanceID, readiness: readiness,
                    pollInterval: .milliseconds(Int64(configuration.traffic.pollInterval * 1000)),
                    reloadOnSIGHUP: configuration.traffic.reloadOnSIGHUP, logger: logger.withLabel("traffic"),
                    adminEvents: auditLog)
            } catch let error as TrafficConfigurationError {
                throw ConfigurationError(key: "traffic.file", "\(error)")
            }
            parts.traffic = runtime
        }
        if let traffic = parts.traffic {
            if parts.resolver == nil { parts.resolver = traffic.router }
            services += traffic.services
        }
        // Audit first so it stops last; the traffic services report into it.
        parts.services = services + base.services
        return parts
    }

    /// Readiness of a variant: Triton's model-ready endpoint through the client.
    static func readinessCheck(transport: any TritonTransport, timeout: Double) -> VariantReadinessCheck {
        if let client = transport as? InferenceServerClient {
            return { model, version in
                (try? await client.isModelReady(model, version: version)) ?? false
            }
        }
        return { model, version in
            var path = "/v2/models/\(model)"
            if let version { path += "/versions/\(version)" }
            let request = RawHTTPRequest(method: "GET", path: path + "/ready", timeout: .milliseconds(Int64(max(timeout, 1) * 1000)))
            return (try? await transport.execute(request))?.status == 200
        }
    }
}

/// `buildApplication` with the parts the configuration asks for (audit log,
/// traffic router, canary controller, file watcher): what `serve` runs.
public func buildGatewayApplication(
    configuration: GatewayConfiguration, parts: GatewayParts = GatewayParts(), logger: Logger,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    let live = try await GatewayParts.live(configuration: configuration, base: parts, logger: logger)
    return try buildApplication(configuration: configuration, parts: live, logger: logger, onServerRunning: onServerRunning)
}

extension HTTPField.Name {
    static let moderationRoute = HTTPField.Name("X-Moderation-Route")!
    static let moderationVariant = HTTPField.Name("X-Moderation-Variant")!
    static let modelName = HTTPField.Name("X-Model-Name")!
    static let modelVersion = HTTPField.Name("X-Model-Version")!
    static let trafficRevision = HTTPField.Name("X-Traffic-Revision")!
}

extension RouteDecision {
    /// Chosen by the traffic router (it always carries the file's revision), not
    /// a direct KServe call to the named model.
    var isRouted: Bool { !revision.isEmpty }
}

extension GatewayCore {
    /// Adds the routing headers: route, variant, model, version, traffic revision.
    func addRoutingHeaders(_ fields: inout HTTPFields, decision: RouteDecision) {
        fields[.moderationRoute] = decision.route
        fields[.moderationVariant] = decision.variant
        fields[.modelName] = decision.model
        if let version = decision.version { fields[.modelVersion] = version }
        if !decision.revision.isEmpty { fields[.trafficRevision] = decision.revision }
    }

    /// A KServe infer on `/v2/models/<route>/infer`: the route's variant when the
    /// traffic file has that route, else the model itself.
    func kserveDecision(name: String, version: String?, stickyKey: String?, headers: [(String, String)]) -> RouteDecision {
        if version == nil, let traffic, let decision = traffic.router.resolve(route: name, stickyKey: stickyKey, headers: headers) {
            return decision
        }
        return RouteDecision(route: "kserve", variant: "direct", model: name, version: version, revision: "")
    }

    /// The response body; when the route mirrors and the sample says so, a copy of
    /// the request goes to the mirror variant after the body has been written, in a
    /// detached task that never touches the client's response.
    func body(_ buffer: ByteBuffer, decision: RouteDecision?, logger: Logger,
              mirror build: (RouteDecision) -> RawHTTPRequest) -> ResponseBody {
        guard let decision, let router = traffic?.router, let target = router.mirrorTarget(for: decision) else {
            return ResponseBody(byteBuffer: buffer)
        }
        let request = build(target)
        return ResponseBody(contentLength: buffer.readableBytes) { writer in
            try await writer.write(buffer)
            try await writer.finish(nil)
            self.sendMirror(request, target: target, router: router, logger: logger)
        }
    }

    func sendMirror(_ request: RawHTTPRequest, target: RouteDecision, router: TrafficRouter, logger: Logger) {
        let upstream = self.upstream
        let factory = metrics.factory
        Task.detached {
            let clock = ContinuousClock()
            let start = clock.now
            var outcome = "ok"
            do {
                let exchange = try await upstream.call(request, kind: "mirror", logger: logger)
                if exchange.response.status >= 500 {
                    outcome = "upstream_error"
                } else if exchange.response.status >= 400 {
                    outcome = "refused"
                }
            } catch {
                outcome = "failed"
            }
            let seconds = (clock.now - start).seconds
            // The admin API counts every copy that did not get a 2xx as a mirror error.
            router.observeMirror(target, outcome: UpstreamOutcome(isServerError: outcome != "ok", latencySeconds: seconds))
            CoreMetrics.Counter(label: "gateway_mirror_requests_total",
                                dimensions: [("route", target.route), ("variant", target.variant), ("outcome", outcome)], factory: factory)
                .increment()
            CoreMetrics.Timer(label: "gateway_mirror_duration_seconds", dimensions: [("route", target.route)], factory: factory)
                .recordNanoseconds(Int64(seconds * 1e9))
            if outcome != "ok" {
                logger.debug("mirror request failed", metadata: ["mirror.variant": .string(target.variant), "mirror.outcome": .string(outcome)])
            }
        }
    }
}

/// Process-wide metrics of the traffic, canary and audit parts (they use the
/// global `MetricsSystem`). `serve` bootstraps it once; `/metrics` appends this
/// registry after the application's own. Without the bootstrap (tests running
/// several gateways in one process) those metrics are not collected.
public enum ProcessMetrics {
    static let registry = PrometheusCollectorRegistry()

    /// Routes the global `MetricsSystem` into the registry `/metrics` serves. Call once per process.
    public static func bootstrap() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    static func render() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
