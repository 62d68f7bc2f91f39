import CoreMetrics
import Foundation
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// The gateway's metrics, created once per application on its own Prometheus
/// registry (so several gateways in one test process do not mix). Labels are
/// bounded: route templates, status classes, fixed reason and kind names.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let inFlight: CoreMetrics.Meter
    let rateLimited: CoreMetrics.Counter
    private let counters = NIOLockedValueBox([[String]: CoreMetrics.Counter]())
    private let timers = NIOLockedValueBox([[String]: CoreMetrics.Timer]())

    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let buckets: [Duration] = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
            .seconds(5), .seconds(10), .seconds(30),
        ]
        factory.defaultDurationHistogramBuckets = buckets
        self.registry = registry
        self.factory = factory
        self.inFlight = CoreMetrics.Meter(label: "gateway_requests_in_flight", dimensions: [], factory: factory)
        self.rateLimited = CoreMetrics.Counter(label: "gateway_rate_limited_total", dimensions: [], factory: factory)
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        Self.cached(counters, label, dimensions) { CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory) }
    }

    private func timer(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Timer {
        Self.cached(timers, label, dimensions) { CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory) }
    }

    /// The metric for (label, dimensions) from `cache`, made once.
    private static func cached<Metric>(
        _ cache: NIOLockedValueBox<[[String]: Metric]>, _ label: String, _ dimensions: [(String, String)], make: () -> Metric
    ) -> Metric {
        // Label, then names and values in order: no string is built per call (this runs several times a request).
        var key = [label]
        key.reserveCapacity(1 + 2 * dimensions.count)
        for (name, value) in dimensions {
            key.append(name)
            key.append(value)
        }
        return cache.withLockedValue { cache in
            if let metric = cache[key] { return metric }
            let metric = make()
            cache[key] = metric
            return metric
        }
    }

    /// One finished request. `route` is the endpoint template; `routing` the traffic route
    /// and variant that served it (`none` for both when the request was not routed), so
    /// error ratios and latency can be compared per variant (a canary against its baseline).
    func recordRequest(route: String, status: Int, decision: String?, routing: RouteDecision?, seconds: Double) {
        let statusClass = "\(status / 100)xx"
        let trafficRoute = routing?.route ?? "none", variant = routing?.variant ?? "none"
        counter("gateway_requests_total", [
            ("route", route), ("status_class", statusClass), ("decision", decision ?? "none"),
            ("traffic_route", trafficRoute), ("variant", variant),
        ]).increment()
        timer("gateway_request_duration_seconds", [("route", route), ("traffic_route", trafficRoute), ("variant", variant)])
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    /// One upstream call (all its tries), by kind (`moderate`, `kserve`, `admin`, `probe`).
    func recordUpstream(kind: String, seconds: Double) {
        counter("gateway_upstream_calls_total", [("kind", kind)]).increment()
        timer("gateway_upstream_duration_seconds", [("kind", kind)]).recordNanoseconds(Int64(seconds * 1e9))
    }

    /// An upstream failure by kind: `connect`, `timeout`, `transport`, `status_5xx`, `malformed`, `circuit_open`, `saturated`.
    func recordUpstreamError(_ kind: String) {
        counter("gateway_upstream_errors_total", [("kind", kind)]).increment()
    }

    func recordAuthFailure(reason: String) {
        counter("gateway_auth_failures_total", [("reason", reason)]).increment()
    }

    func recordRetry() {
        counter("gateway_upstream_retries_total", []).increment()
    }

    func recordAuditFailure() {
        counter("gateway_audit_failures_total", []).increment()
    }

    /// Prometheus text exposition.
    public func render() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}
