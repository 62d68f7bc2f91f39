import Foundation
import HTTPTypes
import Hummingbird

/// `/healthz`, `/readyz`, `/metrics` and `/openapi.yaml`.
struct OperationsHandlers: Sendable {
    let core: GatewayCore

    func register(on router: Router<GatewayRequestContext>) {
        router.get("healthz") { _, context in
            context.record.update { $0.routeTemplate = "/healthz" }
            return Self.json(.ok, ["status": "ok"])
        }
        router.get("readyz") { _, context in
            context.record.update { $0.routeTemplate = "/readyz" }
            let report = await core.readiness.current()
            let breakerOpen = core.upstream.breaker.isOpen
            let ready = report.ready && !breakerOpen
            let body: [String: Any] = [
                "status": ready ? "ready" : "not_ready",
                "triton": report.serverReady ? "ready" : report.reachable ? "not_ready" : "unavailable",
                "models": report.models.mapValues { $0 ? "ready" : "unavailable" },
                "circuit": breakerOpen ? "open" : "closed",
            ]
            guard ready else {
                var response = Self.json(.serviceUnavailable, body)
                response.headers[.retryAfter] = "2"
                return response
            }
            return Self.json(.ok, body)
        }
        if core.configuration.metrics.enabled {
            router.get("metrics") { request, context in
                context.record.update { $0.routeTemplate = "/metrics" }
                if core.configuration.metrics.requireAuth {
                    try core.authorize(request, context: context, permission: .metrics)
                }
                var headers = HTTPFields()
                headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: core.metrics.render() + ProcessMetrics.render())))
            }
        }
        router.get("openapi.yaml") { _, context in
            context.record.update { $0.routeTemplate = "/openapi.yaml" }
            var headers = HTTPFields()
            headers[.contentType] = "application/yaml"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: OpenAPIDocument.buffer))
        }
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
