import Crypto
import Foundation
import Logging
import Metrics

/// Number of assignment buckets per route.
public let trafficBucketCount = 10_000

/// Stable bucket of a sticky key: SHA-256 of `route`, a NUL byte and the key, first
/// 8 bytes big-endian, modulo 10 000. The same on every replica and across restarts
/// (unlike Swift's per-process seeded `Hasher`), and independent of the file revision,
/// so a reload keeps each caller in its bucket.
public func trafficBucket(route: String, key: String) -> Int {
    var hasher = SHA256()
    hasher.update(data: Array(route.utf8))
    hasher.update(data: [0])
    hasher.update(data: Array(key.utf8))
    var value: UInt64 = 0
    for byte in hasher.finalize().prefix(8) {
        value = (value << 8) | UInt64(byte)
    }
    return Int(value % UInt64(trafficBucketCount))
}

/// The canary controller's change to a route's weights: the candidate's weight in
/// force, valid only for the route settings it was decided on.
public struct CandidateOverride: Sendable, Equatable, Codable {
    public var routeDigest: String
    public var candidateWeight: Double

    public init(routeDigest: String, candidateWeight: Double) {
        self.routeDigest = routeDigest
        self.candidateWeight = candidateWeight
    }
}

/// One route's bucket ranges, computed once per snapshot.
public struct RouteTable: Sendable {
    public let route: RouteConfiguration
    public let digest: String
    /// Half-open ranges `[start, end)` of buckets and the variant index owning each,
    /// in bucket order; together they cover 0..<10 000.
    public let segments: [(start: Int, end: Int, variant: Int)]
    /// Weight in force per variant (file weight, unless the canary changed it).
    public let weightsInForce: [Double]

    /// Builds the ranges: variants own cumulative ranges in file order, so changing
    /// one weight moves only the buckets at the boundaries it shifts. A candidate
    /// override splits the candidate's own range: it keeps the low part sized to its
    /// weight in force and the baseline takes the rest, so a rollback or a promotion
    /// step moves only candidate buckets, and only to or from the baseline.
    public init(route: RouteConfiguration, override: CandidateOverride?) {
        self.route = route
        self.digest = route.digest
        let total = route.variants.reduce(0) { $0 + $1.weight }
        var bounds: [Int] = [0]
        var cumulative = 0.0
        for variant in route.variants {
            cumulative += variant.weight
            let bound = total > 0 ? Int((cumulative / total * Double(trafficBucketCount)).rounded()) : 0
            bounds.append(min(bound, trafficBucketCount))
        }
        bounds[bounds.count - 1] = trafficBucketCount
        var segments: [(start: Int, end: Int, variant: Int)] = []
        var weights = route.variants.map(\.weight)
        let canary = route.canary
        let candidateIndex = canary.flatMap { c in route.variants.firstIndex { $0.name == c.candidate } }
        let baselineIndex = canary.flatMap { c in route.variants.firstIndex { $0.name == c.baseline } }
        for index in route.variants.indices {
            let start = bounds[index]
            let end = bounds[index + 1]
            guard end > start else { continue }
            if index == candidateIndex, let baselineIndex, let override, override.routeDigest == digest,
               override.candidateWeight < route.variants[index].weight {
                let kept = total > 0
                    ? min(end - start, Int((override.candidateWeight / total * Double(trafficBucketCount)).rounded()))
                    : 0
                if kept > 0 { segments.append((start, start + kept, index)) }
                if start + kept < end { segments.append((start + kept, end, baselineIndex)) }
                let moved = route.variants[index].weight - override.candidateWeight
                weights[index] = override.candidateWeight
                weights[baselineIndex] += moved
            } else {
                segments.append((start, end, index))
            }
        }
        self.segments = segments
        self.weightsInForce = weights
    }

    /// Variant index owning `bucket`.
    public func variantIndex(forBucket bucket: Int) -> Int {
        var low = 0
        var high = segments.count - 1
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].end <= bucket { low = mid + 1 } else { high = mid }
        }
        return segments[low].variant
    }

    /// Buckets owned per variant index (for status and tests).
    public var bucketCounts: [Int] {
        var counts = Array(repeating: 0, count: route.variants.count)
        for segment in segments { counts[segment.variant] += segment.end - segment.start }
        return counts
    }
}

/// An immutable view of the traffic configuration in force; a request reads it once.
public struct TrafficSnapshot: Sendable {
    public let configuration: TrafficConfiguration
    public let tables: [String: RouteTable]
    public let overrides: [String: CandidateOverride]
    public let installedAt: Date

    public init(configuration: TrafficConfiguration, overrides: [String: CandidateOverride], installedAt: Date) {
        self.configuration = configuration
        self.overrides = overrides
        self.installedAt = installedAt
        var tables: [String: RouteTable] = [:]
        for (name, route) in configuration.routes {
            tables[name] = RouteTable(route: route, override: overrides[name])
        }
        self.tables = tables
    }
}

/// What the last reload attempt did; kept for the admin API.
public struct TrafficReloadReport: Sendable, Codable, Equatable {
    public var at: Date
    /// `accepted`, `unchanged` or `refused`.
    public var outcome: String
    public var revision: String?
    public var trigger: String
    public var problems: [TrafficConfigurationProblem]
}

/// Holds the snapshot in force and the reload history. Swapping the snapshot is
/// a pointer exchange under a lock; requests that already resolved keep their
/// `RouteDecision`, so they finish on the revision they started with.
public final class TrafficConfigStore: Sendable {
    private struct State {
        var snapshot: TrafficSnapshot
        var lastReload: TrafficReloadReport?
        var lastError: TrafficReloadReport?
        var reloadFailures: Int = 0
        var reloads: Int = 0
    }

    private let state: Locked<State>

    public init(configuration: TrafficConfiguration, overrides: [String: CandidateOverride] = [:], now: Date = Date()) {
        state = Locked(State(snapshot: TrafficSnapshot(configuration: configuration, overrides: overrides, installedAt: now)))
    }

    public var snapshot: TrafficSnapshot { state.current.snapshot }

    /// Installs a new configuration together with the canary overrides for it.
    public func install(_ configuration: TrafficConfiguration, overrides: [String: CandidateOverride], now: Date = Date()) {
        let snapshot = TrafficSnapshot(configuration: configuration, overrides: overrides, installedAt: now)
        state.withLock { $0.snapshot = snapshot }
        Self.publishWeights(snapshot)
    }

    /// `traffic_variant_weight{route,variant}`: the weight in force, for dashboards.
    private static func publishWeights(_ snapshot: TrafficSnapshot) {
        for (name, table) in snapshot.tables {
            for (index, variant) in table.route.variants.enumerated() {
                Gauge(label: "traffic_variant_weight", dimensions: [("route", name), ("variant", variant.name)])
                    .record(table.weightsInForce[index])
            }
        }
    }

    /// Replaces the canary overrides, keeping the configuration.
    public func setOverrides(_ overrides: [String: CandidateOverride]) {
        let changed = state.withLock { state -> TrafficSnapshot? in
            guard state.snapshot.overrides != overrides else { return nil }
            state.snapshot = TrafficSnapshot(
                configuration: state.snapshot.configuration, overrides: overrides, installedAt: state.snapshot.installedAt
            )
            return state.snapshot
        }
        if let changed { Self.publishWeights(changed) }
    }

    func noteReload(_ report: TrafficReloadReport) {
        state.withLock { state in
            state.lastReload = report
            if report.outcome == "refused" {
                state.lastError = report
                state.reloadFailures += 1
            } else if report.outcome == "accepted" {
                state.reloads += 1
            }
        }
    }

    var reloadHistory: (last: TrafficReloadReport?, lastError: TrafficReloadReport?, failures: Int, reloads: Int) {
        let current = state.current
        return (current.lastReload, current.lastError, current.reloadFailures, current.reloads)
    }
}

// MARK: - Router

/// Weighted, sticky variant assignment from the traffic file, with mirroring and
/// canary analysis. This is the gateway's `VariantResolver`.
public final class TrafficRouter: VariantResolver, Sendable {
    public let store: TrafficConfigStore
    public let canary: CanaryController
    private let mirrorCounts: Locked<[String: MirrorCounters]>
    private let random: @Sendable () -> Double

    struct MirrorCounters {
        var sent = 0
        var errors = 0
    }

    /// - Parameters:
    ///   - random: uniform draw in 0..<1 for unsticky buckets and mirror sampling;
    ///     injectable for tests.
    public init(store: TrafficConfigStore, canary: CanaryController, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.store = store
        self.canary = canary
        self.random = random
        self.mirrorCounts = Locked([:])
    }

    /// Builds the store and canary controller for a configuration, restoring
    /// canary decisions from the state file.
    public static func make(
        configuration: TrafficConfiguration, canarySettings: CanaryController.Settings, logger: Logger,
        adminEvents: (any AdminEventRecorder)? = nil
    ) -> TrafficRouter {
        let store = TrafficConfigStore(configuration: configuration)
        let canary = CanaryController(store: store, settings: canarySettings, logger: logger, adminEvents: adminEvents)
        canary.adopt(configuration)
        return TrafficRouter(store: store, canary: canary)
    }

    /// Installs an accepted configuration (after validation), recomputing canary
    /// overrides: kept for routes the operator did not change, cleared otherwise.
    public func apply(_ configuration: TrafficConfiguration) {
        canary.adopt(configuration)
    }

    public func resolve(route: String, stickyKey: String?, headers: [(String, String)]) -> RouteDecision? {
        let snapshot = store.snapshot
        guard let table = snapshot.tables[route] else { return nil }
        let key: String?
        switch table.route.stickiness {
        case .subject:
            key = stickyKey
        case .header(let name):
            key = headers.first { $0.0.lowercased() == name }?.1 ?? stickyKey
        case .none:
            key = nil
        }
        let bucket: Int
        if let key, !key.isEmpty {
            bucket = trafficBucket(route: route, key: key)
        } else {
            bucket = min(trafficBucketCount - 1, Int(random() * Double(trafficBucketCount)))
        }
        let variant = table.route.variants[table.variantIndex(forBucket: bucket)]
        return RouteDecision(
            route: route, variant: variant.name, model: variant.model, version: variant.version,
            revision: snapshot.configuration.shortRevision
        )
    }

    public func observe(_ decision: RouteDecision, outcome: UpstreamOutcome) {
        canary.observe(decision, outcome: outcome)
    }

    /// The copy target for a request already routed by `decision`, sampled by the
    /// route's mirror fraction; `nil` when there is no mirror, the draw says no, or
    /// the request already went to the mirror variant. The server sends the copy
    /// after the response, and reports its outcome with `observeMirror`.
    public func mirrorTarget(for decision: RouteDecision) -> RouteDecision? {
        let snapshot = store.snapshot
        guard let route = snapshot.configuration.routes[decision.route], let mirror = route.mirror,
              mirror.variant != decision.variant, mirror.fraction > 0,
              let variant = route.variant(named: mirror.variant) else { return nil }
        guard random() < mirror.fraction else { return nil }
        mirrorCounts.withLock { $0[decision.route, default: MirrorCounters()].sent += 1 }
        return RouteDecision(
            route: decision.route, variant: variant.name, model: variant.model, version: variant.version,
            revision: snapshot.configuration.shortRevision
        )
    }

    /// Records a mirrored call's outcome (status only; mirrors never feed canary analysis).
    public func observeMirror(_ decision: RouteDecision, outcome: UpstreamOutcome) {
        if outcome.isServerError {
            mirrorCounts.withLock { $0[decision.route, default: MirrorCounters()].errors += 1 }
        }
    }

    /// The admin view: per route, revision, weights in force, canary and mirror state,
    /// and the last reload outcome.
    public func status() -> TrafficStatus {
        let snapshot = store.snapshot
        let history = store.reloadHistory
        let mirrors = mirrorCounts.current
        var routes: [TrafficStatus.Route] = []
        for name in snapshot.configuration.routeNames {
            guard let table = snapshot.tables[name] else { continue }
            let counts = table.bucketCounts
            let variants = table.route.variants.enumerated().map { index, variant in
                TrafficStatus.Variant(
                    name: variant.name, model: variant.model, version: variant.version,
                    configuredWeight: variant.weight, weightInForce: table.weightsInForce[index],
                    bucketShare: Double(counts[index]) / Double(trafficBucketCount)
                )
            }
            let mirror = table.route.mirror.map { mirror in
                TrafficStatus.Mirror(
                    variant: mirror.variant, fraction: mirror.fraction,
                    sent: mirrors[name]?.sent ?? 0, errors: mirrors[name]?.errors ?? 0
                )
            }
            routes.append(TrafficStatus.Route(
                name: name, revision: snapshot.configuration.shortRevision, routeDigest: String(table.digest.prefix(12)),
                stickiness: table.route.stickiness.description, variants: variants, mirror: mirror,
                canary: canary.status(route: name)
            ))
        }
        return TrafficStatus(
            revision: snapshot.configuration.revision, installedAt: snapshot.installedAt, routes: routes,
            lastReload: history.last, lastReloadError: history.lastError,
            reloadFailures: history.failures, reloads: history.reloads
        )
    }
}

/// JSON body of the admin traffic endpoint.
public struct TrafficStatus: Sendable, Codable {
    public struct Variant: Sendable, Codable {
        public var name: String
        public var model: String
        public var version: String?
        public var configuredWeight: Double
        public var weightInForce: Double
        /// Share of the 10 000 buckets this variant owns now (0...1).
        public var bucketShare: Double
    }

    public struct Mirror: Sendable, Codable {
        public var variant: String
        public var fraction: Double
        public var sent: Int
        public var errors: Int
    }

    public struct Route: Sendable, Codable {
        public var name: String
        public var revision: String
        public var routeDigest: String
        public var stickiness: String
        public var variants: [Variant]
        public var mirror: Mirror?
        public var canary: CanaryStatus?
    }

    /// Full SHA-256 of the file in force.
    public var revision: String
    public var installedAt: Date
    public var routes: [Route]
    public var lastReload: TrafficReloadReport?
    public var lastReloadError: TrafficReloadReport?
    public var reloadFailures: Int
    public var reloads: Int
}
