import Foundation
import HTTPTypes
import Hummingbird

/// The gateway's own admin API (permission `admin`):
/// `GET /admin/traffic` (routes, revision, weights in force, canary and mirror
/// state, last reload), `POST /admin/traffic/reload` (reload the traffic file
/// now: 200 accepted or unchanged, 422 with the problems when refused) and
/// `GET /admin/audit` (audit writer statistics: records, fsyncs, records per
/// fsync, fsync latency, last sequence and hash, failure) and
/// `GET /admin/activity` (the last minute per variant: request rate, errors,
/// p50/p95 latency in 5-second slots; refusals by reason).
struct AdminHandler: Sendable {
    let core: GatewayCore

    func register(on router: Router<GatewayRequestContext>) {
        router.get("admin/traffic") { request, context in
            try self.start(request, context, template: "/admin/traffic")
            guard let traffic = core.traffic else { throw Self.notConfigured("Traffic routing is not configured (traffic.file).") }
            return try Self.json(traffic.router.status(), status: .ok)
        }
        router.post("admin/traffic/reload") { request, context in
            try self.start(request, context, template: "/admin/traffic/reload")
            guard let traffic = core.traffic else { throw Self.notConfigured("Traffic routing is not configured (traffic.file).") }
            let report = await traffic.watcher.reload(trigger: "admin")
            return try Self.json(report, status: report.problems.isEmpty ? .ok : .unprocessableContent)
        }
        router.get("admin/activity") { request, context in
            try self.start(request, context, template: "/admin/activity")
            return try Self.json(core.activity.report(), status: .ok)
        }
        router.get("admin/audit") { request, context in
            try self.start(request, context, template: "/admin/audit")
            guard let audit = core.auditLog else { throw Self.notConfigured("The audit log is not enabled (audit.enabled).") }
            return try Self.json(audit.statistics, status: .ok)
        }
    }

    private func start(_ request: Request, _ context: GatewayRequestContext, template: String) throws {
        context.record.update { $0.routeTemplate = template }
        try core.authorize(request, context: context, permission: .admin)
    }

    static func notConfigured(_ detail: String) -> GatewayProblem {
        GatewayProblem(.notFound, "not-configured", detail)
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let data = try encoder.encode(value)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
