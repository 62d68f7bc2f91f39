import Foundation
import TritonClient
import Hummingbird
import Logging

/// What the gateway needs from Triton's HTTP side: one raw exchange.
/// `InferenceServerClient` is the production conformance.
public protocol TritonTransport: Sendable {
    func execute(_ request: RawHTTPRequest) async throws -> RawHTTPResponse
}

extension InferenceServerClient: TritonTransport {}

/// Every call to Triton goes through here: circuit breaker, concurrency cap,
/// deadline, retry (only of requests that were never sent) and metrics.
public final class Upstream: Sendable {
    let transport: any TritonTransport
    let breaker: CircuitBreaker
    let limiter: ConcurrencyLimiter
    let retryBudget: RetryBudget
    let deadline: Duration
    let metrics: GatewayMetrics

    public init(transport: any TritonTransport, configuration: GatewayConfiguration, metrics: GatewayMetrics) {
        self.transport = transport
        self.breaker = CircuitBreaker(
            failureThreshold: configuration.upstream.circuitFailureThreshold, openSeconds: configuration.upstream.circuitOpenSeconds)
        self.limiter = ConcurrencyLimiter(limit: configuration.limits.maxConcurrentUpstream)
        self.retryBudget = RetryBudget(ratio: configuration.upstream.retryBudgetRatio, minPerSecond: configuration.upstream.retryMinPerSecond)
        self.deadline = .milliseconds(Int64(configuration.timeouts.upstreamDeadline * 1000))
        self.metrics = metrics
    }

    /// The answer and how long the call took.
    public struct Exchange: Sendable {
        public var response: RawHTTPResponse
        public var seconds: Double
    }

    /// Sends `request`; throws a `GatewayProblem` (502/503/504) when there is no answer.
    /// Any HTTP answer from Triton, error statuses included, is returned for the caller to map.
    public func call(_ request: RawHTTPRequest, kind: String, logger: Logger) async throws -> Exchange {
        let permit = breaker.permit()
        if case .rejected(let retryAfter) = permit {
            metrics.recordUpstreamError("circuit_open")
            throw GatewayProblem.serviceUnavailable("upstream-unavailable", "The inference server is unavailable; try again later.", retryAfter: retryAfter)
        }
        guard limiter.tryAcquire() else {
            if permit == .probe { breaker.releaseProbe() }
            metrics.recordUpstreamError("saturated")
            throw GatewayProblem.serviceUnavailable("upstream-saturated", "Too many requests are in progress; try again shortly.", retryAfter: 1)
        }
        defer { limiter.release() }
        retryBudget.deposit()

        let clock = ContinuousClock()
        let start = clock.now
        let end = start + deadline
        var attempt = 0
        while true {
            attempt += 1
            var tryRequest = request
            let remaining = end - clock.now
            tryRequest.timeout = remaining > .zero ? remaining : .milliseconds(1)
            do {
                let response = try await transport.execute(tryRequest)
                let seconds = (clock.now - start).seconds
                breaker.recordSuccess()
                metrics.recordUpstream(kind: kind, seconds: seconds)
                if response.status >= 500 { metrics.recordUpstreamError("status_5xx") }
                return Exchange(response: response, seconds: seconds)
            } catch let error as TritonClientError {
                let seconds = (clock.now - start).seconds
                switch error.code {
                case .connectionFailed:
                    breaker.recordFailure()
                    metrics.recordUpstreamError("connect")
                    let stillOpen = breaker.isOpen
                    if !stillOpen, end - clock.now > .milliseconds(100), retryBudget.tryWithdraw(), !Task.isCancelled {
                        metrics.recordRetry()
                        logger.debug("upstream connect failed, retrying", metadata: ["upstream.attempt": "\(attempt)"])
                        try? await Task.sleep(for: .milliseconds(25 * attempt))
                        continue
                    }
                    metrics.recordUpstream(kind: kind, seconds: seconds)
                    logger.warning("upstream connect failed", metadata: ["upstream.attempts": "\(attempt)"])
                    throw GatewayProblem(.badGateway, "upstream-connect-failed", "The inference server could not be reached.")
                case .timeout:
                    // A deadline says nothing about reachability (the model may just be
                    // slow): it neither closes the circuit nor counts toward opening it.
                    if permit == .probe { breaker.releaseProbe() }
                    metrics.recordUpstreamError("timeout")
                    metrics.recordUpstream(kind: kind, seconds: seconds)
                    logger.warning("upstream deadline exceeded", metadata: ["upstream.seconds": "\(seconds)"])
                    throw GatewayProblem(.gatewayTimeout, "upstream-timeout", "The inference server did not answer in time.")
                case .cancelled:
                    if permit == .probe { breaker.releaseProbe() }
                    metrics.recordUpstreamError("cancelled")
                    throw CancellationError()
                case .malformedResponse:
                    breaker.recordSuccess()
                    metrics.recordUpstreamError("malformed")
                    metrics.recordUpstream(kind: kind, seconds: seconds)
                    throw GatewayProblem(.badGateway, "upstream-malformed", "The inference server gave an answer that could not be read.")
                default:
                    breaker.recordFailure()
                    metrics.recordUpstreamError("transport")
                    metrics.recordUpstream(kind: kind, seconds: seconds)
                    logger.warning("upstream transport error", metadata: ["upstream.error": "\(error.code)"])
                    throw GatewayProblem(.badGateway, "upstream-error", "The connection to the inference server failed.")
                }
            } catch is CancellationError {
                if permit == .probe { breaker.releaseProbe() }
                throw CancellationError()
            }
        }
    }
}

extension Duration {
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
