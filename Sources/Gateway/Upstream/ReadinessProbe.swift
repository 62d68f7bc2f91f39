import Foundation
import TritonClient
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Answers "does Triton answer and are the configured models ready?", asking
/// Triton at most once per `readiness.cache_seconds`. Runs as a background
/// service that re-checks every few seconds, so the answer (and the circuit
/// breaker) follow Triton going away and coming back.
public final class ReadinessProbe: Service, Sendable {
    public struct Report: Sendable {
        public var ready: Bool
        /// Triton answered its readiness endpoint (with any status).
        public var reachable: Bool
        /// Triton's own answer. With `--strict-readiness` it is false while any model of
        /// the repository loads (an operator's new version), so it does not decide `ready`.
        public var serverReady: Bool
        public var models: [String: Bool]
        public var checkedAt: Date
    }

    let transport: any TritonTransport
    let models: [String]
    let cacheSeconds: Double
    let pollInterval: Duration
    let breaker: CircuitBreaker
    let connectTimeout: Duration
    let logger: Logger
    private let cached = NIOLockedValueBox<Report?>(nil)

    init(transport: any TritonTransport, models: [String], cacheSeconds: Double, pollInterval: Duration, connectTimeout: Duration,
         breaker: CircuitBreaker, logger: Logger) {
        self.transport = transport
        self.models = models
        self.cacheSeconds = cacheSeconds
        self.pollInterval = pollInterval
        self.connectTimeout = connectTimeout
        self.breaker = breaker
        self.logger = logger
    }

    private let inFlight = NIOLockedValueBox<Task<Report, Never>?>(nil)

    /// The cached report when fresh, else a new check. Concurrent callers share
    /// one check, so `/readyz` (which needs no token) cannot be used to flood Triton.
    public func current(now: Date = Date()) async -> Report {
        if let report = cached.withLockedValue({ $0 }), now.timeIntervalSince(report.checkedAt) < cacheSeconds {
            return report
        }
        return await check()
    }

    /// Runs a check, or joins the one already running.
    @discardableResult
    func check() async -> Report {
        let task = inFlight.withLockedValue { running -> Task<Report, Never> in
            if let running { return running }
            let task = Task { await self.performCheck() }
            running = task
            return task
        }
        let report = await task.value
        inFlight.withLockedValue { running in
            if running == task { running = nil }
        }
        return report
    }

    private func performCheck() async -> Report {
        var serverReady = false
        var reachable = false
        var modelStates: [String: Bool] = [:]
        do {
            let response = try await transport.execute(RawHTTPRequest(method: "GET", path: "/v2/health/ready", timeout: connectTimeout))
            reachable = true
            serverReady = response.status == 200
            for model in models {
                let r = try await transport.execute(RawHTTPRequest(method: "GET", path: "/v2/models/\(model)/ready", timeout: connectTimeout))
                modelStates[model] = r.status == 200
            }
            // Triton answered: let traffic through again without waiting for a probe.
            breaker.recordSuccess()
        } catch {
            for model in models where modelStates[model] == nil { modelStates[model] = false }
        }
        // Ready: Triton answers and every model this replica routes to is ready. Without
        // configured models, Triton's own readiness decides.
        let ready = reachable && (models.isEmpty ? serverReady : modelStates.values.allSatisfy { $0 })
        let report = Report(ready: ready, reachable: reachable, serverReady: serverReady, models: modelStates, checkedAt: Date())
        let previous = cached.withLockedValue { old -> Report? in
            defer { old = report }
            return old
        }
        if previous?.ready != report.ready {
            logger.notice("upstream readiness changed", metadata: ["upstream.ready": "\(report.ready)"])
        }
        return report
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.check()
                try? await Task.sleep(for: self.pollInterval)
            }
        }
    }
}
