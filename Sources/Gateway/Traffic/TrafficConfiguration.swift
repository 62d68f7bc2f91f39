import Crypto
import Foundation
import Yams

/// The operator's traffic file (`config/traffic.yaml`) after parsing and validation:
/// which Triton model (and version) serves each route, with what weight, and how
/// canary analysis and mirroring are set up.
public struct TrafficConfiguration: Sendable, Equatable {
    /// Routes by name, e.g. `moderation`.
    public var routes: [String: RouteConfiguration]
    /// Route names in file order (for stable status output).
    public var routeNames: [String]
    /// SHA-256 of the file's bytes, lowercase hex.
    public var revision: String

    /// The first 12 hex digits of the revision; what decisions, headers and the
    /// audit log carry.
    public var shortRevision: String { String(revision.prefix(12)) }

    public init(routes: [RouteConfiguration], revision: String) {
        self.routes = Dictionary(routes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.routeNames = routes.map(\.name)
        self.revision = revision
    }

    /// SHA-256 of `data` as lowercase hex: the revision of a traffic file.
    public static func revision(of data: Data) -> String {
        HexEncoding.lowercase(SHA256.hash(data: data))
    }
}

/// One route: weighted variants, stickiness, optional mirror and canary.
public struct RouteConfiguration: Sendable, Equatable, Codable {
    public var name: String
    public var variants: [VariantConfiguration]
    public var stickiness: Stickiness
    public var mirror: MirrorConfiguration?
    public var canary: CanaryConfiguration?

    public init(
        name: String, variants: [VariantConfiguration], stickiness: Stickiness = .subject,
        mirror: MirrorConfiguration? = nil, canary: CanaryConfiguration? = nil
    ) {
        self.name = name
        self.variants = variants
        self.stickiness = stickiness
        self.mirror = mirror
        self.canary = canary
    }

    /// SHA-256 (hex) of this route's settings alone. Canary decisions are kept per
    /// route digest, so editing one route resets its canary state and no other's.
    public var digest: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(self)) ?? Data(name.utf8)
        return HexEncoding.lowercase(SHA256.hash(data: data))
    }

    public func variant(named name: String) -> VariantConfiguration? {
        variants.first { $0.name == name }
    }
}

public struct VariantConfiguration: Sendable, Equatable, Codable {
    public var name: String
    /// Triton model name.
    public var model: String
    /// Triton model version; `nil` lets Triton's version policy choose.
    public var version: String?
    /// Relative weight (commonly the variants of a route add up to 100).
    public var weight: Double

    public init(name: String, model: String, version: String? = nil, weight: Double) {
        self.name = name
        self.model = model
        self.version = version
        self.weight = weight
    }
}

/// What keeps a caller on the same variant across requests.
public enum Stickiness: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The verified token's subject (the default).
    case subject
    /// The value of a request header, e.g. a session id.
    case header(String)
    /// No stickiness: every request draws a random bucket.
    case none

    public var description: String {
        switch self {
        case .subject: "subject"
        case .header(let name): "header:\(name)"
        case .none: "none"
        }
    }
}

public struct MirrorConfiguration: Sendable, Equatable, Codable {
    /// Variant that receives the copies.
    public var variant: String
    /// Share of requests copied, 0...1.
    public var fraction: Double

    public init(variant: String, fraction: Double) {
        self.variant = variant
        self.fraction = fraction
    }
}

public struct CanaryConfiguration: Sendable, Equatable, Codable {
    public var candidate: String
    public var baseline: String
    /// Length of one analysis window.
    public var windowSeconds: Double
    /// A window with fewer candidate requests is not judged.
    public var minRequests: Int
    /// A window fails when the candidate's server-error rate is above this (0...1).
    public var maxErrorRate: Double
    /// A window fails when candidate p95 > ratio × baseline p95; `nil` turns the check off.
    public var maxP95LatencyRatio: Double?
    /// Failing windows (per route revision) that trigger the rollback.
    public var failureLimit: Int
    /// Candidate weights to step through after each passing window, capped at the
    /// candidate's weight in the file. `nil`: the file's weight from the start.
    public var promotionSteps: [Double]?

    public init(
        candidate: String, baseline: String, windowSeconds: Double = 60, minRequests: Int = 20,
        maxErrorRate: Double = 0.05, maxP95LatencyRatio: Double? = 1.5, failureLimit: Int = 3,
        promotionSteps: [Double]? = nil
    ) {
        self.candidate = candidate
        self.baseline = baseline
        self.windowSeconds = windowSeconds
        self.minRequests = minRequests
        self.maxErrorRate = maxErrorRate
        self.maxP95LatencyRatio = maxP95LatencyRatio
        self.failureLimit = failureLimit
        self.promotionSteps = promotionSteps
    }
}

// MARK: - Errors

/// One reason a traffic file was refused, with the line and key it is about.
public struct TrafficConfigurationProblem: Sendable, Equatable, Codable, CustomStringConvertible {
    /// File name as given to the parser (usually the last path component).
    public var file: String
    /// 1-based line, when known.
    public var line: Int?
    /// Dotted key path, e.g. `routes.moderation.variants[1].weight`.
    public var key: String
    public var message: String

    public init(file: String, line: Int?, key: String, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return key.isEmpty ? "\(location): \(message)" : "\(location): \(key): \(message)"
    }
}

/// A traffic file that was refused; it holds every problem found.
public struct TrafficConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var problems: [TrafficConfigurationProblem]

    public init(problems: [TrafficConfigurationProblem]) {
        self.problems = problems
    }

    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}

/// Tells whether Triton reports a model (and version) ready. The server builds it
/// from the Triton client; `nil` version means "the model's default version".
public typealias VariantReadinessCheck = @Sendable (_ model: String, _ version: String?) async -> Bool

// MARK: - Parsing

extension TrafficConfiguration {
    /// Parses and validates a traffic file's content. Throws `TrafficConfigurationError`
    /// naming the line and key of every problem. Does not check Triton readiness; see
    /// `load(data:fileName:readiness:)`.
    public static func parse(data: Data, fileName: String = "traffic.yaml") throws -> TrafficConfiguration {
        guard let text = String(data: data, encoding: .utf8) else {
            throw TrafficConfigurationError(problems: [
                .init(file: fileName, line: nil, key: "", message: "file is not valid UTF-8")
            ])
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw TrafficConfigurationError(problems: [Self.problem(from: error, fileName: fileName)])
        } catch {
            throw TrafficConfigurationError(problems: [
                .init(file: fileName, line: nil, key: "", message: "YAML error")
            ])
        }
        var reader = TrafficFileReader(fileName: fileName)
        let routes = reader.readRoot(root)
        if !reader.problems.isEmpty {
            throw TrafficConfigurationError(problems: reader.problems)
        }
        return TrafficConfiguration(routes: routes, revision: revision(of: data))
    }

    /// Parses, validates, and asks `readiness` about every variant's model/version.
    public static func load(
        data: Data, fileName: String = "traffic.yaml", readiness: VariantReadinessCheck?
    ) async throws -> TrafficConfiguration {
        let configuration = try parse(data: data, fileName: fileName)
        guard let readiness else { return configuration }
        // Line numbers for the readiness messages come from a second, cheap walk.
        let lines = (try? Yams.compose(yaml: String(decoding: data, as: UTF8.self))).flatMap { $0 }
        var problems: [TrafficConfigurationProblem] = []
        for routeName in configuration.routeNames {
            guard let route = configuration.routes[routeName] else { continue }
            for (index, variant) in route.variants.enumerated() {
                if await readiness(variant.model, variant.version) { continue }
                let versionText = variant.version.map { " version \($0)" } ?? ""
                problems.append(.init(
                    file: fileName,
                    line: lines.flatMap { modelLine(in: $0, route: routeName, index: index) },
                    key: "routes.\(routeName).variants[\(index)].model",
                    message: "model '\(variant.model)'\(versionText) is not ready in Triton"
                ))
            }
        }
        if !problems.isEmpty { throw TrafficConfigurationError(problems: problems) }
        return configuration
    }

    private static func modelLine(in root: Node, route: String, index: Int) -> Int? {
        guard let variants = root.mapping?["routes"]?.mapping?[route]?.mapping?["variants"]?.sequence,
              index < variants.count else { return nil }
        let variant = variants[index]
        return variant.mapping?["model"]?.mark?.line ?? variant.mark?.line
    }

    private static func problem(from error: YamlError, fileName: String) -> TrafficConfigurationProblem {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
             .composer(_, let problem, let mark, _):
            return .init(file: fileName, line: mark.line, key: "", message: "YAML syntax error: \(problem)")
        case .reader(let problem, _, _, _):
            return .init(file: fileName, line: nil, key: "", message: "YAML reader error: \(problem)")
        default:
            return .init(file: fileName, line: nil, key: "", message: "YAML error")
        }
    }
}

/// Walks the composed YAML node tree, so each problem carries its line.
private struct TrafficFileReader {
    let fileName: String
    var problems: [TrafficConfigurationProblem] = []

    init(fileName: String) {
        self.fileName = fileName
    }

    mutating func fail(_ node: Node?, _ key: String, _ message: String) {
        problems.append(.init(file: fileName, line: node?.mark?.line, key: key, message: message))
    }

    /// Returns the mapping's pairs by key, refusing duplicates and keys not in `allowed`.
    mutating func fields(_ node: Node, _ path: String, allowed: Set<String>) -> [String: (key: Node, value: Node)]? {
        guard let mapping = node.mapping else {
            fail(node, path, "must be a mapping")
            return nil
        }
        var result: [String: (key: Node, value: Node)] = [:]
        for pair in mapping {
            guard let name = pair.key.scalar?.string else {
                fail(pair.key, path, "keys must be plain strings")
                continue
            }
            let keyPath = path.isEmpty ? name : "\(path).\(name)"
            if !allowed.contains(name) {
                let known = allowed.sorted().joined(separator: ", ")
                fail(pair.key, keyPath, "unknown key (allowed: \(known))")
                continue
            }
            if result[name] != nil {
                fail(pair.key, keyPath, "duplicate key")
                continue
            }
            result[name] = pair
        }
        return result
    }

    mutating func string(_ node: Node, _ path: String, pattern: Bool = true) -> String? {
        guard let scalar = node.scalar, node.null == nil else {
            fail(node, path, "must be a string")
            return nil
        }
        let value = scalar.string
        if value.isEmpty {
            fail(node, path, "must not be empty")
            return nil
        }
        if pattern && !Self.isSafeName(value) {
            fail(node, path, "must match [A-Za-z0-9_.-]+ and not be '.' or '..'")
            return nil
        }
        return value
    }

    mutating func number(_ node: Node, _ path: String) -> Double? {
        guard node.scalar != nil, let value = node.float, value.isFinite else {
            fail(node, path, "must be a number")
            return nil
        }
        return value
    }

    mutating func integer(_ node: Node, _ path: String) -> Int? {
        guard node.scalar != nil, let value = node.int else {
            fail(node, path, "must be an integer")
            return nil
        }
        return value
    }

    static func isSafeName(_ value: String) -> Bool {
        guard value != ".", value != "..", value.utf8.count <= 128 else { return false }
        return value.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2E || byte == 0x2D
        }
    }

    mutating func readRoot(_ root: Node?) -> [RouteConfiguration] {
        guard let root else {
            fail(nil, "", "file is empty; expected a 'routes' mapping")
            return []
        }
        guard let top = fields(root, "", allowed: ["routes"]) else { return [] }
        guard let routesPair = top["routes"] else {
            fail(root, "routes", "missing (at least one route is required)")
            return []
        }
        guard let routes = routesPair.value.mapping, !routes.isEmpty else {
            fail(routesPair.value, "routes", "must be a non-empty mapping of route names")
            return []
        }
        var result: [RouteConfiguration] = []
        var seen: Set<String> = []
        for pair in routes {
            guard let name = string(pair.key, "routes") else { continue }
            let path = "routes.\(name)"
            if !seen.insert(name).inserted {
                fail(pair.key, path, "duplicate route")
                continue
            }
            if let route = readRoute(pair.value, name: name, path: path) {
                result.append(route)
            }
        }
        return result
    }

    mutating func readRoute(_ node: Node, name: String, path: String) -> RouteConfiguration? {
        guard let map = fields(node, path, allowed: ["variants", "stickiness", "mirror", "canary"]) else { return nil }
        let before = problems.count
        var variants: [VariantConfiguration] = []
        var variantNodes: [String: Node] = [:]
        if let pair = map["variants"] {
            if let sequence = pair.value.sequence, !sequence.isEmpty {
                for (index, item) in sequence.enumerated() {
                    let itemPath = "\(path).variants[\(index)]"
                    guard let variant = readVariant(item, path: itemPath) else { continue }
                    if variantNodes[variant.name] != nil {
                        fail(item.mapping?["name"] ?? item, "\(itemPath).name", "duplicate variant name '\(variant.name)'")
                        continue
                    }
                    variantNodes[variant.name] = item
                    variants.append(variant)
                }
                if problems.count == before, variants.allSatisfy({ $0.weight == 0 }) {
                    fail(pair.value, "\(path).variants", "all weights are zero; at least one variant must have a weight above 0")
                }
            } else {
                fail(pair.value, "\(path).variants", "must be a non-empty list")
            }
        } else {
            fail(node, "\(path).variants", "missing")
        }

        var stickiness = Stickiness.subject
        if let pair = map["stickiness"] {
            stickiness = readStickiness(pair.value, path: "\(path).stickiness") ?? .subject
        }

        var mirror: MirrorConfiguration?
        if let pair = map["mirror"] {
            mirror = readMirror(pair.value, path: "\(path).mirror", variants: variantNodes)
        }

        var canary: CanaryConfiguration?
        if let pair = map["canary"] {
            canary = readCanary(pair.value, path: "\(path).canary", variants: variantNodes)
        }
        guard problems.count == before else { return nil }
        return RouteConfiguration(name: name, variants: variants, stickiness: stickiness, mirror: mirror, canary: canary)
    }

    mutating func readVariant(_ node: Node, path: String) -> VariantConfiguration? {
        guard let map = fields(node, path, allowed: ["name", "model", "version", "weight"]) else { return nil }
        let before = problems.count
        var name: String?
        var model: String?
        var version: String?
        var weight: Double?
        if let pair = map["name"] { name = string(pair.value, "\(path).name") } else { fail(node, "\(path).name", "missing") }
        if let pair = map["model"] { model = string(pair.value, "\(path).model") } else { fail(node, "\(path).model", "missing") }
        if let pair = map["version"] {
            if let text = pair.value.scalar?.string, !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
               text.utf8.count <= 18 {
                version = text
            } else {
                fail(pair.value, "\(path).version", "must be a positive integer (a Triton model version)")
            }
        }
        if let pair = map["weight"] {
            if let value = number(pair.value, "\(path).weight") {
                if value < 0 {
                    fail(pair.value, "\(path).weight", "must be ≥ 0")
                } else {
                    weight = value
                }
            }
        } else {
            fail(node, "\(path).weight", "missing")
        }
        guard problems.count == before, let name, let model, let weight else { return nil }
        return VariantConfiguration(name: name, model: model, version: version, weight: weight)
    }

    mutating func readStickiness(_ node: Node, path: String) -> Stickiness? {
        if let text = node.scalar?.string {
            switch text {
            case "subject": return .subject
            case "none": return Stickiness.none
            default:
                fail(node, path, "must be 'subject', 'none' or a mapping {header: NAME}")
                return nil
            }
        }
        guard let map = fields(node, path, allowed: ["header"]) else { return nil }
        guard let pair = map["header"] else {
            fail(node, "\(path).header", "missing")
            return nil
        }
        guard let header = string(pair.value, "\(path).header") else { return nil }
        return .header(header.lowercased())
    }

    mutating func readMirror(_ node: Node, path: String, variants: [String: Node]) -> MirrorConfiguration? {
        guard let map = fields(node, path, allowed: ["variant", "fraction"]) else { return nil }
        let before = problems.count
        var variant: String?
        var fraction = 1.0
        if let pair = map["variant"] {
            if let name = string(pair.value, "\(path).variant") {
                if variants[name] == nil {
                    fail(pair.value, "\(path).variant", "names no variant of this route ('\(name)')")
                } else {
                    variant = name
                }
            }
        } else {
            fail(node, "\(path).variant", "missing")
        }
        if let pair = map["fraction"], let value = number(pair.value, "\(path).fraction") {
            if value < 0 || value > 1 {
                fail(pair.value, "\(path).fraction", "must be between 0 and 1")
            } else {
                fraction = value
            }
        }
        guard problems.count == before, let variant else { return nil }
        return MirrorConfiguration(variant: variant, fraction: fraction)
    }

    mutating func readCanary(_ node: Node, path: String, variants: [String: Node]) -> CanaryConfiguration? {
        let allowed: Set<String> = [
            "candidate", "baseline", "window_seconds", "min_requests", "max_error_rate",
            "max_p95_latency_ratio", "failure_limit", "promotion_steps",
        ]
        guard let map = fields(node, path, allowed: allowed) else { return nil }
        let before = problems.count
        var names: [String: String] = [:]
        for role in ["candidate", "baseline"] {
            guard let pair = map[role] else {
                fail(node, "\(path).\(role)", "missing")
                continue
            }
            guard let name = string(pair.value, "\(path).\(role)") else { continue }
            if variants[name] == nil {
                fail(pair.value, "\(path).\(role)", "names no variant of this route ('\(name)')")
            } else {
                names[role] = name
            }
        }
        if let candidate = names["candidate"], candidate == names["baseline"] {
            fail(map["baseline"]?.value, "\(path).baseline", "must differ from the candidate")
        }
        var config = CanaryConfiguration(candidate: names["candidate"] ?? "", baseline: names["baseline"] ?? "")
        if let pair = map["window_seconds"], let value = number(pair.value, "\(path).window_seconds") {
            if value <= 0 { fail(pair.value, "\(path).window_seconds", "must be > 0") } else { config.windowSeconds = value }
        }
        if let pair = map["min_requests"], let value = integer(pair.value, "\(path).min_requests") {
            if value < 1 { fail(pair.value, "\(path).min_requests", "must be ≥ 1") } else { config.minRequests = value }
        }
        if let pair = map["max_error_rate"], let value = number(pair.value, "\(path).max_error_rate") {
            if value < 0 || value > 1 {
                fail(pair.value, "\(path).max_error_rate", "must be between 0 and 1")
            } else {
                config.maxErrorRate = value
            }
        }
        if let pair = map["max_p95_latency_ratio"] {
            if pair.value.null != nil {
                config.maxP95LatencyRatio = nil
            } else if let value = number(pair.value, "\(path).max_p95_latency_ratio") {
                if value <= 0 {
                    fail(pair.value, "\(path).max_p95_latency_ratio", "must be > 0")
                } else {
                    config.maxP95LatencyRatio = value
                }
            }
        }
        if let pair = map["failure_limit"], let value = integer(pair.value, "\(path).failure_limit") {
            if value < 1 { fail(pair.value, "\(path).failure_limit", "must be ≥ 1") } else { config.failureLimit = value }
        }
        if let pair = map["promotion_steps"] {
            if let sequence = pair.value.sequence, !sequence.isEmpty {
                var steps: [Double] = []
                for (index, item) in sequence.enumerated() {
                    let itemPath = "\(path).promotion_steps[\(index)]"
                    guard let value = number(item, itemPath) else { continue }
                    if value < 0 {
                        fail(item, itemPath, "must be ≥ 0")
                    } else if let last = steps.last, value <= last {
                        fail(item, itemPath, "steps must increase")
                    } else {
                        steps.append(value)
                    }
                }
                config.promotionSteps = steps
            } else {
                fail(pair.value, "\(path).promotion_steps", "must be a non-empty list of weights")
            }
        }
        guard problems.count == before else { return nil }
        return config
    }
}
