import Foundation

/// The last minute of traffic as the admin API (and the console's operate view)
/// shows it: per traffic variant, requests, server errors and latency in 5-second
/// slots; and refusals by reason. Prometheus has the same counts as totals since
/// start; this answers "what is happening now" without a Prometheus server.
///
/// Recording is one lock and a few array updates per request (the slot ring is
/// fixed; a variant's entry is made once per slot).
public final class LiveActivity: Sendable {
    public static let slotSeconds = 5
    public static let slotCount = 12

    struct VariantKey: Hashable {
        var route: String
        var variant: String
    }

    struct VariantStats {
        var requests = 0
        var serverErrors = 0
        var latency = LatencyHistogram()

        mutating func record(status: Int, seconds: Double) {
            requests += 1
            if status >= 500 { serverErrors += 1 }
            latency.record(seconds)
        }
    }

    struct Slot {
        var index = Int.min
        var variants: [VariantKey: VariantStats] = [:]
        var refusals: [String: Int] = [:]
    }

    private let slots = Locked([Slot](repeating: Slot(), count: LiveActivity.slotCount))
    private let now: @Sendable () -> Date

    public init(now: @escaping @Sendable () -> Date = { Date() }) {
        self.now = now
    }

    /// The number of the 5-second period `date` falls in.
    private static func slotIndex(_ date: Date) -> Int {
        Int(date.timeIntervalSince1970.rounded(.down)) / slotSeconds
    }

    /// Runs `body` on the current period's slot, emptied first when it last held an older period.
    private func update(_ body: (inout Slot) -> Void) {
        let index = Self.slotIndex(now())
        slots.withLock { slots in
            let position = index % Self.slotCount
            if slots[position].index != index { slots[position] = Slot(index: index) }
            body(&slots[position])
        }
    }

    /// A finished request that a traffic variant served (or was chosen for).
    func recordRouted(route: String, variant: String, status: Int, seconds: Double) {
        let key = VariantKey(route: route, variant: variant)
        update { $0.variants[key, default: VariantStats()].record(status: status, seconds: seconds) }
    }

    /// A refused request, by the problem's slug (and the auth failure reason, when there is one).
    func recordRefusal(slug: String, authReason: String?) {
        let reason = authReason.map { $0 == slug ? slug : "\(slug):\($0)" } ?? slug
        update { $0.refusals[reason, default: 0] += 1 }
    }

    /// The last `slotCount` slots (the current one included), oldest first.
    public func report() -> LiveActivityReport {
        let current = Self.slotIndex(now())
        let first = current - Self.slotCount + 1
        let kept = slots.current.filter { $0.index >= first && $0.index <= current }
        var keys = Set<VariantKey>()
        var refusals: [String: Int] = [:]
        for slot in kept {
            keys.formUnion(slot.variants.keys)
            for (reason, count) in slot.refusals { refusals[reason, default: 0] += count }
        }
        // The current slot is still filling: the rate divides by the time covered so far.
        let covered = now().timeIntervalSince1970 - Double(first * Self.slotSeconds)
        let variants = keys.sorted { ($0.route, $0.variant) < ($1.route, $1.variant) }.map { key in
            var total = VariantStats()
            var series: [LiveActivityReport.Point] = []
            for index in first...current {
                let stats = kept.first { $0.index == index }?.variants[key] ?? VariantStats()
                total.requests += stats.requests
                total.serverErrors += stats.serverErrors
                total.latency.merge(stats.latency)
                series.append(.init(
                    start: Date(timeIntervalSince1970: Double(index * Self.slotSeconds)), requests: stats.requests,
                    serverErrors: stats.serverErrors, p95Ms: stats.latency.quantile(0.95).map(Self.milliseconds)))
            }
            return LiveActivityReport.Variant(
                route: key.route, variant: key.variant, requests: total.requests, serverErrors: total.serverErrors,
                ratePerSecond: covered > 0 ? Double(total.requests) / covered : 0,
                p50Ms: total.latency.quantile(0.5).map(Self.milliseconds), p95Ms: total.latency.quantile(0.95).map(Self.milliseconds),
                series: series)
        }
        return LiveActivityReport(
            windowSeconds: Self.slotSeconds * Self.slotCount, slotSeconds: Self.slotSeconds, at: now(), variants: variants,
            refusals: refusals.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { .init(reason: $0.key, count: $0.value) })
    }

    static func milliseconds(_ seconds: Double) -> Double { (seconds * 1_000_000).rounded() / 1000 }
}

/// JSON body of `GET /admin/activity`.
public struct LiveActivityReport: Sendable, Codable {
    public struct Point: Sendable, Codable {
        public var start: Date
        public var requests: Int
        public var serverErrors: Int
        public var p95Ms: Double?
    }

    public struct Variant: Sendable, Codable {
        public var route: String
        public var variant: String
        public var requests: Int
        public var serverErrors: Int
        public var ratePerSecond: Double
        public var p50Ms: Double?
        public var p95Ms: Double?
        /// One point per slot, oldest first.
        public var series: [Point]
    }

    public struct Refusal: Sendable, Codable {
        /// The problem slug, with the auth failure reason after a colon (`unauthorized:expired`).
        public var reason: String
        public var count: Int
    }

    public var windowSeconds: Int
    public var slotSeconds: Int
    public var at: Date
    public var variants: [Variant]
    /// Most frequent first.
    public var refusals: [Refusal]
}
