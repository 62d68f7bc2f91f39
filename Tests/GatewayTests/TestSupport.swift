import Foundation
@testable import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TritonClient

/// A folder with a development secret and helpers to build gateway configurations for tests.
struct TestSetup {
    let directory: URL
    let secret: [UInt8]

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Hex text, like `openssl rand -hex 32`: the gateway drops one trailing newline from a
        // secret file, so raw random bytes ending in 0x0A or 0x0D (1 setup in 128) would give
        // the gateway a different secret from the one tokens are minted with here.
        secret = Array(HexEncoding.lowercase((0..<32).map { _ in UInt8.random(in: 0...255) }).utf8)
        try writeSecret(secret, to: directory.appendingPathComponent("dev-secret"))
    }

    /// The `auth:` section of `yaml`, with `extraRoles` (indented role entries) appended.
    func authSection(extraRoles: String = "") -> String {
        """
                auth:
                  issuers: [test-issuer]
                  audiences: [moderation-gateway]
                  leeway_seconds: 30
                  keys:
                    - kid: test
                      algorithm: HS256
                      secret_file: dev-secret
                  roles:
                    client:
                      permissions: [moderate]
                    inference:
                      permissions: [moderate, infer]
                      models: [identity_fp32, identity_bytes, identity_int32, guarded_fp32, guarded_bytes, guarded_rows, add_sub, slow, moderation, missing_model]
                    admin:
                      permissions: [moderate, infer, admin, metrics]

                """ + extraRoles
    }

    /// YAML for a gateway on `port` in front of `tritonURL`; `overrides` is appended
    /// (top-level sections given there replace the defaults).
    func yaml(tritonURL: String, port: Int = 0, route model: String = "moderation", overrides: [String: String] = [:]) -> String {
        var sections: [String: String] = [
            "listen": "listen:\n  host: 127.0.0.1\n  port: \(port)\n  max_connections_per_peer: 64\n",
            "triton": "triton:\n  url: \(tritonURL)\n",
            "timeouts": "timeouts:\n  connect: 1\n  request: 5\n  upstream_deadline: 5\n  shutdown_grace: 2\n",
            "limits": "limits:\n  max_body_bytes: 65536\n  max_header_bytes: 16384\n  max_image_pixels: 4000000\n  max_concurrent_upstream: 16\n",
            "auth": authSection(),
            "rate_limit": "rate_limit:\n  enabled: true\n  rate_per_second: 1000\n  burst: 1000\n",
            // Suites that walk the refusal tables send dozens of bad tokens from 127.0.0.1;
            // AuthFailureLimitTests sets a small budget to test the limit itself.
            "auth_failure_limit": "auth_failure_limit:\n  enabled: true\n  burst: 100000\n",
            "routes": "routes:\n  default: moderation\n  models:\n    moderation:\n      model: \(model)\n",
            "logging": "logging:\n  level: warning\n  format: json\n",
            "upstream": "upstream:\n  circuit_failure_threshold: 2\n  circuit_open_seconds: 1\n",
        ]
        for (key, value) in overrides { sections[key] = value }
        return sections.keys.sorted().map { sections[$0]! }.joined()
    }

    func configuration(tritonURL: String, port: Int = 0, route model: String = "moderation", overrides: [String: String] = [:]) throws -> GatewayConfiguration {
        let configuration = try GatewayConfiguration.parse(
            yaml: yaml(tritonURL: tritonURL, port: port, route: model, overrides: overrides), baseDirectory: directory)
        try configuration.validate()
        return configuration
    }

    func token(subject: String = "alice", roles: [String] = ["inference"], ttl: Duration = .seconds(600)) throws -> String {
        try DevelopmentToken.mint(
            secret: secret, kid: "test", issuer: "test-issuer", audience: "moderation-gateway", subject: subject, roles: roles, ttl: ttl)
    }
}

/// Writes a secret the way the gateway requires it (``KeyFilePermissions``): owner-only.
func writeSecret(_ bytes: [UInt8], to url: URL) throws {
    try Data(bytes).write(to: url)
    guard chmod(url.path, 0o600) == 0 else { throw CocoaError(.fileWriteNoPermission) }
}

/// Records what the gateway sends upstream and answers with a scripted reply.
/// Used by the router tests to show what reaches (or does not reach) Triton.
final class RecordingTransport: TritonTransport {
    typealias Reply = @Sendable (RawHTTPRequest) async throws -> RawHTTPResponse
    private let calls = NIOLockedValueBox<[RawHTTPRequest]>([])
    private let reply: NIOLockedValueBox<Reply>

    init(reply: @escaping Reply = { _ in RawHTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array("{}".utf8)) }) {
        self.reply = NIOLockedValueBox(reply)
    }

    func setReply(_ reply: @escaping Reply) { self.reply.withLockedValue { $0 = reply } }

    func execute(_ request: RawHTTPRequest) async throws -> RawHTTPResponse {
        calls.withLockedValue { $0.append(request) }
        let reply = self.reply.withLockedValue { $0 }
        return try await reply(request)
    }

    /// Calls other than the readiness probe's health checks.
    var requests: [RawHTTPRequest] {
        calls.withLockedValue { $0 }.filter { !($0.method == "GET" && ($0.path == "/v2/health/ready" || $0.path.hasSuffix("/ready"))) }
    }
}

/// Records every audit event; can be told to fail.
final class RecordingAuditSink: AuditSink {
    let events = NIOLockedValueBox<[AuditEvent]>([])
    let failing = NIOLockedValueBox(false)
    struct Failure: Error {}
    func record(_ event: AuditEvent) async throws {
        if failing.withLockedValue({ $0 }) { throw Failure() }
        events.withLockedValue { $0.append(event) }
    }
}

func quietLogger() -> Logger {
    var logger = Logger(label: "gateway-tests")
    logger.logLevel = .critical
    return logger
}

/// A decoded problem+json body.
struct ProblemBody: Decodable {
    var type: String
    var title: String
    var status: Int
    var detail: String
    var instance: String
}

extension TestResponse {
    var text: String { String(buffer: body) }

    func problem() throws -> ProblemBody {
        try JSONDecoder().decode(ProblemBody.self, from: Data(buffer: body))
    }
}

extension HTTPField.Name {
    static let requestIDHeader = HTTPField.Name("X-Request-Id")!
    static let traceparentHeader = HTTPField.Name("traceparent")!
    static let inferHeaderLength = HTTPField.Name("Inference-Header-Content-Length")!
}

func fields(_ pairs: [(HTTPField.Name, String)]) -> HTTPFields {
    var f = HTTPFields()
    for (n, v) in pairs { f.append(HTTPField(name: n, value: v)) }
    return f
}

/// Test images built in memory.
enum SampleImages {
    /// A PNG signature and IHDR claiming `width`×`height`, nothing after it.
    static func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
        var b: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]
        b += Array("IHDR".utf8)
        for v in [width, height] { b += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        b += [8, 2, 0, 0, 0, 0, 0, 0, 0]
        return b
    }

    /// A real JPEG from the fixtures, or a tiny built-in one.
    static func smallJPEG() throws -> [UInt8] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/images/gateway-sample.jpg")
        return [UInt8](try Data(contentsOf: url))
    }
}

/// Keeps every log entry written through `logger(level:)`, for tests of what the
/// gateway writes to its logs.
final class CapturedLog: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }
    private let stored = NIOLockedValueBox<[Entry]>([])
    var entries: [Entry] { stored.withLockedValue { $0 } }

    func logger(level: Logger.Level) -> Logger {
        var logger = Logger(label: "captured") { _ in Handler(log: self) }
        logger.logLevel = level
        return logger
    }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let entry = Entry(level: event.level, message: event.message.description, metadata: merged.mapValues { "\($0)" })
            log.stored.withLockedValue { $0.append(entry) }
        }
    }
}
