import Foundation
@testable import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// A peer that keeps failing authentication (forged RS256 tokens, no token at all) is
/// refused with 429 before any signature is checked, while tokens already accepted
/// keep working and other peers are unaffected. Live: the peer is the socket's address.
@Suite("Auth: failed authentications are limited per peer")
struct AuthFailureLimitTests {
    static let burst = 5

    /// Claims valid at the real clock (the live gateway checks them against `Date()`).
    static func liveClaims() -> [String: String?] {
        let now = Int(Date().timeIntervalSince1970)
        return ["iat": "\(now - 5)", "nbf": "\(now - 5)", "exp": "\(now + 600)"]
    }

    func withGateway(
        listen: String? = nil, _ body: @Sendable (any TestClientProtocol, Int, AuthFixture) async throws -> Void
    ) async throws {
        let fixture = try await AuthFixture.shared()
        let setup = try TestSetup()
        // Refill so slow (one failure per 1000 s) that no test run, however loaded, sees a refill.
        let configuration = try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: [
            "auth": """
                auth:
                  issuers: ["\(AuthFixture.issuer)"]
                  audiences: [\(AuthFixture.audience)]
                  keys:
                    - kid: rsa-1
                      algorithm: RS256
                      pem_file: \(fixture.directory.appendingPathComponent("rsa.pub").path)
                  roles:
                    client:
                      permissions: [moderate, infer]
                      models: [moderation]
                    scraper:
                      permissions: [metrics]

                """,
            "auth_failure_limit": "auth_failure_limit:\n  enabled: true\n  rate_per_second: 0.001\n  burst: \(Self.burst)\n",
        ].merging(listen.map { ["listen": $0] } ?? [:]) { $1 })
        let app = try buildApplication(configuration: configuration, parts: GatewayParts(transport: RecordingTransport()), logger: quietLogger())
        try await app.test(.live) { client in try await body(client, client.port ?? 0, fixture) }
    }

    func forged(_ fixture: AuthFixture) throws -> String {
        let signature = AuthFixture.base64URL((0..<256).map { _ in UInt8.random(in: 0...255) })
        return try fixture.token(claims: Self.liveClaims(), signer: .raw(signature))
    }

    func get(_ client: any TestClientProtocol, token: String?) async throws -> TestResponse {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await client.execute(uri: "/v2/models/moderation", method: .get, headers: headers)
    }

    @Test("forged RS256 tokens: the burst is verified and refused with 401, then 429 before verification; accepted tokens and other peers are unaffected")
    func forgedTokenFlood() async throws {
        try await withGateway { client, port, fixture in
            let valid = try fixture.token(claims: Self.liveClaims())
            #expect(try await get(client, token: valid).status == .ok, "a valid RS256 token is accepted (and remembered)")
            // Prometheus' token (/metrics needs the metrics permission), accepted before the flood.
            var scrapeClaims = Self.liveClaims()
            scrapeClaims["sub"] = "\"prometheus\""
            scrapeClaims["roles"] = "[\"scraper\"]"
            let scrape = fields([(.authorization, "Bearer \(try fixture.token(claims: scrapeClaims))")])
            #expect(try await client.execute(uri: "/metrics", method: .get, headers: scrape).status == .ok)

            var statuses: [Int] = []
            for _ in 0..<20 {
                let response = try await get(client, token: try forged(fixture))
                statuses.append(Int(response.status.code))
                if response.status == .tooManyRequests {
                    #expect(response.headers[.contentType] == "application/problem+json")
                    let problem = try response.problem()
                    #expect(problem.status == 429)
                    #expect(problem.instance == response.headers[.requestIDHeader])
                    #expect(Int(response.headers[.retryAfter] ?? "") ?? 0 >= 1, "Retry-After in whole seconds")
                }
            }
            #expect(statuses == Array(repeating: 401, count: Self.burst) + Array(repeating: 429, count: 20 - Self.burst), "\(statuses)")

            // Only the burst reached the signature check: the rest were refused before it.
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: scrape).text
            #expect(metrics.contains("gateway_auth_failures_total{reason=\"bad_signature\"} \(Self.burst)\n"),
                    "\(metrics.split(separator: "\n").filter { $0.contains("auth_failures_total{") })")
            #expect(metrics.contains("gateway_auth_failures_total{reason=\"peer_limited\"} \(20 - Self.burst)\n"))

            // Requests without a token from the limited peer are refused the same way.
            #expect(try await get(client, token: nil).status == .tooManyRequests)
            // A token this gateway already accepted still works from the limited peer.
            #expect(try await get(client, token: valid).status == .ok)
            // Public endpoints stay open to it.
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)

            // Another peer address is not limited by this one's failures.
            let other = try RawSocket(port: port, source: "127.0.0.2")
            other.send("GET /v2/models/moderation HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(try forged(fixture))\r\n\r\n")
            let answer = await other.readResponse() ?? ""
            #expect(answer.hasPrefix("HTTP/1.1 401"), "another peer's forged token is checked: \(answer.prefix(40))")
        }
    }

    @Test("a request on a limited peer's connection whose answer is refused keeps the connection usable")
    func keepAliveAfterRefusal() async throws {
        try await withGateway { _, port, fixture in
            let socket = try RawSocket(port: port)
            var lastStatus = ""
            for _ in 0..<(Self.burst + 2) {
                // A body too: a refusal must consume it, or the next request would be read from its bytes.
                socket.send("POST /v2/models/moderation/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(try forged(fixture))\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                lastStatus = String((await socket.readResponse() ?? "").prefix(12))
            }
            #expect(lastStatus == "HTTP/1.1 429")
            socket.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let health = await socket.readResponse() ?? ""
            #expect(health.hasPrefix("HTTP/1.1 200"), "the connection still serves: \(health.prefix(40))")
        }
    }

    /// Sends `count` requests with forged tokens from `source`, each with `forwardedFor`
    /// as `X-Forwarded-For`, on one connection; returns the statuses.
    func forgedStatuses(port: Int, source: String, forwardedFor: String?, count: Int, fixture: AuthFixture) async throws -> [Int] {
        let socket = try RawSocket(port: port, source: source)
        var statuses: [Int] = []
        for _ in 0..<count {
            let forwarded = forwardedFor.map { "X-Forwarded-For: \($0)\r\n" } ?? ""
            socket.send("GET /v2/models/moderation HTTP/1.1\r\nHost: x\r\n\(forwarded)Authorization: Bearer \(try forged(fixture))\r\n\r\n")
            let answer = await socket.readResponse() ?? ""
            statuses.append(Int(answer.dropFirst("HTTP/1.1 ".count).prefix(3)) ?? 0)
        }
        return statuses
    }

    @Test("behind a trusted proxy the limit is per client (X-Forwarded-For); from any other peer the header is ignored")
    func trustedProxyClientAddress() async throws {
        try await withGateway(listen: "listen:\n  host: 127.0.0.1\n  port: 0\n  trusted_proxies: [127.0.0.1/32]\n") { _, port, fixture in
            let limited = Array(repeating: 401, count: Self.burst) + [429, 429]
            // Through the proxy (127.0.0.1): one client uses up its budget ...
            let first = try await forgedStatuses(port: port, source: "127.0.0.1", forwardedFor: "203.0.113.9, 198.51.100.7", count: Self.burst + 2, fixture: fixture)
            #expect(first == limited)
            // ... the next client behind the same proxy is checked, not refused; the proxy itself is not limited.
            let next = try await forgedStatuses(port: port, source: "127.0.0.1", forwardedFor: "198.51.100.8", count: 1, fixture: fixture)
            #expect(next == [401])
            // The address the proxy saw is the client: the left part of the header is the client's own claim.
            let claimed = try await forgedStatuses(port: port, source: "127.0.0.1", forwardedFor: "198.51.100.8, 198.51.100.7", count: 1, fixture: fixture)
            #expect(claimed == [429])
            // A peer that is not a trusted proxy cannot pick its address with the header.
            let direct = try await forgedStatuses(port: port, source: "127.0.0.2", forwardedFor: "192.0.2.1", count: Self.burst + 1, fixture: fixture)
            #expect(direct == Array(repeating: 401, count: Self.burst) + [429])
            let spoofed = try await forgedStatuses(port: port, source: "127.0.0.2", forwardedFor: "192.0.2.2", count: 1, fixture: fixture)
            #expect(spoofed == [429])
        }
    }

    @Test("the limit groups IPv6 peers by /64 (one host has a whole /64) and IPv4-mapped addresses as IPv4")
    func peerGrouping() {
        #expect(PeerAddress.limitKey("2001:db8:1:2:aaaa::1") == PeerAddress.limitKey("2001:db8:1:2:bbbb:cccc:dddd:2"))
        #expect(PeerAddress.limitKey("2001:db8:1:2::1") != PeerAddress.limitKey("2001:db8:1:3::1"))
        #expect(PeerAddress.limitKey("::ffff:192.0.2.1") == "192.0.2.1")
        #expect(PeerAddress.limitKey("192.0.2.1") == "192.0.2.1")
        #expect(PeerAddress.limitKey("192.0.2.1") != PeerAddress.limitKey("192.0.2.2"))
        let counter = PeerConnectionCounter(limit: 2, totalLimit: 100)
        #expect(counter.open(PeerAddress.limitKey("2001:db8::1")))
        #expect(counter.open(PeerAddress.limitKey("2001:db8::2")))
        #expect(!counter.open(PeerAddress.limitKey("2001:db8::3")), "a third address of the same /64 is over the per-peer cap")
        #expect(counter.open(PeerAddress.limitKey("2001:db8:0:1::1")))
    }

    @Test("trusted proxies: blocks parse or are refused at load; the client is the first untrusted hop from the right")
    func trustedProxyRules() throws {
        let blocks = ["10.0.0.0/8", "fd00::/8", "192.0.2.5"].compactMap(PeerAddress.Block.init)
        #expect(blocks.count == 3)
        for bad in ["10.0.0.0/33", "10.0.0/8", "proxy.local", "fd00::/129", "", "10.0.0.0/8/1"] {
            #expect(PeerAddress.Block(bad) == nil, "\(bad)")
        }
        func client(_ peer: String, _ header: [String]) -> String {
            PeerAddress.clientAddress(peer: peer, forwardedFor: header, trusted: blocks)
        }
        #expect(client("10.1.2.3", ["198.51.100.7"]) == "198.51.100.7")
        #expect(client("10.1.2.3", ["198.51.100.6, 198.51.100.7, 10.9.9.9"]) == "198.51.100.7", "trusted hops are skipped")
        #expect(client("10.1.2.3", ["198.51.100.6", "198.51.100.7"]) == "198.51.100.7", "several header lines read as one list")
        #expect(client("10.1.2.3", ["198.51.100.7, junk"]) == "10.1.2.3", "an entry that is no address stops at the last good hop")
        #expect(client("10.1.2.3", ["::ffff:198.51.100.7"]) == "198.51.100.7")
        #expect(client("10.1.2.3", []) == "10.1.2.3")
        #expect(client("203.0.113.1", ["198.51.100.7"]) == "203.0.113.1", "an untrusted peer's header is ignored")
        #expect(client("fd12::1", ["2001:db8::9"]) == "2001:db8::9")

        let setup = try TestSetup()
        #expect(throws: ConfigurationError.self) {
            try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: [
                "listen": "listen:\n  host: 127.0.0.1\n  port: 0\n  trusted_proxies: [10.0.0.0/33]\n",
            ])
        }
    }

    @Test("configuration: the limit is on by default and its values are checked")
    func configuration() throws {
        let setup = try TestSetup()
        let defaults = try setup.configuration(tritonURL: "http://127.0.0.1:9")
        #expect(defaults.authFailureLimit.enabled)
        #expect(defaults.authFailureLimit.burst >= 1)
        #expect(throws: ConfigurationError.self) {
            try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: [
                "auth_failure_limit": "auth_failure_limit:\n  rate_per_second: 0\n",
            ])
        }
    }
}
