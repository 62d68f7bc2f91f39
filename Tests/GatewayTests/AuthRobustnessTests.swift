import Foundation
import Testing

@testable import Gateway

@Suite("Auth: parser and robustness")
struct AuthRobustnessTests {
    let fixture: AuthFixture
    init() async throws { fixture = try await AuthFixture.shared() }

    private func parse(_ text: String, depth: Int = 8) -> TokenJSON? {
        try? TokenJSONParser.parse(Array(text.utf8), limits: .init(maxBytes: 4096, maxDepth: depth))
    }

    @Test("the token JSON parser keeps integers apart and refuses what RFC 8259 refuses")
    func jsonParser() {
        #expect(parse("1800000000") == .integer(1_800_000_000))
        #expect(parse("-0") == .integer(0))
        #expect(parse("1.5") == .number(1.5))
        #expect(parse("1e3") == .number(1000))
        #expect(parse("99999999999999999999") == .number(1e20))  // beyond Int64: not an integer NumericDate
        #expect(parse(#"{"a":[true,false,null],"b":"x"}"#) == .object(["a": .array([.bool(true), .bool(false), .null]), "b": .string("x")]))
        for bad in [
            "01", "1.", ".5", "+1", "1e", "1e400", "NaN", "Infinity", "tru", "nul", #"{"a":1,}"#, "[1,]", #"{"a" 1}"#, #"{'a':1}"#,
            "\"a\nb\"", #""\x""#, #""\u12""#, #""\udc00""#, "{} {}", "", " ", #"{"a":1,"a":1}"#,
        ] {
            #expect(parse(bad) == nil, "\(bad.debugDescription) was accepted")
        }
        #expect(parse("[[[[1]]]]", depth: 4) != nil)
        #expect(parse("[[[[[1]]]]]", depth: 4) == nil)
        // Invalid UTF-8 inside a string is refused.
        #expect((try? TokenJSONParser.parse([0x22, 0xC3, 0x28, 0x22], limits: .init(maxBytes: 10, maxDepth: 2))) == nil)
    }

    @Test("random changes to a valid token never crash and are never accepted")
    func randomMutations() throws {
        let original = try fixture.token(alg: "HS256", kid: "dev")
        _ = expectAuthAccepted(fixture.authenticate(original))
        var generator = AuthSeededGenerator(seed: 0x5EED)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".utf8)
        var accepted = 0
        for _ in 0..<3000 {
            var bytes = Array(original.utf8)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] = alphabet.randomElement(using: &generator) ?? 0
                case 1: bytes.remove(at: position)
                default: bytes.insert(alphabet.randomElement(using: &generator) ?? 0, at: position)
                }
                if bytes.isEmpty { bytes = [UInt8(ascii: "x")] }
            }
            let mutated = String(decoding: bytes, as: UTF8.self)
            guard mutated != original else { continue }
            if case .success = fixture.authenticate(mutated) { accepted += 1 }
        }
        #expect(accepted == 0)
    }

    @Test("arbitrary bytes in the header are refused without a crash")
    func arbitraryHeaders() {
        var generator = AuthSeededGenerator(seed: 42)
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<200, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let header = "Bearer " + String(decoding: bytes, as: UTF8.self)
            let result = fixture.authenticator.authenticate(authorizationHeader: header, now: AuthFixture.now)
            #expect(result.authFailureStatus == 401)
        }
    }

    @Test("concurrent authentication while keys are reloaded")
    func concurrentReload() async throws {
        let tokens = try ["rsa-1", "ec-1", "dev", "jwks-rsa", "jwks-ec"].map { kid in
            try fixture.token(alg: ["ec-1": "ES256", "jwks-ec": "ES256", "dev": "HS256"][kid] ?? "RS256", kid: kid)
        }
        let authenticator = try JWTAuthenticator(configuration: fixture.configuration, baseDirectory: fixture.directory)
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for _ in 0..<5 { try authenticator.reloadKeys() }
                return 0
            }
            for worker in 0..<4 {
                group.addTask {
                    var failures = 0
                    for round in 0..<50 {
                        let token = tokens[(worker + round) % tokens.count]
                        if case .failure = authenticator.authenticate(authorizationHeader: "Bearer " + token, now: AuthFixture.now) {
                            failures += 1
                        }
                    }
                    return failures
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(failures == 0)
    }
}

/// SplitMix64, so failures reproduce.
struct AuthSeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}
