import Foundation
import Logging
import ServiceLifecycle

/// Everything the server needs for traffic routing, built in one call:
/// the router (`VariantResolver`), the file watcher and the canary controller.
///
///     let traffic = try await TrafficRuntime.start(trafficFile: url, canaryStateFile: stateURL,
///                                                  instanceID: id, readiness: check, logger: logger,
///                                                  adminEvents: auditLog)
///     // resolver: traffic.router; services: traffic.services (after the audit log)
public struct TrafficRuntime: Sendable {
    public let router: TrafficRouter
    public let watcher: TrafficFileWatcher

    /// Add these to the ServiceGroup: the watcher (polling, SIGHUP) and the canary
    /// controller (window ticks, state file).
    public var services: [any Service] { [watcher, router.canary] }

    /// Loads and validates the traffic file (throws `TrafficConfigurationError` so
    /// the server can refuse to start), restores canary decisions from the state
    /// file and builds the watcher.
    public static func start(
        trafficFile: URL, canaryStateFile: URL?, instanceID: String, readiness: VariantReadinessCheck?,
        pollInterval: Duration = .milliseconds(500), reloadOnSIGHUP: Bool = true, logger: Logger,
        adminEvents: (any AdminEventRecorder)?
    ) async throws -> TrafficRuntime {
        let configuration = try await TrafficFileWatcher.loadInitial(path: trafficFile, readiness: readiness)
        let router = TrafficRouter.make(
            configuration: configuration,
            canarySettings: .init(stateFile: canaryStateFile, instanceID: instanceID),
            logger: logger, adminEvents: adminEvents
        )
        let watcher = TrafficFileWatcher(
            settings: .init(path: trafficFile, pollInterval: pollInterval, reloadOnSIGHUP: reloadOnSIGHUP),
            router: router, readiness: readiness, logger: logger, adminEvents: adminEvents
        )
        logger.notice("traffic file loaded", metadata: [
            "traffic.revision": "\(configuration.shortRevision)", "traffic.routes": "\(configuration.routeNames.joined(separator: ","))",
        ])
        return TrafficRuntime(router: router, watcher: watcher)
    }
}
