import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers

/// The outermost middleware: gives every request its id and trace, applies the
/// header checks, turns every error into problem+json, records the audit event
/// (before the response leaves; a failed record turns it into 503), and counts
/// and logs the request.
struct EdgeMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let core: GatewayCore
    /// The router's paths and their methods: a 404 on a path served with other methods is 405.
    let methods: RouteMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let receivedAt = Date()
        let clock = ContinuousClock()
        let start = clock.now
        core.metrics.inFlight.increment()
        defer { core.metrics.inFlight.decrement() }

        var context = context
        // The id the audit log, the logs and Triton know the request by is always ours (a
        // client could otherwise reuse another request's); a well-formed one the client
        // sent is kept beside it as `client_request_id`.
        let clientID = request.headers[.requestID].flatMap { NameRules.isValidRequestID($0) ? $0 : nil }
        // ConnectionGuard names the request as its head arrives, so that a 408 it answers
        // itself carries the id this request's audit record has.
        context.requestID = request.headers[.gatewayRequestID].flatMap { NameRules.isValidRequestID($0) ? $0 : nil } ?? RandomIDs.uuid()
        context.trace = request.headers[.traceparent].flatMap(TraceContext.parse) ?? TraceContext.fresh()
        context.logger[metadataKey: "request.id"] = .string(context.requestID)
        if let clientID { context.logger[metadataKey: "request.client_id"] = .string(clientID) }
        context.logger[metadataKey: "trace.id"] = .string(context.trace.traceID)

        var response: Response
        var problemSlug: String?
        do {
            try checkHead(request)
            response = try await next(request, context)
        } catch let problem as GatewayProblem {
            problemSlug = problem.slug
            response = problem.response(instance: context.requestID)
        } catch let error as any HTTPResponseError {
            var problem = Self.problem(from: error.status)
            if error.status == .notFound, context.endpointPath == nil || context.endpointPath == "NotFound", let allow = methods.allowed(path: request.uri.path) {
                problem = GatewayProblem(.methodNotAllowed, "method-not-allowed", "This endpoint does not accept \(request.method.rawValue); it accepts \(allow).",
                                         headers: [(.allow, allow)])
            }
            problemSlug = problem.slug
            response = problem.response(instance: context.requestID)
        } catch is CancellationError {
            let problem = GatewayProblem(.init(code: 499, reasonPhrase: "Client Closed Request"), "cancelled", "The request was cancelled.")
            problemSlug = problem.slug
            response = problem.response(instance: context.requestID)
        } catch {
            context.logger.error("unhandled error", metadata: ["error.type": "\(type(of: error))"])
            let problem = GatewayProblem(.internalServerError, "internal-error", "The gateway failed to handle the request.")
            problemSlug = problem.slug
            response = problem.response(instance: context.requestID)
        }

        let record = context.record.snapshot
        let route = record.routeTemplate ?? context.endpointPath ?? "unmatched"
        let seconds = (clock.now - start).seconds
        let event = AuditEvent(
            requestID: context.requestID, clientRequestID: clientID, traceID: context.trace.traceID, receivedAt: receivedAt,
            subject: record.principal?.subject, issuer: record.principal?.issuer, roles: record.principal?.roles ?? [],
            endpoint: route, decision: record.decision, verdict: record.verdict, reasonCodes: record.reasonCodes,
            status: Int(response.status.code), upstreamStatus: record.upstreamStatus, errorCode: problemSlug,
            latencySeconds: seconds, upstreamLatencySeconds: record.upstreamLatencySeconds, inputBytes: record.inputBytes,
            contentType: record.contentType, inputHMAC: record.inputHMAC, target: record.target)
        do {
            try await core.auditSink.record(event)
        } catch {
            core.metrics.recordAuditFailure()
            context.logger.error("audit record failed", metadata: ["error.type": "\(type(of: error))"])
            problemSlug = "audit-unavailable"
            response = GatewayProblem.serviceUnavailable("audit-unavailable", "The request could not be recorded; try again later.", retryAfter: 5)
                .response(instance: context.requestID)
        }

        response.headers[.requestID] = context.requestID
        let status = Int(response.status.code)
        core.metrics.recordRequest(route: route, status: status, decision: record.verdict, routing: record.decision, seconds: seconds)
        if let problemSlug {
            core.activity.recordRefusal(slug: problemSlug, authReason: record.authFailureReason)
        }
        if let routing = record.decision, problemSlug == nil || status >= 500 {
            core.activity.recordRouted(route: routing.route, variant: routing.variant, status: status, seconds: seconds)
        }
        // The access line is built only when it will be written (at warning level and above
        // it is not, and building it is a measurable share of a request's cost).
        if context.logger.logLevel <= .info {
            var metadata: Logger.Metadata = [
                "http.method": .string(request.method.rawValue), "http.route": .string(route), "http.status": .stringConvertible(status),
                "duration.ms": .string(Self.milliseconds(seconds)),
            ]
            if let subject = record.principal?.subject {
                // As the audit log writes it: with `audit.subject_mode: hmac` a pseudonym, not the subject.
                let field = core.auditLog?.subjectField(subject) ?? (name: "subject", value: subject)
                metadata["auth." + field.name] = .string(field.value)
            }
            if let problemSlug { metadata["problem"] = .string(problemSlug) }
            if let reason = record.authFailureReason { metadata["auth.failure"] = .string(reason) }
            if let verdict = record.verdict { metadata["moderation.decision"] = .string(verdict) }
            context.logger.info("request", metadata: metadata)
        }
        return response
    }

    /// Seconds as milliseconds with three decimals ("12.345"), without Foundation's formatter.
    static func milliseconds(_ seconds: Double) -> String {
        let micros = max(0, Int((seconds * 1_000_000).rounded()))
        var out: [UInt8] = []
        UTCTimestamp.appendDigits(micros / 1000, width: 1, to: &out)
        out.append(UInt8(ascii: "."))
        UTCTimestamp.appendDigits(micros % 1000, width: 3, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Checks that apply to every request before routing.
    private func checkHead(_ request: Request) throws {
        var headerBytes = 0
        for field in request.headers where field.name != .gatewayRequestID && field.name != .gatewayClientAddress {
            headerBytes += field.name.rawName.utf8.count + field.value.utf8.count + 4
            if NameRules.hasControlBreaks(field.value) {
                throw GatewayProblem.badRequest("A header value contains a control character.")
            }
        }
        if headerBytes > core.configuration.limits.maxHeaderBytes {
            throw GatewayProblem(.requestHeaderFieldsTooLarge, "header-too-large",
                                 "The request headers are larger than the limit of \(core.configuration.limits.maxHeaderBytes) bytes.")
        }
        let rawPath = request.uri.path
        if Self.hasEncodedSeparator(rawPath) {
            throw GatewayProblem.badRequest("The path contains an encoded separator or control character.")
        }
        if rawPath.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." || $0 == "." }) {
            throw GatewayProblem.badRequest("The path contains a dot segment.")
        }
        if NameRules.hasControlBreaks(request.uri.description) {
            throw GatewayProblem.badRequest("The request target contains a control character.")
        }
    }

    /// `%2f`, `%5c`, `%00`, `%0d`, `%0a` or `%2e` in any case: a byte scan, as this runs on every request.
    static func hasEncodedSeparator(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        var i = 0
        while i + 2 < bytes.count {
            if bytes[i] == UInt8(ascii: "%") {
                let hi = bytes[i + 1], lo = bytes[i + 2] | 0x20  // lower-case a letter
                switch (hi, lo) {
                case (UInt8(ascii: "2"), UInt8(ascii: "f")), (UInt8(ascii: "5"), UInt8(ascii: "c")), (UInt8(ascii: "0"), UInt8(ascii: "0")),
                    (UInt8(ascii: "0"), UInt8(ascii: "d")), (UInt8(ascii: "0"), UInt8(ascii: "a")), (UInt8(ascii: "2"), UInt8(ascii: "e")):
                    return true
                default:
                    break
                }
            }
            i += 1
        }
        return false
    }

    static func problem(from status: HTTPResponse.Status) -> GatewayProblem {
        switch status.code {
        case 404: return GatewayProblem(.notFound, "not-found", "No such endpoint.")
        case 405: return GatewayProblem(.methodNotAllowed, "method-not-allowed", "This endpoint does not accept that method.")
        case 413: return GatewayProblem.payloadTooLarge("The body is too large.")
        case 408: return GatewayProblem(.requestTimeout, "request-timeout", "The request did not arrive in time.")
        case 400..<500: return GatewayProblem(status, "bad-request", "The request was refused.")
        default: return GatewayProblem(.internalServerError, "internal-error", "The gateway failed to handle the request.")
        }
    }
}

/// The router's path templates and the methods each is served with, for `Allow` on 405.
/// Filled once, after every route is registered and before the first request; read only
/// for requests no route took.
final class RouteMethods: Sendable {
    private let table = NIOLockedValueBox<[(segments: [Substring], methods: [String])]>([])

    func install(_ routes: [(path: String, method: String)]) {
        var byPath: [String: Set<String>] = [:]
        for route in routes { byPath[route.path, default: []].insert(route.method) }
        table.withLockedValue { table in
            table = byPath.map { (segments: $0.key.split(separator: "/"), methods: $0.value.sorted()) }
        }
    }

    /// `Allow` for `path` (`GET, POST`), or nil when no template matches it.
    func allowed(path: String) -> String? {
        let parts = path.split(separator: "/")
        let methods = table.withLockedValue { table in
            table.filter { Self.matches($0.segments, parts) }.flatMap(\.methods)
        }
        return methods.isEmpty ? nil : Set(methods).sorted().joined(separator: ", ")
    }

    /// `:name` and `*` match one segment, `**` one or more.
    static func matches(_ template: [Substring], _ parts: [Substring]) -> Bool {
        if let last = template.last, last == "**" {
            guard parts.count >= template.count else { return false }
        } else if template.count != parts.count {
            return false
        }
        for (t, p) in zip(template, parts) where t != "**" && t != "*" && !t.hasPrefix(":") && !t.hasPrefix("{") && t != p {
            return false
        }
        return true
    }
}
