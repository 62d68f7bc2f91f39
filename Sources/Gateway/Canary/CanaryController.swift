import Crypto
import Foundation
import Logging
import Metrics
import NIOPosix
import ServiceLifecycle

/// Latency histogram with log-spaced buckets (0.5 ms × 1.1ⁿ up to ~2 min) for p95.
public struct LatencyHistogram: Sendable, Equatable {
    static let bounds: [Double] = {
        var bounds: [Double] = []
        var value = 0.0005
        while value < 120 {
            bounds.append(value)
            value *= 1.1
        }
        return bounds
    }()

    public private(set) var counts: [Int] = Array(repeating: 0, count: LatencyHistogram.bounds.count + 1)
    public private(set) var total = 0

    public init() {}

    public mutating func record(_ seconds: Double) {
        let value = seconds.isFinite ? max(0, seconds) : 120
        var low = 0
        var high = Self.bounds.count
        while low < high {
            let mid = (low + high) / 2
            if Self.bounds[mid] < value { low = mid + 1 } else { high = mid }
        }
        counts[low] += 1
        total += 1
    }

    /// Adds another histogram's counts (slots of a window into the whole window).
    public mutating func merge(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] += other.counts[index] }
        total += other.total
    }

    /// Upper bound of the bucket holding the `q` quantile; `nil` when empty.
    public func quantile(_ q: Double) -> Double? {
        guard total > 0 else { return nil }
        let rank = max(1, Int((q * Double(total)).rounded(.up)))
        var seen = 0
        for (index, count) in counts.enumerated() {
            seen += count
            if seen >= rank { return index < Self.bounds.count ? Self.bounds[index] : 120 }
        }
        return Self.bounds.last
    }
}

/// Requests, server errors and latencies of one variant in one window.
public struct CanaryWindowStats: Sendable, Equatable {
    public var requests = 0
    public var serverErrors = 0
    public var latency = LatencyHistogram()

    public init() {}

    public mutating func record(_ outcome: UpstreamOutcome) {
        requests += 1
        if outcome.isServerError { serverErrors += 1 }
        latency.record(outcome.latencySeconds)
    }

    public var errorRate: Double { requests > 0 ? Double(serverErrors) / Double(requests) : 0 }
    public var p95: Double? { latency.quantile(0.95) }

    var summary: CanaryWindowEvidence.Side {
        .init(requests: requests, serverErrors: serverErrors, errorRate: errorRate, p95Seconds: p95)
    }
}

/// The evidence behind one window's verdict.
public struct CanaryWindowEvidence: Sendable, Codable, Equatable {
    public struct Side: Sendable, Codable, Equatable {
        public var requests: Int
        public var serverErrors: Int
        public var errorRate: Double
        public var p95Seconds: Double?
    }

    /// `pass`, `fail` or `insufficient` (fewer candidate requests than the minimum).
    public var verdict: String
    /// Failed checks: `error_rate`, `p95_latency`.
    public var reasons: [String]
    public var windowStart: Date
    public var windowEnd: Date
    public var candidate: Side
    public var baseline: Side
    /// Candidate p95 / baseline p95, when both are known.
    public var p95Ratio: Double?

    var auditValue: AuditValue {
        func side(_ s: Side) -> AuditValue {
            .object([
                "requests": .int(s.requests), "server_errors": .int(s.serverErrors), "error_rate": .double(s.errorRate),
                "p95_seconds": s.p95Seconds.map(AuditValue.double) ?? .null,
            ])
        }
        return .object([
            "verdict": .string(verdict), "reasons": .array(reasons.map(AuditValue.string)),
            "window_start": .string(ISO8601DateFormatter().string(from: windowStart)),
            "window_end": .string(ISO8601DateFormatter().string(from: windowEnd)),
            "candidate": side(candidate), "baseline": side(baseline),
            "p95_ratio": p95Ratio.map(AuditValue.double) ?? .null,
        ])
    }
}

/// Judges one window. A window is judged only when the candidate has at least
/// `minRequests`; it fails when the candidate's server-error rate is above the
/// maximum, or (when the baseline has at least `minRequests` too) when the
/// candidate's p95 is above `maxP95LatencyRatio` × the baseline's p95.
public func judgeCanaryWindow(
    candidate: CanaryWindowStats, baseline: CanaryWindowStats, configuration: CanaryConfiguration,
    start: Date, end: Date
) -> CanaryWindowEvidence {
    var evidence = CanaryWindowEvidence(
        verdict: "pass", reasons: [], windowStart: start, windowEnd: end,
        candidate: candidate.summary, baseline: baseline.summary, p95Ratio: nil
    )
    if let c = candidate.p95, let b = baseline.p95, b > 0 { evidence.p95Ratio = c / b }
    guard candidate.requests >= configuration.minRequests else {
        evidence.verdict = "insufficient"
        return evidence
    }
    if candidate.errorRate > configuration.maxErrorRate {
        evidence.reasons.append("error_rate")
    }
    if let limit = configuration.maxP95LatencyRatio, baseline.requests >= configuration.minRequests,
       let ratio = evidence.p95Ratio, ratio > limit {
        evidence.reasons.append("p95_latency")
    }
    if !evidence.reasons.isEmpty { evidence.verdict = "fail" }
    return evidence
}

/// Where a route's canary stands.
public enum CanaryPhase: String, Sendable, Codable {
    /// Candidate at its file weight, being watched.
    case observing
    /// Candidate on a promotion step below its file weight.
    case promoting
    /// All steps done: candidate at its file weight, still watched.
    case promoted
    /// Candidate weight forced to 0 until the operator changes the route.
    case rolledBack = "rolled_back"
}

/// Admin view of one route's canary.
public struct CanaryStatus: Sendable, Codable, Equatable {
    public var candidate: String
    public var baseline: String
    public var phase: CanaryPhase
    public var candidateFileWeight: Double
    public var candidateWeightInForce: Double
    public var promotionSteps: [Double]?
    public var stepIndex: Int?
    public var failedWindows: Int
    public var failureLimit: Int
    public var passedWindows: Int
    public var windowSeconds: Double
    public var currentWindowStart: Date
    public var currentWindow: CanaryWindowEvidence.Side
    public var currentBaseline: CanaryWindowEvidence.Side
    /// The last judged windows, newest last.
    public var recentWindows: [CanaryWindowEvidence]
    public var decidedAt: Date?
    public var decidedBy: String?
}

/// On-disk canary decisions, shared by replicas: per route, the decision and the
/// route digest it belongs to. An entry whose digest differs from the route in
/// force is stale (the operator changed the route) and is ignored.
public struct CanaryStateFile: Sendable, Codable, Equatable {
    public struct Entry: Sendable, Codable, Equatable {
        public var routeDigest: String
        public var revision: String
        public var phase: CanaryPhase
        public var stepIndex: Int?
        public var candidateWeight: Double
        public var decidedAt: Date
        public var decidedBy: String
        public var reasons: [String]
        public var evidence: [CanaryWindowEvidence]
    }

    public var version = 1
    public var routes: [String: Entry] = [:]

    public init() {}

    /// Reads the file through `storage`; `nil` when it is missing or not a state file.
    /// Returns the content hash beside the decisions.
    static func read(_ url: URL, from storage: CanaryStateStorage) -> (CanaryStateFile, String)? {
        guard let data = storage.read(url) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let file = try? decoder.decode(CanaryStateFile.self, from: data) else { return nil }
        return (file, HexEncoding.lowercase(SHA256.hash(data: data)))
    }

    /// Replaces the file through `storage`. Returns the content hash written.
    func write(to url: URL, through storage: CanaryStateStorage) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(self)
        try storage.replace(url, data)
        return HexEncoding.lowercase(SHA256.hash(data: data))
    }
}

/// How the canary state file is read and replaced. Both calls block (the file is often
/// on a volume shared by replicas over the network), so the controller makes them on
/// NIO's pool for blocking work. Tests substitute a volume that stalls.
public struct CanaryStateStorage: Sendable {
    public typealias Exclusive = @Sendable (URL, () throws -> String) throws -> String
    public var read: @Sendable (URL) -> Data?
    public var replace: @Sendable (URL, Data) throws -> Void
    /// Runs a read, merge and replace of the file while holding a lock every replica takes
    /// for the same file, so two replicas deciding at once cannot both write over the same
    /// old file and drop the other's decision.
    public var exclusive: Exclusive

    public init(read: @escaping @Sendable (URL) -> Data?, replace: @escaping @Sendable (URL, Data) throws -> Void,
                exclusive: @escaping Exclusive = CanaryStateStorage.fileLock) {
        self.read = read
        self.replace = replace
        self.exclusive = exclusive
    }

    /// An exclusive `flock(2)` on `<state file>.lock` beside the file, on the volume the
    /// replicas share (containers on one host share the kernel's locks; on NFS the Linux
    /// client turns `flock` into NFS byte-range locks). The lock goes when its holder
    /// exits, so a replica killed mid-write does not leave the others waiting; a holder
    /// that hangs is waited for at most ``lockWaitSeconds`` (the write then fails and is
    /// logged, as a failed write is). A volume without locks (`ENOLCK`, `EOPNOTSUPP`: NFS
    /// mounted `nolock`, some CSI drivers) gets the write without the lock, as before locks
    /// existed, rather than no write at all.
    public static let fileLock: Exclusive = { url, body in
        let fd = open(url.path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o660)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let deadline = Date().addingTimeInterval(lockWaitSeconds)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            switch errno {
            case EINTR:
                continue
            case EWOULDBLOCK where Date() < deadline:
                usleep(20_000)
            case ENOLCK, EOPNOTSUPP, ENOSYS:
                return try body()
            default:
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    /// How long ``fileLock`` waits for another replica's lock: far longer than a read and an
    /// atomic replace take, even on a slow network volume.
    public static let lockWaitSeconds: Double = 10

    /// The local file system: replaced atomically (a temporary file in the same directory,
    /// fsync, rename over the target, fsync the directory), so readers see a whole file.
    public static let fileSystem = CanaryStateStorage(
        read: { try? Data(contentsOf: $0) }, replace: { try DurableFiles.replace($0, with: $1) })
}

/// Compares each route's candidate with its baseline over windows, rolls a failing
/// candidate back to weight 0, steps a healthy one through its promotion weights,
/// and keeps those decisions in a state file every replica reads.
///
/// Run it as a `Service`: it ticks (judges due windows, re-reads the state file)
/// every `tickInterval`. Tests call `tick()` with an injected clock instead.
public final class CanaryController: Service, Sendable {
    public struct Settings: Sendable {
        /// Shared decision file; `nil` keeps decisions in memory only.
        public var stateFile: URL?
        public var instanceID: String
        public var tickInterval: Duration
        public var clock: TrafficClock
        public var storage: CanaryStateStorage

        public init(
            stateFile: URL?, instanceID: String, tickInterval: Duration = .seconds(1),
            clock: @escaping TrafficClock = { Date() }, storage: CanaryStateStorage = .fileSystem
        ) {
            self.stateFile = stateFile
            self.instanceID = instanceID
            self.tickInterval = tickInterval
            self.clock = clock
            self.storage = storage
        }
    }

    struct RouteState {
        var digest: String
        var revision: String
        var configuration: CanaryConfiguration
        var candidateFileWeight: Double
        var phase: CanaryPhase
        var stepIndex: Int?
        var failures = 0
        var passes = 0
        var windowStart: Date
        var candidate = CanaryWindowStats()
        var baseline = CanaryWindowStats()
        var recent: [CanaryWindowEvidence] = []
        var decidedAt: Date?
        var decidedBy: String?
        var reasons: [String] = []

        var candidateWeight: Double {
            switch phase {
            case .rolledBack: return 0
            case .observing, .promoted: return candidateFileWeight
            case .promoting:
                guard let steps = configuration.promotionSteps, let stepIndex, stepIndex < steps.count else {
                    return candidateFileWeight
                }
                return min(steps[stepIndex], candidateFileWeight)
            }
        }
    }

    struct State {
        var routes: [String: RouteState] = [:]
        var fileHash: String?
    }

    /// An admin event or log line to emit outside the lock.
    struct Announcement {
        var kind: String
        var route: String
        var details: [String: AuditValue]
    }

    private let store: TrafficConfigStore
    private let settings: Settings
    private let logger: Logger
    private let adminEvents: (any AdminEventRecorder)?
    private let state = Locked(State())
    private let rollbacks = Counter(label: "canary_rollbacks_total")
    private let promotions = Counter(label: "canary_promotions_total")

    public init(store: TrafficConfigStore, settings: Settings, logger: Logger, adminEvents: (any AdminEventRecorder)?) {
        self.store = store
        self.settings = settings
        self.logger = logger
        self.adminEvents = adminEvents
    }

    /// Takes a newly accepted configuration: keeps the state of routes whose
    /// settings are unchanged, starts fresh for changed ones (an operator's edit
    /// always wins), restores decisions from the state file for the route digests
    /// in force, and installs the configuration with the resulting weights.
    public func adopt(_ configuration: TrafficConfiguration) {
        let now = settings.clock()
        // Startup and operator reloads only; every tick reads off the cooperative pool.
        let persisted = settings.stateFile.flatMap { CanaryStateFile.read($0, from: settings.storage) }
        let overrides = state.withLock { state -> [String: CandidateOverride] in
            var routes: [String: RouteState] = [:]
            for (name, route) in configuration.routes {
                guard let canary = route.canary, let candidate = route.variant(named: canary.candidate) else { continue }
                let digest = route.digest
                if var existing = state.routes[name], existing.digest == digest {
                    existing.revision = configuration.shortRevision
                    routes[name] = existing
                    continue
                }
                var fresh = RouteState(
                    digest: digest, revision: configuration.shortRevision, configuration: canary,
                    candidateFileWeight: candidate.weight, phase: .observing, windowStart: now
                )
                if let steps = canary.promotionSteps, let first = steps.first, first < candidate.weight {
                    fresh.phase = .promoting
                    fresh.stepIndex = 0
                } else if canary.promotionSteps != nil {
                    fresh.phase = .promoted
                }
                if let entry = persisted?.0.routes[name], entry.routeDigest == digest {
                    Self.merge(entry, into: &fresh)
                }
                routes[name] = fresh
            }
            state.routes = routes
            state.fileHash = persisted?.1
            return Self.overrides(routes)
        }
        store.install(configuration, overrides: overrides, now: now)
        Self.publish(state.current.routes)
    }

    /// `canary_rolled_back{route}` (1 while rolled back) and `canary_candidate_weight{route}`.
    private static func publish(_ routes: [String: RouteState]) {
        for (name, route) in routes {
            Gauge(label: "canary_rolled_back", dimensions: [("route", name)]).record(route.phase == .rolledBack ? 1 : 0)
            Gauge(label: "canary_candidate_weight", dimensions: [("route", name)]).record(route.candidateWeight)
        }
    }

    private static func merge(_ entry: CanaryStateFile.Entry, into route: inout RouteState) {
        if entry.phase == .rolledBack {
            route.phase = .rolledBack
        } else if entry.phase == .promoted, route.phase == .promoting {
            route.phase = .promoted
        } else if route.phase == .promoting, let index = entry.stepIndex, index > (route.stepIndex ?? 0) {
            route.stepIndex = index
        }
        route.decidedAt = entry.decidedAt
        route.decidedBy = entry.decidedBy
        route.reasons = entry.reasons
        if route.recent.isEmpty { route.recent = entry.evidence }
    }

    private static func overrides(_ routes: [String: RouteState]) -> [String: CandidateOverride] {
        var result: [String: CandidateOverride] = [:]
        for (name, route) in routes where route.candidateWeight != route.candidateFileWeight {
            result[name] = CandidateOverride(routeDigest: route.digest, candidateWeight: route.candidateWeight)
        }
        return result
    }

    /// Counts an upstream outcome towards the current window of its route.
    public func observe(_ decision: RouteDecision, outcome: UpstreamOutcome) {
        state.withLock { state in
            guard var route = state.routes[decision.route], route.phase != .rolledBack else { return }
            if decision.variant == route.configuration.candidate {
                route.candidate.record(outcome)
            } else if decision.variant == route.configuration.baseline {
                route.baseline.record(outcome)
            } else {
                return
            }
            state.routes[decision.route] = route
        }
    }

    /// Judges windows that have ended, applies rollbacks and promotions, and picks
    /// up decisions other replicas wrote to the state file.
    public func tick() async {
        let now = settings.clock()
        var announcements: [Announcement] = []
        var changed = false
        let fromFile = await readStateFile()
        state.withLock { state in
            // Decisions from other replicas first.
            if let fromFile, fromFile.1 != state.fileHash {
                state.fileHash = fromFile.1
                for (name, entry) in fromFile.0.routes {
                    guard var route = state.routes[name], route.digest == entry.routeDigest else { continue }
                    let before = (route.phase, route.stepIndex)
                    if entry.phase == .rolledBack, route.phase != .rolledBack {
                        Self.merge(entry, into: &route)
                        announcements.append(Announcement(kind: "canary_rollback_adopted", route: name, details: [
                            "route": .string(name), "decided_by": .string(entry.decidedBy),
                            "reasons": .array(entry.reasons.map(AuditValue.string)),
                        ]))
                    } else if route.phase != .rolledBack {
                        Self.merge(entry, into: &route)
                    }
                    if before != (route.phase, route.stepIndex) { changed = true }
                    state.routes[name] = route
                }
            }
            for name in state.routes.keys.sorted() {
                guard var route = state.routes[name], route.phase != .rolledBack else { continue }
                let end = route.windowStart.addingTimeInterval(route.configuration.windowSeconds)
                guard now >= end else { continue }
                let evidence = judgeCanaryWindow(
                    candidate: route.candidate, baseline: route.baseline, configuration: route.configuration,
                    start: route.windowStart, end: now
                )
                route.recent.append(evidence)
                if route.recent.count > 10 { route.recent.removeFirst(route.recent.count - 10) }
                route.windowStart = now
                route.candidate = CanaryWindowStats()
                route.baseline = CanaryWindowStats()
                switch evidence.verdict {
                case "fail":
                    route.failures += 1
                    if route.failures >= route.configuration.failureLimit {
                        route.phase = .rolledBack
                        route.decidedAt = now
                        route.decidedBy = settings.instanceID
                        route.reasons = evidence.reasons
                        changed = true
                        announcements.append(Announcement(kind: "canary_rollback", route: name, details: [
                            "route": .string(name), "candidate": .string(route.configuration.candidate),
                            "baseline": .string(route.configuration.baseline),
                            "failed_windows": .int(route.failures), "failure_limit": .int(route.configuration.failureLimit),
                            "reasons": .array(evidence.reasons.map(AuditValue.string)),
                            "revision": .string(route.revision), "route_digest": .string(String(route.digest.prefix(12))),
                            "evidence": .array(route.recent.map(\.auditValue)),
                        ]))
                    }
                case "pass":
                    route.passes += 1
                    if route.phase == .promoting, let steps = route.configuration.promotionSteps, let index = route.stepIndex {
                        let next = index + 1
                        if next >= steps.count || steps[next] >= route.candidateFileWeight {
                            route.phase = .promoted
                            route.stepIndex = min(next, steps.count - 1)
                        } else {
                            route.stepIndex = next
                        }
                        route.decidedAt = now
                        route.decidedBy = settings.instanceID
                        changed = true
                        announcements.append(Announcement(kind: "canary_promotion", route: name, details: [
                            "route": .string(name), "candidate": .string(route.configuration.candidate),
                            "candidate_weight": .double(route.candidateWeight),
                            "file_weight": .double(route.candidateFileWeight),
                            "step_index": .int(route.stepIndex ?? 0), "phase": .string(route.phase.rawValue),
                            "revision": .string(route.revision), "evidence": evidence.auditValue,
                        ]))
                    }
                default:
                    break
                }
                state.routes[name] = route
            }
        }
        guard changed || !announcements.isEmpty else { return }
        let snapshot = state.current
        store.setOverrides(Self.overrides(snapshot.routes))
        Self.publish(snapshot.routes)
        await persist(snapshot.routes)
        for announcement in announcements {
            let route = snapshot.routes[announcement.route]
            switch announcement.kind {
            case "canary_rollback":
                rollbacks.increment()
                logger.error("canary rolled back", metadata: [
                    "route": "\(announcement.route)", "candidate": "\(route?.configuration.candidate ?? "")",
                    "reasons": "\(route?.reasons.joined(separator: ",") ?? "")",
                ])
            case "canary_promotion":
                promotions.increment()
                logger.notice("canary promoted", metadata: [
                    "route": "\(announcement.route)", "candidate.weight": "\(route?.candidateWeight ?? 0)",
                ])
            default:
                logger.warning("canary rollback adopted from state file", metadata: ["route": "\(announcement.route)"])
            }
            do {
                try await adminEvents?.recordAdmin(kind: announcement.kind, details: announcement.details)
            } catch {
                logger.error("canary admin event not audited", metadata: ["route": "\(announcement.route)", "error": "\(error)"])
            }
        }
    }

    /// Reads the shared state file on NIO's pool for blocking work, never on the
    /// cooperative pool: that pool has one thread per core and serves every request,
    /// and the file may sit on a network volume shared by replicas (a read that waits
    /// on the server would stall every request of this replica meanwhile).
    private func readStateFile() async -> (CanaryStateFile, String)? {
        guard let url = settings.stateFile else { return nil }
        let storage = settings.storage
        return try? await NIOThreadPool.singleton.runIfActive { CanaryStateFile.read(url, from: storage) }
    }

    /// Merges this replica's decisions into the state file under the storage's lock
    /// (rollbacks are never undone by a merge; other replicas' entries for other digests are replaced
    /// only by routes this replica has decided on). The read, the write and its two
    /// fsyncs run on NIO's pool for blocking work (see ``readStateFile()``).
    private func persist(_ routes: [String: RouteState]) async {
        guard let url = settings.stateFile else { return }
        let instanceID = settings.instanceID
        let storage = settings.storage
        do {
            let hash = try await NIOThreadPool.singleton.runIfActive {
                try storage.exclusive(url) {
                    let current = CanaryStateFile.read(url, from: storage)?.0 ?? CanaryStateFile()
                    return try Self.merged(routes, into: current, instanceID: instanceID).write(to: url, through: storage)
                }
            }
            state.withLock { $0.fileHash = hash }
        } catch {
            logger.error("canary state file not written", metadata: ["path": "\(url.path)", "error": "\(error)"])
        }
    }

    private static func merged(_ routes: [String: RouteState], into file: CanaryStateFile, instanceID: String) -> CanaryStateFile {
        var file = file
        for (name, route) in routes where route.decidedAt != nil {
            if let existing = file.routes[name], existing.routeDigest == route.digest, existing.phase == .rolledBack {
                continue
            }
            file.routes[name] = CanaryStateFile.Entry(
                routeDigest: route.digest, revision: route.revision, phase: route.phase, stepIndex: route.stepIndex,
                candidateWeight: route.candidateWeight, decidedAt: route.decidedAt ?? Date(),
                decidedBy: route.decidedBy ?? instanceID, reasons: route.reasons, evidence: route.recent
            )
        }
        return file
    }

    public func status(route name: String) -> CanaryStatus? {
        guard let route = state.current.routes[name] else { return nil }
        return CanaryStatus(
            candidate: route.configuration.candidate, baseline: route.configuration.baseline, phase: route.phase,
            candidateFileWeight: route.candidateFileWeight, candidateWeightInForce: route.candidateWeight,
            promotionSteps: route.configuration.promotionSteps, stepIndex: route.stepIndex,
            failedWindows: route.failures, failureLimit: route.configuration.failureLimit, passedWindows: route.passes,
            windowSeconds: route.configuration.windowSeconds, currentWindowStart: route.windowStart,
            currentWindow: route.candidate.summary, currentBaseline: route.baseline.summary,
            recentWindows: route.recent, decidedAt: route.decidedAt, decidedBy: route.decidedBy
        )
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    try await Task.sleep(for: self.settings.tickInterval)
                    await self.tick()
                }
            }
        } catch is CancellationError {
            return
        }
    }
}
