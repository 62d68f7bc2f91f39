import Foundation
import Yams

/// The gateway's settings, read from YAML (`config/gateway.yaml`). Every key is
/// documented in `Sources/Gateway/README.md`; `validate()` names the key at fault.
public struct GatewayConfiguration: Codable, Sendable {
    public var listen: Listen
    public var triton: Triton
    public var timeouts: Timeouts
    public var limits: Limits
    public var auth: AuthConfiguration
    public var rateLimit: RateLimit
    public var authFailureLimit = AuthFailureLimit()
    public var routes: Routes
    public var metrics: Metrics
    public var logging: Logging
    public var audit: Audit
    public var traffic: Traffic
    public var upstream: UpstreamPolicy
    public var readiness: Readiness
    public var admin: Admin
    public var console: Console
    /// This replica's name: in every audit record, audit file names and canary
    /// state entries. Default: `$HOSTNAME` (the pod name in Kubernetes), else `gateway`.
    public var instanceID: String = GatewayConfiguration.defaultInstanceID

    /// Folder that relative paths in the file are resolved against (the file's folder).
    public var baseDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)

    enum CodingKeys: String, CodingKey {
        case listen, triton, timeouts, limits, auth, routes, metrics, logging, audit, traffic, upstream, readiness, admin, console
        case rateLimit = "rate_limit"
        case authFailureLimit = "auth_failure_limit"
        case instanceID = "instance_id"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listen = try c.decodeIfPresent(Listen.self, forKey: .listen) ?? Listen()
        triton = try c.decode(Triton.self, forKey: .triton)
        timeouts = try c.decodeIfPresent(Timeouts.self, forKey: .timeouts) ?? Timeouts()
        limits = try c.decodeIfPresent(Limits.self, forKey: .limits) ?? Limits()
        auth = try c.decode(AuthConfiguration.self, forKey: .auth)
        rateLimit = try c.decodeIfPresent(RateLimit.self, forKey: .rateLimit) ?? RateLimit()
        authFailureLimit = try c.decodeIfPresent(AuthFailureLimit.self, forKey: .authFailureLimit) ?? AuthFailureLimit()
        routes = try c.decodeIfPresent(Routes.self, forKey: .routes) ?? Routes()
        metrics = try c.decodeIfPresent(Metrics.self, forKey: .metrics) ?? Metrics()
        logging = try c.decodeIfPresent(Logging.self, forKey: .logging) ?? Logging()
        audit = try c.decodeIfPresent(Audit.self, forKey: .audit) ?? Audit()
        traffic = try c.decodeIfPresent(Traffic.self, forKey: .traffic) ?? Traffic()
        upstream = try c.decodeIfPresent(UpstreamPolicy.self, forKey: .upstream) ?? UpstreamPolicy()
        readiness = try c.decodeIfPresent(Readiness.self, forKey: .readiness) ?? Readiness()
        admin = try c.decodeIfPresent(Admin.self, forKey: .admin) ?? Admin()
        console = try c.decodeIfPresent(Console.self, forKey: .console) ?? Console()
        instanceID = try c.decodeIfPresent(String.self, forKey: .instanceID) ?? Self.defaultInstanceID
    }

    public struct Listen: Codable, Sendable {
        public var host: String = "127.0.0.1"
        public var port: Int = 8080
        /// Most simultaneous connections from one peer address (an IPv6 peer: its /64).
        public var maxConnectionsPerPeer: Int = 256
        /// Most simultaneous connections in all; more are closed as they arrive. Keep it
        /// below the process's open-file limit, which the connections share with files.
        public var maxConnections: Int = 4096
        /// Load balancers and proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is
        /// believed: a request from one of them is counted, for the failed-authentication
        /// limit, under the client address the header names. Empty (default): the header is
        /// ignored and the peer is the socket's address.
        public var trustedProxies: [String] = []
        enum CodingKeys: String, CodingKey {
            case host, port
            case maxConnectionsPerPeer = "max_connections_per_peer"
            case maxConnections = "max_connections"
            case trustedProxies = "trusted_proxies"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Listen()
            host = try c.decodeIfPresent(String.self, forKey: .host) ?? d.host
            port = try c.decodeIfPresent(Int.self, forKey: .port) ?? d.port
            maxConnectionsPerPeer = try c.decodeIfPresent(Int.self, forKey: .maxConnectionsPerPeer) ?? d.maxConnectionsPerPeer
            maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? d.maxConnections
            trustedProxies = try c.decodeIfPresent([String].self, forKey: .trustedProxies) ?? d.trustedProxies
        }
        /// `trustedProxies`, parsed (validated at load).
        var trustedProxyBlocks: [PeerAddress.Block] { trustedProxies.compactMap(PeerAddress.Block.init) }
    }

    public struct Triton: Codable, Sendable {
        public var url: String
        /// `url` for logs and summaries: any user and password replaced by `***`.
        public var redactedURL: String {
            guard var components = URLComponents(string: url), components.user != nil || components.password != nil else { return url }
            components.user = "***"
            components.password = nil
            return components.string ?? "(unprintable URL)"
        }
        public var tls: TLS = TLS()
        public struct TLS: Codable, Sendable {
            public var caFile: String?
            public var certificateFile: String?
            public var privateKeyFile: String?
            public var verifyPeer: Bool = true
            public var verifyHost: Bool = true
            enum CodingKeys: String, CodingKey {
                case caFile = "ca_file", certificateFile = "certificate_file", privateKeyFile = "private_key_file"
                case verifyPeer = "verify_peer", verifyHost = "verify_host"
            }
            public init() {}
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
                certificateFile = try c.decodeIfPresent(String.self, forKey: .certificateFile)
                privateKeyFile = try c.decodeIfPresent(String.self, forKey: .privateKeyFile)
                verifyPeer = try c.decodeIfPresent(Bool.self, forKey: .verifyPeer) ?? true
                verifyHost = try c.decodeIfPresent(Bool.self, forKey: .verifyHost) ?? true
            }
        }
        public init(url: String) { self.url = url }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            url = try c.decode(String.self, forKey: .url)
            tls = try c.decodeIfPresent(TLS.self, forKey: .tls) ?? TLS()
        }
    }

    /// Durations are seconds (fractions allowed).
    public struct Timeouts: Codable, Sendable {
        /// TCP/TLS connect to Triton.
        public var connect: Double = 2
        /// Reading a request's head and body from a client; slower clients get 408.
        public var request: Double = 30
        /// Whole upstream call (all tries); exceeded → 504 and the transfer is aborted.
        public var upstreamDeadline: Double = 10
        /// Closing idle keep-alive connections.
        public var idle: Double = 60
        /// Draining in-flight requests on SIGTERM/SIGINT before stopping anyway.
        public var shutdownGrace: Double = 15
        enum CodingKeys: String, CodingKey {
            case connect, request, idle
            case upstreamDeadline = "upstream_deadline"
            case shutdownGrace = "shutdown_grace"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Timeouts()
            connect = try c.decodeIfPresent(Double.self, forKey: .connect) ?? d.connect
            request = try c.decodeIfPresent(Double.self, forKey: .request) ?? d.request
            upstreamDeadline = try c.decodeIfPresent(Double.self, forKey: .upstreamDeadline) ?? d.upstreamDeadline
            idle = try c.decodeIfPresent(Double.self, forKey: .idle) ?? d.idle
            shutdownGrace = try c.decodeIfPresent(Double.self, forKey: .shutdownGrace) ?? d.shutdownGrace
        }
    }

    public struct Limits: Codable, Sendable {
        public var maxBodyBytes: Int = 8 * 1024 * 1024
        public var maxHeaderBytes: Int = 16 * 1024
        /// Width × height above which an image is refused from its header alone (413).
        public var maxImagePixels: Int = 40_000_000
        /// Upstream calls in flight at once; further calls get 503 at once.
        public var maxConcurrentUpstream: Int = 64
        /// Memory all requests together may hold for bodies being read and parsed; each
        /// reserves its largest possible share first and waits while the budget is spent.
        public var bodyMemoryBytes: Int = 128 * 1024 * 1024
        /// Most values (scalars, arrays, objects) in a KServe JSON request the gateway parses.
        public var maxJSONValues: Int = 1 << 20
        enum CodingKeys: String, CodingKey {
            case maxBodyBytes = "max_body_bytes", maxHeaderBytes = "max_header_bytes"
            case maxImagePixels = "max_image_pixels", maxConcurrentUpstream = "max_concurrent_upstream"
            case bodyMemoryBytes = "body_memory_bytes", maxJSONValues = "max_json_values"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Limits()
            maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? d.maxBodyBytes
            maxHeaderBytes = try c.decodeIfPresent(Int.self, forKey: .maxHeaderBytes) ?? d.maxHeaderBytes
            maxImagePixels = try c.decodeIfPresent(Int.self, forKey: .maxImagePixels) ?? d.maxImagePixels
            maxConcurrentUpstream = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentUpstream) ?? d.maxConcurrentUpstream
            bodyMemoryBytes = try c.decodeIfPresent(Int.self, forKey: .bodyMemoryBytes) ?? d.bodyMemoryBytes
            maxJSONValues = try c.decodeIfPresent(Int.self, forKey: .maxJSONValues) ?? d.maxJSONValues
        }
    }

    public struct RateLimit: Codable, Sendable {
        public var enabled: Bool = true
        public var ratePerSecond: Double = 50
        public var burst: Int = 100
        enum CodingKeys: String, CodingKey {
            case enabled, burst
            case ratePerSecond = "rate_per_second"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = RateLimit()
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
            ratePerSecond = try c.decodeIfPresent(Double.self, forKey: .ratePerSecond) ?? d.ratePerSecond
            burst = try c.decodeIfPresent(Int.self, forKey: .burst) ?? d.burst
        }
    }

    /// Failed authentications per peer address (a token bucket per address): once a
    /// peer has used up `burst` failures, its requests that would need a token checked
    /// get 429 before any signature work, refilled at `rate_per_second`. Tokens the
    /// gateway already accepted keep working from that address.
    public struct AuthFailureLimit: Codable, Sendable {
        public var enabled: Bool = true
        public var ratePerSecond: Double = 1
        public var burst: Int = 20
        /// Most peer addresses tracked at once (memory bound).
        public var maxPeers: Int = 100_000
        enum CodingKeys: String, CodingKey {
            case enabled, burst
            case ratePerSecond = "rate_per_second"
            case maxPeers = "max_peers"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = AuthFailureLimit()
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
            ratePerSecond = try c.decodeIfPresent(Double.self, forKey: .ratePerSecond) ?? d.ratePerSecond
            burst = try c.decodeIfPresent(Int.self, forKey: .burst) ?? d.burst
            maxPeers = try c.decodeIfPresent(Int.self, forKey: .maxPeers) ?? d.maxPeers
        }
    }

    public struct Routes: Codable, Sendable {
        /// Route `POST /v1/moderate` uses.
        public var defaultRoute: String = "moderation"
        /// Route name → Triton model (and optional version) when no traffic file is used.
        public var models: [String: RouteTarget] = ["moderation": RouteTarget(model: "moderation", version: nil)]
        enum CodingKeys: String, CodingKey {
            case defaultRoute = "default", models
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Routes()
            defaultRoute = try c.decodeIfPresent(String.self, forKey: .defaultRoute) ?? d.defaultRoute
            models = try c.decodeIfPresent([String: RouteTarget].self, forKey: .models) ?? d.models
        }
    }

    public struct RouteTarget: Codable, Sendable, Equatable {
        public var model: String
        public var version: String?
        public init(model: String, version: String?) {
            self.model = model
            self.version = version
        }
    }

    public struct Metrics: Codable, Sendable {
        public var enabled: Bool = true
        /// Whether `/metrics` needs a token with the `metrics` permission (the default:
        /// its refusal counters by reason would tell a prober which part of a forged
        /// token failed).
        public var requireAuth: Bool = true
        enum CodingKeys: String, CodingKey {
            case enabled
            case requireAuth = "require_auth"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
            requireAuth = try c.decodeIfPresent(Bool.self, forKey: .requireAuth) ?? true
        }
    }

    /// What the admin passthrough to Triton's repository API may do.
    public struct Admin: Codable, Sendable {
        /// Whether a model load may carry model files (`file:` parameters): files Triton
        /// writes into a temporary repository and runs, so a leaked admin token would be
        /// code execution on Triton. Off unless the operator turns it on.
        public var allowModelFiles: Bool = false
        enum CodingKeys: String, CodingKey {
            case allowModelFiles = "allow_model_files"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            allowModelFiles = try c.decodeIfPresent(Bool.self, forKey: .allowModelFiles) ?? false
        }
    }

    public struct Logging: Codable, Sendable {
        public var level: String = "info"
        /// `json` (one object per line) or `text`.
        public var format: String = "json"
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            level = try c.decodeIfPresent(String.self, forKey: .level) ?? "info"
            format = try c.decodeIfPresent(String.self, forKey: .format) ?? "json"
        }
    }

    public struct Audit: Codable, Sendable {
        public var enabled: Bool = false
        public var path: String?
        /// File holding the HMAC key for image hashes (32+ bytes).
        public var keyFile: String?
        /// Rotate to a new file once the current one reaches this size.
        public var maxFileBytes: Int = 64 << 20
        /// `plain` (subject and issuer as in the token) or `hmac` (keyed hash of the subject).
        public var subjectMode: String = "plain"
        enum CodingKeys: String, CodingKey {
            case enabled, path
            case keyFile = "key_file"
            case maxFileBytes = "max_file_bytes"
            case subjectMode = "subject_mode"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? false
            path = try c.decodeIfPresent(String.self, forKey: .path)
            keyFile = try c.decodeIfPresent(String.self, forKey: .keyFile)
            maxFileBytes = try c.decodeIfPresent(Int.self, forKey: .maxFileBytes) ?? maxFileBytes
            subjectMode = try c.decodeIfPresent(String.self, forKey: .subjectMode) ?? subjectMode
        }
    }

    public struct Traffic: Codable, Sendable {
        /// Path of `traffic.yaml`; `nil` → each route serves `routes.models[route]`.
        public var file: String?
        /// Where canary rollback/promotion decisions are kept (shared by replicas); `nil` → memory only.
        public var canaryStateFile: String?
        /// Seconds between content checks of the traffic file.
        public var pollInterval: Double = 0.5
        /// Whether SIGHUP reloads the traffic file.
        public var reloadOnSIGHUP: Bool = true
        enum CodingKeys: String, CodingKey {
            case file
            case canaryStateFile = "canary_state_file"
            case pollInterval = "poll_interval"
            case reloadOnSIGHUP = "reload_on_sighup"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            file = try c.decodeIfPresent(String.self, forKey: .file)
            canaryStateFile = try c.decodeIfPresent(String.self, forKey: .canaryStateFile)
            pollInterval = try c.decodeIfPresent(Double.self, forKey: .pollInterval) ?? pollInterval
            reloadOnSIGHUP = try c.decodeIfPresent(Bool.self, forKey: .reloadOnSIGHUP) ?? reloadOnSIGHUP
        }
    }

    public struct UpstreamPolicy: Codable, Sendable {
        /// Consecutive connection failures that open the circuit.
        public var circuitFailureThreshold: Int = 3
        /// Seconds the circuit stays open before one probe request is let through.
        public var circuitOpenSeconds: Double = 2
        /// Retries (only of requests never sent) allowed as a fraction of recent requests.
        public var retryBudgetRatio: Double = 0.1
        /// Retries always allowed per second regardless of traffic.
        public var retryMinPerSecond: Double = 5
        enum CodingKeys: String, CodingKey {
            case circuitFailureThreshold = "circuit_failure_threshold"
            case circuitOpenSeconds = "circuit_open_seconds"
            case retryBudgetRatio = "retry_budget_ratio"
            case retryMinPerSecond = "retry_min_per_second"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = UpstreamPolicy()
            circuitFailureThreshold = try c.decodeIfPresent(Int.self, forKey: .circuitFailureThreshold) ?? d.circuitFailureThreshold
            circuitOpenSeconds = try c.decodeIfPresent(Double.self, forKey: .circuitOpenSeconds) ?? d.circuitOpenSeconds
            retryBudgetRatio = try c.decodeIfPresent(Double.self, forKey: .retryBudgetRatio) ?? d.retryBudgetRatio
            retryMinPerSecond = try c.decodeIfPresent(Double.self, forKey: .retryMinPerSecond) ?? d.retryMinPerSecond
        }
    }

    public struct Readiness: Codable, Sendable {
        /// Models `/readyz` requires; default: every model named in `routes.models`.
        public var models: [String]?
        /// Seconds a readiness answer is reused.
        public var cacheSeconds: Double = 1
        enum CodingKeys: String, CodingKey {
            case models
            case cacheSeconds = "cache_seconds"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            models = try c.decodeIfPresent([String].self, forKey: .models)
            cacheSeconds = try c.decodeIfPresent(Double.self, forKey: .cacheSeconds) ?? 1
        }
    }

    public struct Console: Codable, Sendable {
        /// Whether `/console/` serves the web console.
        public var enabled: Bool = true
        /// Folder of the console's files. Unset: `../console` against the configuration's
        /// folder (the repository's `console/` beside `config/`; in the gateway image,
        /// `/etc/moderation-gateway/console` beside `/etc/moderation-gateway/config`),
        /// and the console is off when that folder is missing. Set: it must hold the console.
        public var directory: String?
        static let defaultDirectory = "../console"
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
            directory = try c.decodeIfPresent(String.self, forKey: .directory)
        }
    }

    /// The folder the console is read from (`console.directory` or its default), resolved.
    public var consoleDirectory: URL {
        resolvePath(console.directory ?? Console.defaultDirectory).standardizedFileURL
    }

    /// The console's files as `console` asks: `nil` when it is off, or when the
    /// default folder is missing; throws naming `console.directory` when a folder
    /// that was set cannot be served.
    public func loadConsole() throws -> ConsoleBundle? {
        guard console.enabled else { return nil }
        do {
            return try ConsoleBundle.load(directory: consoleDirectory)
        } catch let error as ConsoleBundle.LoadError {
            if console.directory == nil { return nil }
            throw ConfigurationError(key: "console.directory", error.description)
        }
    }

    /// Models `/readyz` checks.
    public var readinessModels: [String] {
        readiness.models ?? Array(Set(routes.models.values.map(\.model))).sorted()
    }

    /// Resolves a path from the file against the file's folder.
    public func resolvePath(_ path: String) -> URL {
        if path.hasPrefix("/") { return URL(fileURLWithPath: path) }
        return baseDirectory.appendingPathComponent(path)
    }
}

/// A configuration problem, naming the key at fault.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var message: String
    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { "\(key): \(message)" }
}

extension GatewayConfiguration {
    /// Reads and validates a YAML file.
    public static func load(path: String) throws -> GatewayConfiguration {
        let url = URL(fileURLWithPath: path)
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ConfigurationError(key: "(file)", "cannot read \(path): \(error.localizedDescription)")
        }
        var configuration = try parse(yaml: text, baseDirectory: url.deletingLastPathComponent())
        configuration.baseDirectory = url.deletingLastPathComponent().standardizedFileURL
        try configuration.validate()
        return configuration
    }

    /// Parses YAML text (without validating).
    public static func parse(yaml: String, baseDirectory: URL) throws -> GatewayConfiguration {
        do {
            var configuration = try YAMLDecoder().decode(GatewayConfiguration.self, from: yaml)
            configuration.baseDirectory = baseDirectory
            try configuration.refuseUnknownKeys(in: yaml)
            return configuration
        } catch let error as DecodingError {
            throw ConfigurationError(key: Self.keyPath(of: error), Self.describe(error))
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(key: "(file)", "not valid YAML: \(error)")
        }
    }

    /// A key the gateway does not read is an error, as in the traffic file: a misspelt key
    /// (`max_conections`, `trusted_proxy`) would otherwise leave its default in force without
    /// a word. The keys the gateway reads are the ones the decoded configuration encodes
    /// back to (every section writes what it reads, through the same coding keys), so the
    /// list cannot drift from the decoders. A key given an empty value is left alone (it
    /// decodes to nothing, so it is not in the encoded tree either).
    func refuseUnknownKeys(in yaml: String) throws {
        guard let given = try Yams.compose(yaml: yaml) else { return }
        let read: Any
        do {
            let encoder = JSONEncoder()
            // `.inf` is a valid duration or rate; JSON has no such number.
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            read = try JSONSerialization.jsonObject(with: encoder.encode(self))
        } catch {
            throw ConfigurationError(key: "(file)", "the keys could not be checked: \(error)")
        }
        if let (path, known) = Self.firstUnknownKey(given: given, read: read, path: []) {
            let key = path.split(separator: ".").last.map(String.init) ?? path
            let hint = Self.closest(to: key, among: known).map { "did you mean \($0)?" }
                ?? "the gateway does not read it; Sources/Gateway/README.md lists every key"
            throw ConfigurationError(key: path, "unknown key (\(hint))")
        }
    }

    /// The key `key` was most likely meant to be: the same letters without `_`/`-`, one a
    /// prefix of the other, or a few edits away. (Keys left unset and without a default
    /// are not in the encoded tree, so they cannot be suggested.)
    static func closest(to key: String, among known: [String]) -> String? {
        func plain(_ s: String) -> [Character] { Array(s.lowercased().filter { $0 != "_" && $0 != "-" }) }
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, x) in a.enumerated() {
                var current = [i + 1]
                for (j, y) in b.enumerated() {
                    current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
                }
                previous = current
            }
            return previous[b.count]
        }
        let wanted = plain(key)
        let ranked = known.sorted().map { candidate -> (String, Int) in
            let other = plain(candidate)
            if other == wanted { return (candidate, 0) }
            let shorter = Swift.min(other.count, wanted.count)
            if shorter >= 4, other.starts(with: wanted) || wanted.starts(with: other) { return (candidate, 1) }
            return (candidate, distance(wanted, other))
        }
        guard let best = ranked.min(by: { $0.1 < $1.1 }), best.1 <= Swift.max(2, wanted.count / 4) else { return nil }
        return best.0
    }

    /// The first key of `given` (the YAML as composed, before any decoding) that `read` (the
    /// configuration encoded back) lacks, as a dotted path with the keys known beside it.
    /// Maps keyed by the operator (`routes.models`, `auth.roles`) come back with the same
    /// keys, so they pass; merge keys (`<<`) count as the keys they bring; a key that is not
    /// a plain scalar (`? [a, b]`) is never one the gateway reads.
    static func firstUnknownKey(given: Node, read: Any, path: [String]) -> (String, [String])? {
        func joined(_ path: [String]) -> String {
            path.reduce("") { $1.hasPrefix("[") || $0.isEmpty ? $0 + $1 : $0 + "." + $1 }
        }
        if let map = given.mapping, let known = read as? [String: Any] {
            for (keyNode, value) in map {
                guard let key = keyNode.scalar?.string else { return (joined(path + ["(a key that is not a name)"]), Array(known.keys)) }
                if key == "<<" {
                    for merged in value.sequence.map(Array.init) ?? [value] {
                        if let found = firstUnknownKey(given: merged, read: read, path: path) { return found }
                    }
                    continue
                }
                if case .scalar(let scalar) = value, scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(scalar.string) { continue }
                guard let next = known[key] else { return (joined(path + [key]), Array(known.keys)) }
                if let found = firstUnknownKey(given: value, read: next, path: path + [key]) { return found }
            }
        } else if let list = given.sequence, let known = read as? [Any] {
            for (index, item) in list.enumerated() where index < known.count {
                if let found = firstUnknownKey(given: item, read: known[index], path: path + ["[\(index)]"]) { return found }
            }
        }
        return nil
    }

    private static func keyPath(of error: DecodingError) -> String {
        let path: [any CodingKey]
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): path = c.codingPath
        case .keyNotFound(let key, let c): path = c.codingPath + [key]
        @unknown default: path = []
        }
        let joined = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        return joined.isEmpty ? "(root)" : joined
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(let type, _): return "expected a value of type \(type)"
        case .valueNotFound(let type, _): return "missing value of type \(type)"
        case .keyNotFound: return "required key is missing"
        case .dataCorrupted(let c): return c.debugDescription
        @unknown default: return "invalid"
        }
    }

    /// Checks every value; the error names the key.
    public func validate() throws {
        func check(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw ConfigurationError(key: key, message) }
        }
        try check(!listen.host.isEmpty, "listen.host", "must not be empty")
        try check((0...65535).contains(listen.port), "listen.port", "must be 0...65535")
        try check(listen.maxConnectionsPerPeer >= 1, "listen.max_connections_per_peer", "must be at least 1")
        try check(listen.maxConnections >= 1, "listen.max_connections", "must be at least 1")
        for (index, block) in listen.trustedProxies.enumerated() {
            try check(PeerAddress.Block(block) != nil, "listen.trusted_proxies[\(index)]",
                      "\(block.debugDescription) is not an IP address or a CIDR block such as 10.0.0.0/8 or fd00::/8")
        }
        guard let tritonURL = URL(string: triton.url), let scheme = tritonURL.scheme?.lowercased(),
            scheme == "http" || scheme == "https", tritonURL.host != nil
        else {
            throw ConfigurationError(key: "triton.url", "must be an http:// or https:// URL with a host")
        }
        for (key, file) in [
            ("triton.tls.ca_file", triton.tls.caFile), ("triton.tls.certificate_file", triton.tls.certificateFile),
            ("triton.tls.private_key_file", triton.tls.privateKeyFile),
        ] {
            if let file { try check(FileManager.default.isReadableFile(atPath: resolvePath(file).path), key, "file \(file) is not readable") }
        }
        if let file = triton.tls.privateKeyFile, let problem = KeyFilePermissions.secretProblem(resolvePath(file).path) {
            throw ConfigurationError(key: "triton.tls.private_key_file", problem)
        }
        try check((triton.tls.certificateFile == nil) == (triton.tls.privateKeyFile == nil), "triton.tls.private_key_file",
            "certificate_file and private_key_file go together")
        try check(timeouts.connect > 0 && timeouts.connect <= 300, "timeouts.connect", "must be in (0, 300] seconds")
        try check(timeouts.request > 0 && timeouts.request <= 3600, "timeouts.request", "must be in (0, 3600] seconds")
        try check(timeouts.upstreamDeadline > 0 && timeouts.upstreamDeadline <= 3600, "timeouts.upstream_deadline", "must be in (0, 3600] seconds")
        try check(timeouts.idle > 0, "timeouts.idle", "must be positive")
        try check(timeouts.shutdownGrace >= 0 && timeouts.shutdownGrace <= 3600, "timeouts.shutdown_grace", "must be in [0, 3600] seconds")
        try check(limits.maxBodyBytes >= 1024 && limits.maxBodyBytes <= 1 << 30, "limits.max_body_bytes", "must be in [1024, 1 GiB]")
        try check(limits.maxHeaderBytes >= 1024 && limits.maxHeaderBytes <= 1 << 20, "limits.max_header_bytes", "must be in [1024, 1 MiB]")
        try check(limits.maxImagePixels >= 1, "limits.max_image_pixels", "must be positive")
        try check(limits.maxConcurrentUpstream >= 1, "limits.max_concurrent_upstream", "must be at least 1")
        try check(limits.bodyMemoryBytes >= 1 << 20, "limits.body_memory_bytes", "must be at least 1 MiB")
        try check(limits.maxJSONValues >= 1024, "limits.max_json_values", "must be at least 1024")
        try check(rateLimit.ratePerSecond > 0, "rate_limit.rate_per_second", "must be positive")
        try check(rateLimit.burst >= 1, "rate_limit.burst", "must be at least 1")
        try check(authFailureLimit.ratePerSecond >= 0.001, "auth_failure_limit.rate_per_second", "must be at least 0.001")
        try check(authFailureLimit.burst >= 1, "auth_failure_limit.burst", "must be at least 1")
        try check(authFailureLimit.maxPeers >= 1, "auth_failure_limit.max_peers", "must be at least 1")
        try check(routes.models[routes.defaultRoute] != nil || traffic.file != nil, "routes.default",
            "route '\(routes.defaultRoute)' has no entry in routes.models (and no traffic.file is set)")
        for (route, target) in routes.models {
            try check(NameRules.isValidName(route), "routes.models.\(route)", "route names must match [A-Za-z0-9_.-]+")
            try check(NameRules.isValidName(target.model), "routes.models.\(route).model", "must match [A-Za-z0-9_.-]+")
            if let version = target.version {
                try check(NameRules.isValidVersion(version), "routes.models.\(route).version", "must be digits")
            }
        }
        for model in readiness.models ?? [] {
            try check(NameRules.isValidName(model), "readiness.models", "'\(model)' must match [A-Za-z0-9_.-]+")
        }
        try check(readiness.cacheSeconds >= 0, "readiness.cache_seconds", "must not be negative")
        try check(["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logging.level.lowercased()),
            "logging.level", "must be one of trace, debug, info, notice, warning, error, critical")
        try check(["json", "text"].contains(logging.format), "logging.format", "must be json or text")
        if audit.enabled {
            try check(audit.path?.isEmpty == false, "audit.path", "is required when audit.enabled is true")
            try check(audit.keyFile?.isEmpty == false, "audit.key_file", "is required when audit.enabled is true")
        }
        if let keyFile = audit.keyFile, audit.enabled {
            let data = FileManager.default.contents(atPath: resolvePath(keyFile).path)
            try check(data != nil, "audit.key_file", "file \(keyFile) is not readable")
            try check((data?.count ?? 0) >= 32, "audit.key_file", "key must be at least 32 bytes")
            if let problem = KeyFilePermissions.secretProblem(resolvePath(keyFile).path) {
                throw ConfigurationError(key: "audit.key_file", problem)
            }
            if let path = audit.path {
                // Whoever can write the audit folder must not also hold the key that seals the chain.
                let folder = resolvePath(path).standardizedFileURL.path + "/"
                try check(!resolvePath(keyFile).standardizedFileURL.path.hasPrefix(folder), "audit.key_file",
                    "must be outside the audit folder (audit.path): the key seals the chain")
            }
        }
        if let file = traffic.file {
            try check(FileManager.default.isReadableFile(atPath: resolvePath(file).path), "traffic.file", "file \(file) is not readable")
        }
        try validateTrafficAndAudit()
        _ = try loadConsole()
        try check(upstream.circuitFailureThreshold >= 1, "upstream.circuit_failure_threshold", "must be at least 1")
        try check(upstream.circuitOpenSeconds > 0, "upstream.circuit_open_seconds", "must be positive")
        try check(upstream.retryBudgetRatio >= 0 && upstream.retryBudgetRatio <= 1, "upstream.retry_budget_ratio", "must be in [0, 1]")
        try check(upstream.retryMinPerSecond >= 0, "upstream.retry_min_per_second", "must not be negative")
        do {
            try auth.validate()
            // Loading the keys checks the files (readable, sizes, PEM/JWKS contents).
            _ = try JWTAuthenticator(configuration: auth, baseDirectory: baseDirectory)
        } catch let error as AuthConfigurationError {
            throw ConfigurationError(key: error.path, error.message)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(key: "auth", "\(error)")
        }
    }
}

/// Rules for names that end up in upstream paths, headers or the audit log.
public enum NameRules {
    /// `value` without leading and trailing spaces and tabs (header values; no Foundation bridging).
    static func trimmedSpaces(_ value: String) -> Substring {
        var slice = Substring(value)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return slice
    }

    /// `[A-Za-z0-9_.-]{1,128}`, and not `.` or `..` or anything containing `..`.
    public static func isValidName(_ s: some StringProtocol) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 128, !s.contains("..") else { return false }
        return s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2E || b == 0x2D
        } && s != "."
    }

    /// Triton model versions are positive integers.
    public static func isValidVersion(_ s: some StringProtocol) -> Bool {
        !s.isEmpty && s.utf8.count <= 19 && s.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// A client-supplied request id: `[A-Za-z0-9._-]{1,128}`.
    public static func isValidRequestID(_ s: some StringProtocol) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 128 else { return false }
        return s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2E || b == 0x2D
        }
    }

    /// True when a value holds CR, LF or NUL (header splitting, log forging).
    public static func hasControlBreaks(_ s: some StringProtocol) -> Bool {
        s.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }
    }
}
