#if DEBUG
import Crypto
import Foundation

/// What the libFuzzer targets call (Tests/Fuzz/GatewayFuzz, built by `scripts/fuzz`), and what
/// the regression test replays every corpus and crash file through
/// (Tests/GatewayTests/FuzzCorpusTests.swift). Each takes arbitrary bytes and must return,
/// whatever they are: a crash, a trap or a sanitizer report is a bug in the parser.
/// Debug builds only: release builds (the image) do not carry it or its test key.
public enum FuzzTargets {
    public static let names = ["token", "kserve", "image", "traffic"]

    /// Runs the named target on `data`; false for an unknown name.
    @discardableResult
    public static func run(_ name: String, _ data: [UInt8]) -> Bool {
        switch name {
        case "token": token(data)
        case "kserve": kserve(data)
        case "image": image(data)
        case "traffic": traffic(data)
        default: return false
        }
        return true
    }

    /// The Authorization header pre-parser and the token JSON reader. The input is tried
    /// three ways: as the whole header; as the token after `Bearer `; and split at its first
    /// NUL byte into a JOSE header and a claims document that are signed with the target's
    /// HS256 key, so the claim checks behind the signature are reached too.
    public static func token(_ data: [UInt8]) {
        _ = try? TokenJSONParser.parse(data, limits: JWTAuthenticator.headerLimits)
        _ = try? TokenJSONParser.parse(data, limits: .init(maxBytes: 8192, maxDepth: JWTAuthenticator.payloadMaxDepth))
        let text = String(decoding: data, as: UTF8.self)
        _ = authenticator.authenticate(authorizationHeader: text)
        _ = authenticator.authenticate(authorizationHeader: "Bearer " + text)
        let parts = data.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 2 {
            let signingInput = JOSEBase64URL.encode(Array(parts[0])) + "." + JOSEBase64URL.encode(Array(parts[1]))
            let signature = HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: SymmetricKey(data: secret))
            _ = authenticator.authenticate(authorizationHeader: "Bearer \(signingInput).\(JOSEBase64URL.encode(Array(signature)))")
        }
    }

    /// The KServe request validator, binary tensor extension included: the first two bytes
    /// choose `Inference-Header-Content-Length` (0xFFFF: none, the whole body is JSON).
    public static func kserve(_ data: [UInt8]) {
        guard let (body, headerLength) = kserveRequest(data) else { return }
        _ = try? InferRequestValidator.validate(body: body, headerLength: headerLength, maxValues: 100_000)
    }

    /// Whether the KServe target's validator accepts `data` (the seeds must reach past it).
    public static func kserveAccepts(_ data: [UInt8]) -> Bool {
        guard let (body, headerLength) = kserveRequest(data) else { return false }
        return (try? InferRequestValidator.validate(body: body, headerLength: headerLength)) != nil
    }

    static func kserveRequest(_ data: [UInt8]) -> (body: [UInt8], headerLength: Int?)? {
        guard data.count >= 2 else { return nil }
        let selector = Int(data[0]) << 8 | Int(data[1])
        return (Array(data.dropFirst(2)), selector == 0xFFFF ? nil : selector)
    }

    /// The image sniffer and every format's header reader.
    public static func image(_ data: [UInt8]) {
        _ = ImageFormat.sniff(data)
        for format in ImageFormat.allCases {
            _ = format.dimensions(of: data)?.pixels
        }
    }

    /// The traffic file reader (YAML, then every rule of the file).
    public static func traffic(_ data: [UInt8]) {
        _ = try? TrafficConfiguration.parse(data: Data(data))
    }

    static let secret = Array("fuzzing-secret-of-32-bytes-or-more!!".utf8)

    /// An authenticator with one HS256 key. Its secret is written to a fresh private folder
    /// (mkdtemp, 0700) for the key loader, which reads it once, and the folder is removed.
    static let authenticator: JWTAuthenticator = {
        var template = Array((FileManager.default.temporaryDirectory.path + "/gateway-fuzz-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed: errno \(errno)") }
        let folder = URL(fileURLWithPath: String(cString: made))
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("secret")
        _ = FileManager.default.createFile(atPath: file.path, contents: Data(secret), attributes: [.posixPermissions: 0o600])
        let configuration = AuthConfiguration(
            issuers: ["fuzz"], audiences: ["moderation-gateway"],
            keys: [KeyConfiguration(kid: "dev", algorithm: .hs256, secretFile: file.path)],
            roles: ["client": RoleConfiguration(permissions: [.moderate])])
        do {
            return try JWTAuthenticator(configuration: configuration, baseDirectory: folder)
        } catch {
            fatalError("the fuzzing authenticator: \(error)")
        }
    }()
}
#endif
