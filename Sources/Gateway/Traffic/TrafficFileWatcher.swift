import Crypto
import Dispatch
import Foundation
import Logging
import Metrics
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Watches the traffic file and installs each good version it sees.
///
/// Polls the path every `pollInterval` and compares the content hash, not the mtime,
/// so both an atomic replace (write elsewhere, rename over) and an in-place rewrite
/// are seen, and a touch without change is not a reload. A changed file must read
/// the same twice `settleDelay` apart before it is judged, so a rewrite caught half
/// way is not refused. A refused file leaves the configuration in force, and is
/// logged, counted (`traffic_reload_failures_total`), audited and kept for the admin
/// API. `reload(trigger:)` forces a reload (SIGHUP, admin endpoint).
public final class TrafficFileWatcher: Service, Sendable {
    public struct Settings: Sendable {
        public var path: URL
        public var pollInterval: Duration
        public var settleDelay: Duration
        /// Install a SIGHUP handler while running (the server's default).
        public var reloadOnSIGHUP: Bool

        public init(
            path: URL, pollInterval: Duration = .milliseconds(500), settleDelay: Duration = .milliseconds(50),
            reloadOnSIGHUP: Bool = true
        ) {
            self.path = path
            self.pollInterval = pollInterval
            self.settleDelay = settleDelay
            self.reloadOnSIGHUP = reloadOnSIGHUP
        }
    }

    private let settings: Settings
    private let router: TrafficRouter
    private let readiness: VariantReadinessCheck?
    private let logger: Logger
    private let adminEvents: (any AdminEventRecorder)?
    /// Hash of the content last judged (accepted or refused).
    private let lastSeen: Locked<String?>
    private let failures = Counter(label: "traffic_reload_failures_total")
    private let successes = Counter(label: "traffic_reloads_total")

    public init(
        settings: Settings, router: TrafficRouter, readiness: VariantReadinessCheck?, logger: Logger,
        adminEvents: (any AdminEventRecorder)?
    ) {
        self.settings = settings
        self.router = router
        self.readiness = readiness
        self.logger = logger
        self.adminEvents = adminEvents
        self.lastSeen = Locked(router.store.snapshot.configuration.revision)
    }

    /// Loads the file at startup; the server refuses to start on an error.
    public static func loadInitial(path: URL, readiness: VariantReadinessCheck?) async throws -> TrafficConfiguration {
        let data: Data
        do {
            data = try Data(contentsOf: path)
        } catch {
            throw TrafficConfigurationError(problems: [
                .init(file: path.lastPathComponent, line: nil, key: "", message: "cannot read file: \(error.localizedDescription)")
            ])
        }
        return try await TrafficConfiguration.load(data: data, fileName: path.lastPathComponent, readiness: readiness)
    }

    /// One poll: reloads when the content changed since it was last judged.
    @discardableResult
    public func checkForChange() async -> TrafficReloadReport? {
        guard let data = try? Data(contentsOf: settings.path) else {
            let marker = "unreadable"
            guard lastSeen.current != marker else { return nil }
            lastSeen.withLock { $0 = marker }
            let problem = TrafficConfigurationProblem(
                file: settings.path.lastPathComponent, line: nil, key: "", message: "cannot read file"
            )
            return await refuse(TrafficConfigurationError(problems: [problem]), hash: marker, trigger: "watch")
        }
        let hash = TrafficConfiguration.revision(of: data)
        guard hash != lastSeen.current else { return nil }
        try? await Task.sleep(for: settings.settleDelay)
        guard let again = try? Data(contentsOf: settings.path), TrafficConfiguration.revision(of: again) == hash else {
            return nil  // still being written; judge it on a later poll
        }
        return await judge(data, hash: hash, trigger: "watch")
    }

    /// Re-reads and re-validates the file even when unchanged (a refused file is
    /// tried again, e.g. after Triton loaded the missing model).
    @discardableResult
    public func reload(trigger: String = "admin") async -> TrafficReloadReport {
        let data: Data
        do {
            data = try Data(contentsOf: settings.path)
        } catch {
            let problem = TrafficConfigurationProblem(
                file: settings.path.lastPathComponent, line: nil, key: "", message: "cannot read file"
            )
            return await refuse(TrafficConfigurationError(problems: [problem]), hash: "unreadable", trigger: trigger)
        }
        return await judge(data, hash: TrafficConfiguration.revision(of: data), trigger: trigger)
    }

    private func judge(_ data: Data, hash: String, trigger: String) async -> TrafficReloadReport {
        lastSeen.withLock { $0 = hash }
        let previous = router.store.snapshot.configuration.revision
        let configuration: TrafficConfiguration
        do {
            configuration = try await TrafficConfiguration.load(
                data: data, fileName: settings.path.lastPathComponent, readiness: readiness
            )
        } catch let error as TrafficConfigurationError {
            return await refuse(error, hash: hash, trigger: trigger)
        } catch {
            let problem = TrafficConfigurationProblem(
                file: settings.path.lastPathComponent, line: nil, key: "", message: "\(error)"
            )
            return await refuse(TrafficConfigurationError(problems: [problem]), hash: hash, trigger: trigger)
        }
        if configuration.revision == previous {
            let report = TrafficReloadReport(
                at: Date(), outcome: "unchanged", revision: configuration.shortRevision, trigger: trigger, problems: []
            )
            router.store.noteReload(report)
            return report
        }
        router.apply(configuration)
        successes.increment()
        let report = TrafficReloadReport(
            at: Date(), outcome: "accepted", revision: configuration.shortRevision, trigger: trigger, problems: []
        )
        router.store.noteReload(report)
        logger.notice("traffic file reloaded", metadata: [
            "traffic.revision": "\(configuration.shortRevision)", "traffic.previous": "\(previous.prefix(12))",
            "traffic.trigger": "\(trigger)",
        ])
        await audit("traffic_reload", [
            "revision": .string(configuration.shortRevision), "previous_revision": .string(String(previous.prefix(12))),
            "trigger": .string(trigger), "path": .string(settings.path.path),
        ])
        return report
    }

    private func refuse(_ error: TrafficConfigurationError, hash: String, trigger: String) async -> TrafficReloadReport {
        failures.increment()
        let report = TrafficReloadReport(at: Date(), outcome: "refused", revision: nil, trigger: trigger, problems: error.problems)
        router.store.noteReload(report)
        logger.error("traffic file refused; keeping the configuration in force", metadata: [
            "traffic.revision": "\(router.store.snapshot.configuration.shortRevision)",
            "traffic.problems": "\(error.description)", "traffic.trigger": "\(trigger)",
        ])
        await audit("traffic_reload_refused", [
            "content_hash": .string(String(hash.prefix(12))), "trigger": .string(trigger),
            "kept_revision": .string(router.store.snapshot.configuration.shortRevision),
            "problems": .array(error.problems.map { .string($0.description) }),
        ])
        return report
    }

    private func audit(_ kind: String, _ details: [String: AuditValue]) async {
        do {
            try await adminEvents?.recordAdmin(kind: kind, details: details)
        } catch {
            logger.error("traffic admin event not audited", metadata: ["audit.kind": "\(kind)", "error": "\(error)"])
        }
    }

    public func run() async throws {
        let signalSource: (any DispatchSourceSignal)?
        if settings.reloadOnSIGHUP {
            signal(SIGHUP, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
            source.setEventHandler { [self] in
                Task { await self.reload(trigger: "sighup") }
            }
            source.resume()
            signalSource = source
        } else {
            signalSource = nil
        }
        defer { signalSource?.cancel() }
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    try await Task.sleep(for: self.settings.pollInterval)
                    await self.checkForChange()
                }
            }
        } catch is CancellationError {
            return
        }
    }
}
