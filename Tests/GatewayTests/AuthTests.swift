import Crypto
import Foundation
import Testing

@testable import Gateway

/// One test (or more) per row of the JWT table in SECURITY.md.
@Suite("Auth: JWT verification")
struct AuthTests {
    let fixture: AuthFixture
    init() async throws { fixture = try await AuthFixture.shared() }

    // MARK: - Accepted tokens

    @Test("valid RS256, ES256, HS256 and JWKS tokens are accepted", arguments: ["rsa-1", "ec-1", "dev", "jwks-rsa", "jwks-ec"])
    func validTokenAccepted(kid: String) throws {
        let alg = ["ec-1": "ES256", "jwks-ec": "ES256", "dev": "HS256"][kid] ?? "RS256"
        let principal = expectAuthAccepted(fixture.authenticate(try fixture.token(alg: alg, kid: kid)))
        #expect(principal?.subject == "user-42")
        #expect(principal?.issuer == AuthFixture.issuer)
        #expect(principal?.roles == ["client"])
        #expect(principal?.permissions == [.moderate, .infer])
        #expect(principal?.allowedModels == ["moderation", "text_detector"])
        #expect(principal?.expiresAt == Date(timeIntervalSince1970: Double(AuthFixture.nowSeconds + 300)))
    }

    @Test("a token without kid is verified with the only configured key, and refused when there are several")
    func missingKid() throws {
        let single = try JWTAuthenticator(
            configuration: AuthFixture.configuration(keys: [KeyConfiguration(kid: "rsa-1", algorithm: .rs256, pemFile: "rsa.pub")]),
            baseDirectory: fixture.directory)
        let token = try fixture.token(kid: nil, signer: .rs256(privateKeyPath: fixture.rsaPrivateKey))
        _ = expectAuthAccepted(single.authenticate(authorizationHeader: "Bearer " + token, now: AuthFixture.now))
        expectAuthFailure(fixture.authenticate(token), .unknownKey, token: token)
    }

    // MARK: - alg none and case games

    @Test("alg none in any spelling is refused, with or without a signature", arguments: ["none", "NoNe", "NONE"])
    func algNone(alg: String) throws {
        let unsigned = try fixture.token(alg: alg, kid: "rsa-1", signer: .raw(""))
        expectAuthFailure(fixture.authenticate(unsigned), .algorithmNotAllowed, token: unsigned)
        let noKid = try fixture.token(alg: alg, kid: nil, signer: .raw(""))
        expectAuthFailure(fixture.authenticate(noKid), .algorithmNotAllowed, token: noKid)
        let signed = try fixture.token(alg: alg, kid: "dev", signer: .hs256(fixture.secret))
        expectAuthFailure(fixture.authenticate(signed), .algorithmNotAllowed, token: signed)
    }

    @Test("a correctly signed token with an empty signature segment is refused")
    func emptySignature() throws {
        let token = try fixture.token(alg: "RS256", kid: "rsa-1", signer: .raw(""))
        expectAuthFailure(fixture.authenticate(token), .badSignature, token: token)
        let hmac = try fixture.token(alg: "HS256", kid: "dev", signer: .raw(""))
        expectAuthFailure(fixture.authenticate(hmac), .badSignature, token: hmac)
    }

    @Test("alg must match the key's pinned algorithm exactly, case included")
    func algCaseGames() throws {
        // Each is signed correctly for what libjwt would make of it (it matches case-insensitively).
        let cases: [(String, String)] = [("hs256", "dev"), ("Hs256", "dev"), ("Rs256", "rsa-1"), ("rs256", "rsa-1"), ("es256", "ec-1")]
        for (alg, kid) in cases {
            let token = try fixture.token(alg: alg, kid: kid)
            expectAuthFailure(fixture.authenticate(token), .algorithmNotAllowed, token: token)
        }
        // An algorithm that is valid but not the one pinned to the key.
        let es256OnRSAKey = try fixture.token(alg: "ES256", kid: "rsa-1", signer: .es256(fixture.ecKey))
        expectAuthFailure(fixture.authenticate(es256OnRSAKey), .algorithmNotAllowed)
        let rs384 = try fixture.token(alg: "RS384", kid: "rsa-1")
        expectAuthFailure(fixture.authenticate(rs384), .algorithmNotAllowed)
    }

    // MARK: - Algorithm confusion and bad keys

    @Test("HS256 token whose HMAC key is the configured RSA public PEM is refused")
    func algorithmConfusion() throws {
        for kid in ["rsa-1", "ec-1", "jwks-rsa"] as [String?] {
            let token = try fixture.token(alg: "HS256", kid: kid, signer: .hs256(fixture.rsaPublicPEM))
            expectAuthFailure(fixture.authenticate(token), .algorithmNotAllowed, token: token)
        }
        // Where the RSA key is the only key, a kid-less HS256 token is still refused.
        let single = try JWTAuthenticator(
            configuration: AuthFixture.configuration(keys: [KeyConfiguration(kid: "rsa-1", algorithm: .rs256, pemFile: "rsa.pub")]),
            baseDirectory: fixture.directory)
        let token = try fixture.token(alg: "HS256", kid: nil, signer: .hs256(fixture.rsaPublicPEM))
        expectAuthFailure(single.authenticate(authorizationHeader: "Bearer " + token, now: AuthFixture.now), .algorithmNotAllowed)
    }

    @Test("HS256 signed with an empty key is refused")
    func emptyHMACKey() throws {
        let token = try fixture.token(alg: "HS256", kid: "dev", signer: .hs256([]))
        expectAuthFailure(fixture.authenticate(token), .badSignature, token: token)
    }

    @Test("a token signed with another key is refused", arguments: ["rsa-1", "ec-1", "dev", "jwks-rsa", "jwks-ec"])
    func wrongKey(kid: String) throws {
        let signer: AuthFixture.Signer
        let alg: String
        switch kid {
        case "rsa-1": (alg, signer) = ("RS256", .rs256(privateKeyPath: fixture.jwksRSAPrivateKey))
        case "jwks-rsa": (alg, signer) = ("RS256", .rs256(privateKeyPath: fixture.rsaPrivateKey))
        case "ec-1": (alg, signer) = ("ES256", .es256(fixture.jwksECKey))
        case "jwks-ec": (alg, signer) = ("ES256", .es256(fixture.ecKey))
        default: (alg, signer) = ("HS256", .hs256(Array("another-secret-of-sufficient-length!".utf8)))
        }
        let token = try fixture.token(alg: alg, kid: kid, signer: signer)
        expectAuthFailure(fixture.authenticate(token), .badSignature, token: token)
    }

    @Test("one changed character anywhere in a valid token makes it fail", arguments: ["rsa-1", "ec-1", "dev"])
    func flippedByte(kid: String) throws {
        let alg = ["ec-1": "ES256", "dev": "HS256"][kid] ?? "RS256"
        let token = try fixture.token(alg: alg, kid: kid)
        _ = expectAuthAccepted(fixture.authenticate(token))
        let bytes = Array(token.utf8)
        let dots = bytes.indices.filter { bytes[$0] == UInt8(ascii: ".") }
        // Positions in the payload and across the signature, including its last character.
        let positions = [dots[0] + 5, dots[1] - 1, dots[1] + 1, dots[1] + 10, (dots[1] + bytes.count) / 2, bytes.count - 1]
        for position in positions {
            var changed = bytes
            changed[position] = changed[position] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            let tampered = String(decoding: changed, as: UTF8.self)
            let result = fixture.authenticate(tampered)
            #expect(result.authFailureStatus == 401, "changed position \(position) of \(bytes.count) was accepted")
        }
        // Cutting a signature byte, or adding one, fails too.
        #expect(fixture.authenticate(String(token.dropLast(4))).authFailureStatus == 401)
        #expect(fixture.authenticate(token + "AAAA").authFailureStatus == 401)
    }

    // MARK: - kid

    @Test(
        "kid is only looked up among configured keys",
        arguments: ["../../etc/passwd", "x' OR 1=1", "unknown", "rsa-1 ", "RSA-1", "/dev/null", "file:///etc/passwd", ""])
    func kidInjection(kid: String) throws {
        let token = try fixture.token(kid: kid, signer: .rs256(privateKeyPath: fixture.rsaPrivateKey))
        expectAuthFailure(fixture.authenticate(token), .unknownKey, token: token)
    }

    @Test("kid of the wrong JSON type is refused")
    func kidWrongType() throws {
        let token = try fixture.token(kid: nil, extraHeader: ["kid": "1"])
        expectAuthFailure(fixture.authenticate(token), .malformedToken, token: token)
    }

    // MARK: - Key URLs in the header

    @Test("jku, x5u, x5c and jwk in the header do not change which key verifies the token")
    func keyURLsIgnored() throws {
        // A valid token that carries key URLs still verifies with the configured key (nothing is fetched:
        // the addresses are unreachable and the check is immediate).
        let withURLs = try fixture.token(
            alg: "ES256", kid: "ec-1",
            extraHeader: [
                "jku": #""http://127.0.0.1:9/jwks.json""#, "x5u": #""http://127.0.0.1:9/cert.pem""#, "x5c": #"["AAAA"]"#,
            ])
        _ = expectAuthAccepted(fixture.authenticate(withURLs))

        // An attacker signs with their own key and offers it in `jwk`: refused.
        let attacker = P256.Signing.PrivateKey()
        let attackerJWK = AuthFixture.ecJWK(attacker.publicKey, kid: "ec-1")
        let forged = try fixture.token(alg: "ES256", kid: "ec-1", extraHeader: ["jwk": attackerJWK], signer: .es256(attacker))
        expectAuthFailure(fixture.authenticate(forged), .badSignature, token: forged)
        let forgedJKU = try fixture.token(
            alg: "ES256", kid: "ec-1", extraHeader: ["jku": #""https://attacker.example/jwks.json""#], signer: .es256(attacker))
        expectAuthFailure(fixture.authenticate(forgedJKU), .badSignature, token: forgedJKU)
        let noKid = try fixture.token(alg: "ES256", kid: nil, extraHeader: ["jwk": attackerJWK], signer: .es256(attacker))
        expectAuthFailure(fixture.authenticate(noKid), .unknownKey, token: noKid)
    }

    @Test("key URLs in the header are never fetched")
    func keyURLsNeverFetched() async throws {
        let listener = try AuthLoopbackListener()
        defer { listener.close() }
        let url = "\"http://127.0.0.1:\(listener.port)/keys\""
        let attacker = P256.Signing.PrivateKey()
        let tokens = [
            try fixture.token(alg: "ES256", kid: "ec-1", extraHeader: ["jku": url, "x5u": url]),
            try fixture.token(alg: "ES256", kid: "ec-1", extraHeader: ["jku": url, "x5u": url], signer: .es256(attacker)),
            try fixture.token(alg: "ES256", kid: nil, extraHeader: ["jku": url], signer: .es256(attacker)),
        ]
        for token in tokens { _ = fixture.authenticate(token) }
        // Give a (wrong) background fetch time to connect; a suspension, not a blocked thread.
        try await Task.sleep(for: .milliseconds(200))
        #expect(listener.pendingConnection() == false, "something connected to the jku/x5u address")
    }

    // MARK: - crit, typ, duplicates

    @Test("a header with crit is refused", arguments: [#"["anything"]"#, #"["exp"]"#, "[]", "true"])
    func crit(value: String) throws {
        let token = try fixture.token(alg: "HS256", kid: "dev", extraHeader: ["crit": value, "anything": "1"])
        expectAuthFailure(fixture.authenticate(token), .crit, token: token)
    }

    @Test("typ other than JWT is refused (libjwt would refuse it too)")
    func typ() throws {
        let token = try fixture.token(extraHeader: ["typ": #""foo""#])
        expectAuthFailure(fixture.authenticate(token), .malformedToken, token: token)
        _ = expectAuthAccepted(fixture.authenticate(try fixture.token(extraHeader: ["typ": #""jwt""#])))
    }

    @Test("duplicate member names are refused in header and payload")
    func duplicateMembers() throws {
        // jansson keeps the last duplicate: libjwt would read HS256 here and use the RSA PEM as HMAC key.
        let header = #"{"alg":"RS256","kid":"rsa-1","alg":"HS256"}"#
        let claims = AuthFixture.json(AuthFixture.validClaims())
        let token = try AuthFixture.token(headerJSON: header, claimsJSON: claims, signer: .hs256(fixture.rsaPublicPEM))
        expectAuthFailure(fixture.authenticate(token), .malformedToken, token: token)

        let payload = String(claims.dropLast()) + #","exp":\#(AuthFixture.nowSeconds + 999999)}"#
        let duplicateExp = try AuthFixture.token(
            headerJSON: #"{"alg":"HS256","kid":"dev"}"#, claimsJSON: payload, signer: .hs256(fixture.secret))
        expectAuthFailure(fixture.authenticate(duplicateExp), .malformedToken, token: duplicateExp)
    }

    // MARK: - Claims

    @Test("a token without exp is refused")
    func missingExp() throws {
        let token = try fixture.token(claims: ["exp": nil])
        expectAuthFailure(fixture.authenticate(token), .missingExp, token: token)
    }

    @Test("exp and nbf are enforced with the configured leeway of 30 s")
    func expiryAndNotBefore() throws {
        let now = AuthFixture.nowSeconds
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["exp": "\(now - 31)"])), .expired)
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["exp": "\(now - 30)"])), .expired)
        _ = expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["exp": "\(now - 29)"])))
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["exp": "\(now - 86400 * 365)"])), .expired)

        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["nbf": "\(now + 31)"])), .notYetValid)
        _ = expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["nbf": "\(now + 29)"])))

        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["iat": "\(now + 120)"])), .issuedInFuture)
        _ = expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["iat": "\(now + 20)"])))
    }

    @Test("a token verified before is still checked for expiry on every use")
    func rememberedTokenStillExpires() throws {
        for (alg, kid) in [("RS256", "rsa-1"), ("ES256", "ec-1"), ("HS256", "dev")] {
            let token = try fixture.token(alg: alg, kid: kid, claims: ["jti": "\"remembered\"", "nbf": "\(AuthFixture.nowSeconds)"])
            for _ in 0..<3 { #expect(expectAuthAccepted(fixture.authenticate(token))?.subject == "user-42") }
            let later = AuthFixture.now.addingTimeInterval(331)
            expectAuthFailure(fixture.authenticator.authenticate(authorizationHeader: "Bearer " + token, now: later), .expired)
            let earlier = AuthFixture.now.addingTimeInterval(-31)
            expectAuthFailure(fixture.authenticator.authenticate(authorizationHeader: "Bearer " + token, now: earlier), .notYetValid)
            _ = expectAuthAccepted(fixture.authenticate(token))
        }
    }

    @Test("leeway zero is exact")
    func zeroLeeway() throws {
        var configuration = fixture.configuration
        configuration.leewaySeconds = 0
        let strict = try JWTAuthenticator(configuration: configuration, baseDirectory: fixture.directory)
        let token = try fixture.token(claims: ["exp": "\(AuthFixture.nowSeconds + 1)"])
        _ = expectAuthAccepted(strict.authenticate(authorizationHeader: "Bearer " + token, now: AuthFixture.now))
        expectAuthFailure(
            strict.authenticate(authorizationHeader: "Bearer " + token, now: AuthFixture.now.addingTimeInterval(1)), .expired)
    }

    @Test(
        "NumericDate claims must be JSON integers",
        arguments: [
            ("exp", #""1800000300""#), ("exp", "1800000300.0"), ("exp", "1.8000003e9"), ("exp", "true"), ("exp", "null"),
            ("exp", "[1800000300]"), ("nbf", #""1799999990""#), ("iat", "1799999990.5"),
        ])
    func claimTypes(claim: String, value: String) throws {
        let token = try fixture.token(claims: [claim: value])
        expectAuthFailure(fixture.authenticate(token), .badClaimType, token: token)
    }

    @Test("iss must be one of the configured issuers exactly")
    func issuer() throws {
        for value in [#""https://evil.test""#, #""https://issuer.test/""#, #""HTTPS://ISSUER.TEST""#] {
            expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["iss": value])), .wrongIssuer)
        }
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["iss": nil])), .wrongIssuer)
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["iss": "[\"https://issuer.test\"]"])), .badClaimType)
        let second = expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["iss": #""https://second-issuer.test""#])))
        #expect(second?.issuer == "https://second-issuer.test")
    }

    @Test("aud must contain a configured audience")
    func audience() throws {
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["aud": #"["a","b"]"#])), .wrongAudience)
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["aud": #""other""#])), .wrongAudience)
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["aud": "[]"])), .wrongAudience)
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["aud": nil])), .wrongAudience)
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["aud": #"["moderation-gateway", 1]"#])), .badClaimType)
        _ = expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["aud": #"["other","moderation-gateway"]"#])))
    }

    @Test("sub is required, a short string without control characters")
    func subject() throws {
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["sub": nil])), .missingSubject)
        for value in [#""""#, "42", #""user\r\nX-Injected: 1""#, "\"" + String(repeating: "a", count: 257) + "\""] {
            expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["sub": value])), .badClaimType)
        }
    }

    // MARK: - Size and nesting

    @Test("an Authorization header over max_token_bytes is 431 before any parsing")
    func oversizedHeader() throws {
        let junk = String(repeating: "A", count: 8192 - "Bearer ".count + 1)
        expectAuthFailure(
            fixture.authenticator.authenticate(authorizationHeader: "Bearer " + junk, now: AuthFixture.now), .oversized, status: 431)
        // A valid token padded into the claims past the limit.
        let big = try fixture.token(alg: "HS256", kid: "dev", claims: ["pad": "\"" + String(repeating: "x", count: 7000) + "\""])
        #expect(big.utf8.count > 8192)
        expectAuthFailure(fixture.authenticate(big), .oversized, status: 431)
        #expect(fixture.authenticate(big).authFailure?.wwwAuthenticate == nil)
        // Exactly at the limit is not oversized.
        let atLimit = String(repeating: "A", count: 8192 - "Bearer ".count)
        let result = fixture.authenticator.authenticate(authorizationHeader: "Bearer " + atLimit, now: AuthFixture.now)
        #expect(result.authFailureStatus == 401)
    }

    @Test("deeply nested JSON is refused before it is parsed whole")
    func deepNesting() throws {
        let depth = 2000
        let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let payload = try fixture.token(alg: "HS256", kid: "dev", claims: ["deep": nested])
        expectAuthFailure(fixture.authenticate(payload), .malformedToken, token: payload)
        // Just under the limit is fine: claims may nest a little.
        let shallow = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        _ = expectAuthAccepted(fixture.authenticate(try fixture.token(alg: "HS256", kid: "dev", claims: ["ok": shallow])))

        let deepHeader = try fixture.token(alg: "HS256", kid: "dev", extraHeader: ["x": String(repeating: "{\"a\":", count: 50) + "1" + String(repeating: "}", count: 50)])
        expectAuthFailure(fixture.authenticate(deepHeader), .malformedToken, token: deepHeader)
        // An unterminated nest (a parser that recursed first would overflow its stack here).
        let unterminated = try AuthFixture.token(
            headerJSON: #"{"alg":"HS256","kid":"dev"}"#, claimsJSON: String(repeating: "[", count: 5000), signer: .hs256(fixture.secret))
        expectAuthFailure(fixture.authenticate(unterminated), .malformedToken)
    }

    @Test("malformed base64url or JSON in the token is refused")
    func malformedToken() throws {
        let valid = try fixture.token()
        let parts = valid.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let cases = [
            "e30.\(parts[1]).\(parts[2])",  // header {} without alg
            "W10.\(parts[1]).\(parts[2])",  // header []
            "bm90IGpzb24.\(parts[1]).\(parts[2])",  // header not JSON
            "\(parts[0]).bnVsbA.\(parts[2])",  // payload null
            "\(parts[0]).A.\(parts[2])",  // payload of length 4n+1
            "\(parts[0]).\(parts[1])",  // two parts
            "\(parts[0]).\(parts[1]).\(parts[2]).x.y",  // JWE shape
            ".\(parts[1]).\(parts[2])",
        ]
        for token in cases {
            let result = fixture.authenticate(token)
            #expect(result.authFailureReason == .malformedToken, "\(token.prefix(40))")
        }
    }

    // MARK: - The header itself

    @Test("missing and malformed Authorization headers are 401")
    func malformedHeaders() throws {
        let valid = try fixture.token()
        expectAuthFailure(fixture.authenticator.authenticate(authorizationHeader: nil, now: AuthFixture.now), .missingToken)
        let malformed = [
            "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNzd29yZA==", "Basic " + valid, "Bearer  " + valid, "Bearer " + valid + " ",
            " Bearer " + valid, "Bearer\t" + valid, "Bearer " + valid + " " + valid, "Bearer " + valid + "," + valid,
            "Bearer " + valid + "\0", "Token " + valid, "Bearer\(valid)", "Bearer " + valid + "\r\nX-Evil: 1", "Bearer \"" + valid + "\"",
        ]
        for header in malformed {
            let result = fixture.authenticator.authenticate(authorizationHeader: header, now: AuthFixture.now)
            #expect(result.authFailureReason == .malformedHeader, "\(header.prefix(20))")
            #expect(result.authFailureStatus == 401)
            if case .failure(let failure) = result { #expect(failure.isUnauthorized) }
        }
        #expect(fixture.authenticator.authenticate(authorizationHeader: nil, now: AuthFixture.now).authFailure?.wwwAuthenticate == "Bearer")
        #expect(
            fixture.authenticator.authenticate(authorizationHeader: "Basic eA==", now: AuthFixture.now).authFailure?.wwwAuthenticate
                == #"Bearer error="invalid_request""#)
        #expect(fixture.authenticate(valid + "A").authFailure?.wwwAuthenticate == #"Bearer error="invalid_token""#)
        // The scheme is case-insensitive (RFC 7235).
        _ = expectAuthAccepted(fixture.authenticator.authenticate(authorizationHeader: "bearer " + valid, now: AuthFixture.now))
        _ = expectAuthAccepted(fixture.authenticator.authenticate(authorizationHeader: "BEARER " + valid, now: AuthFixture.now))
    }

    // MARK: - Roles

    @Test("a valid token with the wrong role is 403 on authorize")
    func wrongRole() throws {
        let client = try #require(expectAuthAccepted(fixture.authenticate(try fixture.token())))
        #expect(authorize(client, permission: .moderate) == nil)
        #expect(authorize(client, permission: .infer, model: "moderation") == nil)
        let adminRoute = try #require(authorize(client, permission: .admin))
        #expect(adminRoute.status == 403)
        #expect(adminRoute.reason == .forbidden)
        #expect(adminRoute.wwwAuthenticate == #"Bearer error="insufficient_scope""#)
        let otherModel = try #require(authorize(client, permission: .infer, model: "secret_model"))
        #expect(otherModel.status == 403)
        #expect(!otherModel.detail.contains("secret_model"))

        let admin = try #require(expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["roles": #"["admin"]"#]))))
        #expect(authorize(admin, permission: .admin) == nil)
        #expect(authorize(admin, permission: .infer, model: "secret_model") == nil)

        let viewer = try #require(expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["roles": #"["viewer"]"#]))))
        #expect(authorize(viewer, permission: .infer, model: "moderation")?.status == 403)
        #expect(authorize(viewer, permission: .moderate) == nil)
    }

    @Test("roles may come as a space-separated string or as scope; unknown roles grant nothing")
    func roleClaimForms() throws {
        let spaced = try #require(expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["roles": #""viewer admin""#]))))
        #expect(spaced.roles == ["viewer", "admin"])
        #expect(spaced.permissions == [.moderate, .admin, .infer])
        #expect(spaced.allowedModels == nil)

        let scope = try #require(
            expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["roles": nil, "scope": #""openid client""#]))))
        #expect(scope.roles == ["client"])
        #expect(scope.permissions == [.moderate, .infer])

        let unknown = try #require(expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["roles": #"["root","superuser"]"#]))))
        #expect(unknown.roles.isEmpty)
        #expect(unknown.permissions.isEmpty)
        #expect(authorize(unknown, permission: .moderate)?.status == 403)

        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["roles": #"{"admin":true}"#])), .badClaimType)
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["roles": #"["admin", 1]"#])), .badClaimType)
    }

    @Test("a JSON text with escapes and unicode in claims is decoded correctly")
    func escapedClaims() throws {
        let principal = try #require(
            expectAuthAccepted(fixture.authenticate(try fixture.token(claims: ["sub": #""\u00e9l\u00e8ve \ud83d\ude00 \"q\" \/""#]))))
        #expect(principal.subject == "élève 😀 \"q\" /")
        expectAuthFailure(fixture.authenticate(try fixture.token(claims: ["sub": #""\ud83d""#])), .malformedToken)
    }
}

extension Result where Failure == AuthFailure {
    var authFailureReason: AuthFailure.Reason? {
        if case .failure(let failure) = self { return failure.reason }
        return nil
    }

    var authFailure: AuthFailure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }

    var authFailureStatus: Int? {
        if case .failure(let failure) = self { return failure.status }
        return nil
    }
}
