import Foundation
@testable import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The console's files (served from the folder read at start, nothing else) and
/// the admin API's live figures it draws.
@Suite struct ConsoleTests {
    let setup: TestSetup
    let folder: URL

    init() throws {
        setup = try TestSetup()
        folder = setup.directory.appendingPathComponent("console")
        let fm = FileManager.default
        try fm.createDirectory(at: folder.appendingPathComponent("js"), withIntermediateDirectories: true)
        try Data("<!doctype html><title>console</title>".utf8).write(to: folder.appendingPathComponent("index.html"))
        try Data("export const x = 1;".utf8).write(to: folder.appendingPathComponent("js/app.js"))
        try Data("not served".utf8).write(to: folder.appendingPathComponent(".hidden.js"))
        try Data("notes".utf8).write(to: folder.appendingPathComponent("README.md"))
        // A link out of the folder is not followed: the secret beside it stays private.
        try fm.createSymbolicLink(at: folder.appendingPathComponent("secret.js"), withDestinationURL: setup.directory.appendingPathComponent("dev-secret"))
    }

    func withApp(console: String? = nil, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let section = console ?? "console:\n  directory: \(folder.path)\n"
        let configuration = try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: ["console": section])
        let app = try buildApplication(
            configuration: configuration, parts: GatewayParts(auditSink: RecordingAuditSink(), transport: RecordingTransport()),
            logger: quietLogger())
        try await app.test(.router) { client in try await body(client) }
    }

    @Test func servesOnlyTheFilesFoundAtStartWithAStrictPolicy() async throws {
        try await withApp { client in
            let index = try await client.execute(uri: "/console/", method: .get)
            #expect(index.status == .ok)
            #expect(index.headers[.contentType] == "text/html; charset=utf-8")
            let policy = try #require(index.headers[.contentSecurityPolicy])
            #expect(policy.contains("script-src 'self'") && policy.contains("default-src 'none'") && !policy.contains("unsafe"))
            #expect(index.headers[.cacheControl] == "no-cache")
            let etag = try #require(index.headers[.eTag])
            let again = try await client.execute(uri: "/console/", method: .get, headers: fields([(.ifNoneMatch, etag)]))
            #expect(again.status == .notModified)
            let script = try await client.execute(uri: "/console/js/app.js", method: .get)
            #expect(script.status == .ok && script.headers[.contentType] == "text/javascript; charset=utf-8")
            #expect(String(buffer: script.body) == "export const x = 1;")
            let redirect = try await client.execute(uri: "/console", method: .get)
            #expect(redirect.status == .permanentRedirect && redirect.headers[.location] == "/console/")
            for path in ["/console/.hidden.js", "/console/README.md", "/console/secret.js", "/console/js", "/console/nothing.js"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .notFound, "\(path)")
                #expect(!String(buffer: response.body).contains(String(decoding: setup.secret, as: UTF8.self)))
            }
            for path in ["/console/../dev-secret", "/console/%2e%2e/dev-secret", "/console/js%2f..%2f..%2fdev-secret"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .badRequest || response.status == .notFound, "\(path)")
            }
        }
    }

    @Test func aConsoleFolderThatWasSetMustExistAndTheDefaultIsOptional() throws {
        #expect {
            try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: ["console": "console:\n  directory: nowhere\n"])
        } throws: { error in
            (error as? ConfigurationError)?.key == "console.directory"
        }
        // Unset: ../console beside the configuration's folder, missing here, so the console is off.
        let configuration = try setup.configuration(tritonURL: "http://127.0.0.1:9")
        #expect(try configuration.loadConsole() == nil)
        let off = try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: ["console": "console:\n  enabled: false\n  directory: \(folder.path)\n"])
        #expect(try off.loadConsole() == nil)
    }

    @Test func withoutAConsoleTheRouteSaysSo() async throws {
        try await withApp(console: "console:\n  enabled: false\n") { client in
            let response = try await client.execute(uri: "/console/", method: .get)
            #expect(response.status == .notFound)
            #expect(try response.problem().type.hasSuffix("/not-configured"))
        }
    }

    @Test func activityNeedsTheAdminPermission() async throws {
        let client = try setup.token(roles: ["client"])
        let admin = try setup.token(roles: ["admin"])
        try await withApp { http in
            let none = try await http.execute(uri: "/admin/activity", method: .get)
            #expect(none.status == .unauthorized)
            let refused = try await http.execute(uri: "/admin/activity", method: .get, headers: fields([(.authorization, "Bearer \(client)")]))
            #expect(refused.status == .forbidden)
            let report = try await http.execute(uri: "/admin/activity", method: .get, headers: fields([(.authorization, "Bearer \(admin)")]))
            #expect(report.status == .ok)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(report.body.readableBytesView)) as? [String: Any])
            let refusals = try #require(object["refusals"] as? [[String: Any]])
            // The two refusals above, by reason.
            let reasons = Dictionary(uniqueKeysWithValues: refusals.map { ($0["reason"] as! String, $0["count"] as! Int) })
            #expect(reasons["forbidden"] == 1)
            #expect(reasons.keys.contains { $0.hasPrefix("unauthorized") })
        }
    }
}

@Suite struct LiveActivityTests {
    final class Clock: @unchecked Sendable {
        var now = Date(timeIntervalSince1970: 1_000_000)
    }

    @Test func ratesAndLatencyPerVariantOverTheLastMinute() {
        let clock = Clock()
        let activity = LiveActivity(now: { clock.now })
        for _ in 0..<10 { activity.recordRouted(route: "moderation", variant: "baseline", status: 200, seconds: 0.010) }
        activity.recordRouted(route: "moderation", variant: "candidate", status: 502, seconds: 0.400)
        clock.now += 30
        for _ in 0..<5 { activity.recordRouted(route: "moderation", variant: "baseline", status: 200, seconds: 0.100) }
        activity.recordRefusal(slug: "unauthorized", authReason: "expired")
        activity.recordRefusal(slug: "forbidden", authReason: "forbidden")
        activity.recordRefusal(slug: "forbidden", authReason: "forbidden")

        let report = activity.report()
        #expect(report.windowSeconds == 60 && report.slotSeconds == 5)
        let baseline = try! #require(report.variants.first { $0.variant == "baseline" })
        #expect(baseline.requests == 15 && baseline.serverErrors == 0)
        #expect(baseline.series.count == LiveActivity.slotCount && baseline.series.map(\.requests).reduce(0, +) == 15)
        #expect(baseline.ratePerSecond > 0 && baseline.ratePerSecond <= 15.0 / 30)
        let p50 = try! #require(baseline.p50Ms), p95 = try! #require(baseline.p95Ms)
        #expect(p50 >= 10 && p50 < 12 && p95 >= 100 && p95 < 111)
        let candidate = try! #require(report.variants.first { $0.variant == "candidate" })
        #expect(candidate.requests == 1 && candidate.serverErrors == 1)
        #expect(report.refusals.map(\.reason) == ["forbidden", "unauthorized:expired"])
        #expect(report.refusals.first?.count == 2)

        // A minute later the first burst has left the window; later still, everything.
        clock.now += 45
        #expect(activity.report().variants.first { $0.variant == "baseline" }?.requests == 5)
        #expect(activity.report().variants.first { $0.variant == "candidate" } == nil)
        clock.now += 120
        let empty = activity.report()
        #expect(empty.variants.isEmpty && empty.refusals.isEmpty)
    }
}
