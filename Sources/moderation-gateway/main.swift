import ArgumentParser
import Foundation
import Gateway
import Logging

/// What `--version` prints: "dev" for a local build. The container build
/// (docker/gateway/Dockerfile) rewrites this line with the git revision of the
/// gateway's inputs, so an image names the source it was built from.
enum BuildRevision { static let value = "dev" }

@main
struct ModerationGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moderation-gateway",
        abstract: "API gateway in front of Triton: image moderation, KServe v2 passthrough, JWT auth, limits.",
        discussion: """
            Subcommands:
              serve           Run the gateway with a YAML configuration until SIGTERM/SIGINT, then drain.
              config check    Read and validate a configuration; errors name the key at fault.
              token           Mint a development token signed with the configured HS256 secret.
              audit verify    Check the audit log's hash chain and report the first break.
            """,
        version: BuildRevision.value,
        subcommands: [Serve.self, Config.self, Token.self, Audit.self])
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Path of the gateway's YAML configuration (see Sources/Gateway/README.md).")
    var config: String = "config/gateway.yaml"

    /// The validated configuration, or exit 2 with the error that names the key.
    func load() throws -> GatewayConfiguration {
        do {
            return try GatewayConfiguration.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: """
            Validates the configuration, then serves HTTP on listen.host:listen.port. Logs go to standard \
            error (JSON lines unless logging.format is text). On SIGTERM or SIGINT it stops accepting \
            connections and lets in-flight requests finish for up to timeouts.shutdown_grace seconds. \
            With traffic.file set, SIGHUP reloads the traffic file (it is also polled for changes); \
            with audit.enabled, every answer waits for its fsynced audit record.
            """)
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = try options.load()
        let format = configuration.logging.format
        let level = Logger.Level(rawValue: configuration.logging.level.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        // Traffic, canary and audit metrics (global MetricsSystem) appear in /metrics.
        ProcessMetrics.bootstrap()
        var logger = Logger(label: "moderation-gateway")
        logger.logLevel = level
        // Audit log, traffic router and canary when configured; a refused traffic file stops the start.
        let app = try await buildGatewayApplication(configuration: configuration, logger: logger)
        logger.notice("gateway starting", metadata: [
            "listen.host": .string(configuration.listen.host), "listen.port": .stringConvertible(configuration.listen.port),
            "triton.url": .string(configuration.triton.redactedURL),
        ])
        try await runGateway(app, configuration: configuration)
    }
}

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with configuration files.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration file.",
            discussion: "Exits 0 and prints a summary when the file is valid; otherwise prints the key at fault and exits 2.")
        @Argument(help: "Path of the YAML configuration.")
        var path: String

        func run() async throws {
            do {
                let c = try GatewayConfiguration.load(path: path)
                print("ok: \(path)")
                print("  listen \(c.listen.host):\(c.listen.port) -> triton \(c.triton.redactedURL)")
                print("  default route \(c.routes.defaultRoute); routes: \(c.routes.models.keys.sorted().joined(separator: ", "))")
                print("  readiness models: \(c.readinessModels.joined(separator: ", "))")
                print("  audit \(c.audit.enabled ? "on" : "off"), metrics \(c.metrics.enabled ? "on" : "off"), log \(c.logging.level)/\(c.logging.format)")
                print("  instance \(c.instanceID); traffic file \(c.traffic.file ?? "none"); audit folder \(c.audit.enabled ? c.audit.path ?? "" : "off")")
                let console = try c.loadConsole()
                print("  console \(console == nil ? "off" : "/console/ from \(c.consoleDirectory.path)")")
            } catch {
                FileHandle.standardError.write(Data("invalid: \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint a development token.",
        discussion: """
            Signs an HS256 token with the development secret named in the configuration's auth section, \
            with the configured issuer and audience. Refuses when no development secret is configured: \
            production keys (RS256/ES256) are never used to mint tokens here. Prints only the token.
            """)
    @OptionGroup var options: ConfigOption
    @Option(help: "Subject (sub claim).") var sub: String = "dev-user"
    @Option(help: "Role to grant; repeat for several.") var role: [String] = []
    @Option(help: "Lifetime in seconds.") var ttl: Int = 3600

    func run() async throws {
        let configuration = try options.load()
        guard ttl > 0 && ttl <= 30 * 86400 else {
            FileHandle.standardError.write(Data("--ttl must be between 1 and 2592000 seconds\n".utf8))
            throw ExitCode(2)
        }
        do {
            let token = try mintDevelopmentToken(configuration: configuration, subject: sub, roles: role.isEmpty ? ["client"] : role,
                                                 ttlSeconds: ttl)
            print(token)
        } catch {
            FileHandle.standardError.write(Data("cannot mint a token: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Work with the audit log.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify audit log files.",
            discussion: """
                Checks framing, sequence numbers and the keyed hash chain of every chain found in the \
                given files and folders (one chain per instance id, across rotated files); reports the \
                first break with file, line and sequence. The chain key comes from the gateway's audit \
                key file (audit.key_file): without it nobody can rewrite a record and reseal the chain. \
                Each --anchor (INSTANCE:SEQ:HASH, from an `audit anchor` log line or /admin/audit) must \
                name a record the chain still holds, which shows whether the newest records were cut. \
                Exit status: 0 every chain verifies, 2 the only problem is a torn final record (a crash \
                mid-write), 1 a chain is broken, 64 bad arguments.
                """)
        @Argument(help: "Audit log files or folders holding audit-<instance>-<n>.jsonl files.") var paths: [String]
        @Option(help: "The gateway's audit key file (audit.key_file).") var keyFile: String
        @Option(help: "An anchor INSTANCE:SEQ:HASH the chain must still reach (repeatable).") var anchor: [String] = []
        @Flag(help: "Print the report as JSON.") var json = false

        func run() async throws {
            let code: Int32
            do {
                code = try verifyAuditLogs(paths: paths, json: json, keyFile: keyFile, anchors: anchor)
            } catch let error as AuditVerificationUsageError {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode(64)
            }
            if code != 0 { throw ExitCode(code) }
        }
    }
}
