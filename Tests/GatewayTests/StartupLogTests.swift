import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// A Triton URL may carry credentials (`http://user:password@host`); what the gateway
/// prints about its configuration must not.
@Suite("Startup log and config check redact triton.url credentials")
struct StartupLogTests {
    static let secret = "s3cret-in-url"

    func configuration(_ setup: TestSetup, port: Int) -> String {
        setup.yaml(tritonURL: "http://operator:\(Self.secret)@127.0.0.1:9", port: port, overrides: [
            "logging": "logging:\n  level: info\n  format: json\n",
        ])
    }

    @Test("config check prints the URL without its password")
    func configCheck() async throws {
        let executable = try #require(gatewayExecutable(), "moderation-gateway executable not found; run swift build first")
        let setup = try TestSetup()
        let path = setup.directory.appendingPathComponent("check.yaml")
        try Data(configuration(setup, port: 8080).utf8).write(to: path)
        let (status, output) = try await runProcess(executable.path, ["config", "check", path.path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("127.0.0.1:9"), "\(output)")
        #expect(!output.contains(Self.secret), "\(output)")
    }

    @Test("serve logs triton.url without its password")
    func serveLog() async throws {
        let executable = try #require(gatewayExecutable(), "moderation-gateway executable not found; run swift build first")
        let setup = try TestSetup()
        let port = try #require(freePort())
        let log = setup.directory.appendingPathComponent("serve.log")
        let process = try startGatewayBinary(executable, yaml: configuration(setup, port: port), in: setup.directory, output: log)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let started = try await eventually(60) {
            ((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("triton.url")
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(started, "no startup line with triton.url: \(text.prefix(400))")
        #expect(text.contains("127.0.0.1:9"), "\(text.prefix(400))")
        #expect(!text.contains(Self.secret), "\(text.prefix(400))")
    }
}
