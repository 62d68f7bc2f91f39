import Crypto
import Foundation
import Synchronization
import Logging
import Testing
import Yams

@testable import Gateway

@Suite("Auth: configuration and key files")
struct AuthKeysTests {
    let fixture: AuthFixture
    init() async throws { fixture = try await AuthFixture.shared() }

    private func loadError(_ keys: [KeyConfiguration], in directory: URL) -> AuthConfigurationError? {
        do {
            _ = try JWTAuthenticator(configuration: AuthFixture.configuration(keys: keys), baseDirectory: directory)
            return nil
        } catch let error as AuthConfigurationError {
            return error
        } catch {
            Issue.record("unexpected error type \(error)")
            return nil
        }
    }

    private func write(_ text: String, _ name: String, in directory: URL) throws {
        try writeSecret(Array(text.utf8), to: directory.appendingPathComponent(name))
    }

    @Test("the auth section decodes from YAML with snake_case keys and defaults")
    func yamlDecoding() throws {
        let yaml = """
            issuers: ["https://issuer.test"]
            audiences: [moderation-gateway]
            keys:
              - kid: dev
                algorithm: HS256
                secret_file: dev.secret
              - algorithm: RS256
                jwks_file: jwks.json
            roles:
              client:
                permissions: [moderate, infer]
                models: [moderation]
              admin:
                permissions: [admin]
            """
        let configuration = try YAMLDecoder().decode(AuthConfiguration.self, from: yaml)
        #expect(configuration.leewaySeconds == 30)
        #expect(configuration.maxTokenBytes == 8192)
        #expect(configuration.roleClaim == "roles")
        #expect(configuration.keys[0].secretFile == "dev.secret")
        #expect(configuration.keys[1].jwksFile == "jwks.json")
        #expect(configuration.keys[1].kid == nil)
        #expect(configuration.roles["client"]?.models == ["moderation"])
        #expect(configuration.roles["admin"]?.models == nil)
        let authenticator = try JWTAuthenticator(configuration: configuration, baseDirectory: fixture.directory)
        #expect(authenticator.keyIDs == ["dev", "jwks-rsa"])

        let explicit = try YAMLDecoder().decode(
            AuthConfiguration.self,
            from: yaml + "\nleeway_seconds: 5\nmax_token_bytes: 4096\nrole_claim: groups\n")
        #expect(explicit.leewaySeconds == 5)
        #expect(explicit.maxTokenBytes == 4096)
        #expect(explicit.roleClaim == "groups")
    }

    @Test("validation errors name the key")
    func validationNamesTheKey() throws {
        func error(_ change: (inout AuthConfiguration) -> Void) -> String {
            var configuration = AuthFixture.configuration()
            change(&configuration)
            do {
                try configuration.validate()
                return "valid"
            } catch {
                return error.path
            }
        }
        #expect(error { $0.leewaySeconds = 61 } == "auth.leeway_seconds")
        #expect(error { $0.leewaySeconds = -1 } == "auth.leeway_seconds")
        #expect(error { $0.issuers = [] } == "auth.issuers")
        #expect(error { $0.audiences = [""] } == "auth.audiences[0]")
        #expect(error { $0.maxTokenBytes = 10 } == "auth.max_token_bytes")
        #expect(error { $0.keys = [] } == "auth.keys")
        #expect(error { $0.keys[1].algorithm = JWTAlgorithm("none") } == "auth.keys[1].algorithm")
        #expect(error { $0.keys[1].algorithm = JWTAlgorithm("es256") } == "auth.keys[1].algorithm")
        #expect(error { $0.keys[0].secretFile = "dev.secret" } == "auth.keys[0]")  // two sources
        #expect(error { $0.keys[0] = KeyConfiguration(kid: "x", algorithm: .rs256, secretFile: "dev.secret") } == "auth.keys[0].secret_file")
        #expect(error { $0.keys[2] = KeyConfiguration(kid: "dev", algorithm: .hs256, pemFile: "rsa.pub") } == "auth.keys[2].algorithm")
        #expect(error { $0.keys[1].kid = "rsa-1" } == "auth.keys[1].kid")  // duplicate
        #expect(error { $0.keys[0].kid = nil } == "auth.keys[0].kid")
        #expect(error { $0.keys[0].kid = "bad\nkid" } == "auth.keys[0].kid")
        #expect(error { $0.roles["client"]?.permissions = [Permission("moderat")] } == "auth.roles.client.permissions[0]")
        #expect(error { $0.roles["client"]?.models = ["../x"] } == "auth.roles.client.models[0]")
        #expect(error { $0.roles = [:] } == "auth.roles")
        #expect(error { _ in } == "valid")
    }

    @Test("HS256 secrets shorter than 32 bytes, or empty, are refused at load")
    func shortSecret() throws {
        let directory = try AuthFixture.makeTemporaryDirectory()
        for (name, contents) in [("empty", ""), ("newline", "\n"), ("short", String(repeating: "s", count: 31) + "\n")] {
            try write(contents, name, in: directory)
            let error = loadError([KeyConfiguration(kid: "dev", algorithm: .hs256, secretFile: name)], in: directory)
            #expect(error?.path == "auth.keys[0].secret_file")
        }
        try write(String(repeating: "s", count: 32) + "\n", "exact", in: directory)
        #expect(loadError([KeyConfiguration(kid: "dev", algorithm: .hs256, secretFile: "exact")], in: directory) == nil)
        #expect(loadError([KeyConfiguration(kid: "dev", algorithm: .hs256, secretFile: "missing")], in: directory)?.path == "auth.keys[0].secret_file")
    }

    @Test("a secret file others can read, or a key file others can write, is refused at load with the mode and the fix")
    func keyFilePermissions() throws {
        let directory = try AuthFixture.makeTemporaryDirectory()
        let secret = directory.appendingPathComponent("dev.secret")
        try Data((String(repeating: "s", count: 40) + "\n").utf8).write(to: secret)
        func setMode(_ url: URL, _ mode: mode_t, owner: uid_t = getuid()) throws {
            #expect(chown(url.path, owner, getgid()) == 0)
            #expect(chmod(url.path, mode) == 0)
        }
        let hs256 = [KeyConfiguration(kid: "dev", algorithm: .hs256, secretFile: "dev.secret")]
        for mode: mode_t in [0o644, 0o604, 0o660, 0o620] {
            try setMode(secret, mode)
            let error = loadError(hs256, in: directory)
            #expect(error?.path == "auth.keys[0].secret_file", "mode \(String(mode, radix: 8))")
            #expect(error?.message.contains("0\(String(mode, radix: 8))") == true)
            #expect(error?.message.contains("chmod 600") == true)
        }
        try setMode(secret, 0o600)
        #expect(loadError(hs256, in: directory) == nil)
        try setMode(secret, 0o400)
        #expect(loadError(hs256, in: directory) == nil)
        // Kubernetes mounts secrets root-owned with the pod's fsGroup as group (defaultMode
        // 0440): group-readable is accepted when root owns the file, not otherwise.
        try setMode(secret, 0o440, owner: 0)
        #expect(loadError(hs256, in: directory) == nil)
        try setMode(secret, 0o640, owner: 65534)
        #expect(loadError(hs256, in: directory)?.path == "auth.keys[0].secret_file")

        // A public key is not secret, but whoever can write it can swap in their own key.
        let pem = directory.appendingPathComponent("ec.pub")
        try fixture.ecKey.publicKey.pemRepresentation.write(to: pem, atomically: true, encoding: .utf8)
        let es256 = [KeyConfiguration(kid: "ec", algorithm: .es256, pemFile: "ec.pub")]
        try setMode(pem, 0o644)
        #expect(loadError(es256, in: directory) == nil)
        for mode: mode_t in [0o664, 0o646] {
            try setMode(pem, mode)
            let error = loadError(es256, in: directory)
            #expect(error?.path == "auth.keys[0].pem_file", "mode \(String(mode, radix: 8))")
            #expect(error?.message.contains("chmod 644") == true)
        }
    }

    @Test("PEM files must hold a public key of the pinned type")
    func pemChecks() async throws {
        let directory = fixture.directory
        // A private key is refused, and the error does not repeat the file's contents.
        let privateKeyError = loadError([KeyConfiguration(kid: "k", algorithm: .rs256, pemFile: fixture.rsaPrivateKey)], in: directory)
        #expect(privateKeyError?.path == "auth.keys[0].pem_file")
        #expect(privateKeyError?.message.contains("private key") == true)
        #expect(privateKeyError?.message.contains("MII") == false)
        // Type mismatches both ways.
        #expect(loadError([KeyConfiguration(kid: "k", algorithm: .rs256, pemFile: "ec.pub")], in: directory)?.message.contains("EC key") == true)
        #expect(loadError([KeyConfiguration(kid: "k", algorithm: .es256, pemFile: "rsa.pub")], in: directory)?.message.contains("RSA key") == true)
        try write("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n", "garbage.pub", in: directory)
        #expect(loadError([KeyConfiguration(kid: "k", algorithm: .rs256, pemFile: "garbage.pub")], in: directory)?.path == "auth.keys[0].pem_file")

        // RSA keys under 2048 bits are refused.
        let small = directory.appendingPathComponent("small.key").path
        let smallPublic = directory.appendingPathComponent("small.pub").path
        let pkcs1Public = directory.appendingPathComponent("rsa-pkcs1.pub").path
        let rsaPrivateKey = fixture.rsaPrivateKey
        // openssl children are waited for on a thread of their own, not on the cooperative pool.
        try await offThePool {
            try AuthFixture.generateRSAKey(at: small, bits: 1024)
            try AuthFixture.openssl(["pkey", "-in", small, "-pubout", "-out", smallPublic])
            try AuthFixture.openssl(["rsa", "-in", rsaPrivateKey, "-RSAPublicKey_out", "-out", pkcs1Public])
        }
        #expect(loadError([KeyConfiguration(kid: "k", algorithm: .rs256, pemFile: "small.pub")], in: directory)?.message.contains("2048") == true)

        // PKCS#1 "RSA PUBLIC KEY" files are accepted and verify tokens.
        let pkcs1 = try JWTAuthenticator(
            configuration: AuthFixture.configuration(keys: [KeyConfiguration(kid: "rsa-1", algorithm: .rs256, pemFile: "rsa-pkcs1.pub")]),
            baseDirectory: directory)
        _ = expectAuthAccepted(pkcs1.authenticate(authorizationHeader: "Bearer " + (try fixture.token()), now: AuthFixture.now))

        // Absolute paths work too.
        let absolute = directory.appendingPathComponent("rsa.pub").path
        #expect(loadError([KeyConfiguration(kid: "k", algorithm: .rs256, pemFile: absolute)], in: URL(fileURLWithPath: "/nonexistent")) == nil)
    }

    @Test("JWKS: RSA and EC keys load by kid; a configured kid picks one key; bad keys are refused")
    func jwks() throws {
        let directory = try AuthFixture.makeTemporaryDirectory()
        let ec = P256.Signing.PrivateKey()
        let rsaJWK = try AuthFixture.rsaJWK(privateKey: fixture.jwksRSAPrivateKey, kid: "r1")
        try write(#"{"keys":[\#(rsaJWK),\#(AuthFixture.ecJWK(ec.publicKey, kid: "e1")),\#(AuthFixture.ecJWK(P256.Signing.PrivateKey().publicKey, kid: "e2"))]}"#, "set.json", in: directory)

        let all = try JWTAuthenticator(
            configuration: AuthFixture.configuration(keys: [
                KeyConfiguration(kid: nil, algorithm: .rs256, jwksFile: "set.json"),
                KeyConfiguration(kid: nil, algorithm: .es256, jwksFile: "set.json"),
            ]), baseDirectory: directory)
        #expect(all.keyIDs == ["e1", "e2", "r1"])
        let rsToken = try fixture.token(alg: "RS256", kid: "r1", signer: .rs256(privateKeyPath: fixture.jwksRSAPrivateKey))
        _ = expectAuthAccepted(all.authenticate(authorizationHeader: "Bearer " + rsToken, now: AuthFixture.now))
        let esToken = try fixture.token(alg: "ES256", kid: "e1", signer: .es256(ec))
        _ = expectAuthAccepted(all.authenticate(authorizationHeader: "Bearer " + esToken, now: AuthFixture.now))
        // The e2 key must not verify e1's signatures.
        let wrong = try fixture.token(alg: "ES256", kid: "e2", signer: .es256(ec))
        expectAuthFailure(all.authenticate(authorizationHeader: "Bearer " + wrong, now: AuthFixture.now), .badSignature)

        let picked = try JWTAuthenticator(
            configuration: AuthFixture.configuration(keys: [KeyConfiguration(kid: "e2", algorithm: .es256, jwksFile: "set.json")]),
            baseDirectory: directory)
        #expect(picked.keyIDs == ["e2"])
        #expect(loadError([KeyConfiguration(kid: "nope", algorithm: .es256, jwksFile: "set.json")], in: directory)?.path == "auth.keys[0].jwks_file")

        // A point that is not on the curve.
        let badPoint = #"{"keys":[{"kty":"EC","crv":"P-256","kid":"bad","x":"\#(AuthFixture.base64URL(Array(repeating: 1, count: 32)))","y":"\#(AuthFixture.base64URL(Array(repeating: 2, count: 32)))"}]}"#
        try write(badPoint, "bad-point.json", in: directory)
        #expect(loadError([KeyConfiguration(kid: nil, algorithm: .es256, jwksFile: "bad-point.json")], in: directory)?.message.contains("P-256") == true)
        // A short RSA modulus.
        let shortRSA = #"{"keys":[{"kty":"RSA","kid":"short","n":"\#(AuthFixture.base64URL(Array(repeating: 0xC5, count: 128)))","e":"AQAB"}]}"#
        try write(shortRSA, "short.json", in: directory)
        #expect(loadError([KeyConfiguration(kid: nil, algorithm: .rs256, jwksFile: "short.json")], in: directory)?.message.contains("2048") == true)
        // Not JSON, deeply nested, or no keys array.
        try write("{\"keys\": [", "broken.json", in: directory)
        #expect(loadError([KeyConfiguration(kid: nil, algorithm: .rs256, jwksFile: "broken.json")], in: directory)?.path == "auth.keys[0].jwks_file")
        try write(String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "deep.json", in: directory)
        #expect(loadError([KeyConfiguration(kid: nil, algorithm: .rs256, jwksFile: "deep.json")], in: directory)?.path == "auth.keys[0].jwks_file")
        // Keys for other uses or algorithms are skipped, leaving none.
        let encryption = rsaJWK.replacingOccurrences(of: #""use":"sig""#, with: #""use":"enc""#)
        try write(#"{"keys":[\#(encryption)]}"#, "enc.json", in: directory)
        #expect(loadError([KeyConfiguration(kid: nil, algorithm: .rs256, jwksFile: "enc.json")], in: directory)?.path == "auth.keys[0].jwks_file")
        // Duplicate kids across sources are refused.
        try write(#"{"keys":[\#(AuthFixture.ecJWK(ec.publicKey, kid: "dev"))]}"#, "dup.json", in: directory)
        try write(String(repeating: "k", count: 40), "dev.secret", in: directory)
        let duplicate = loadError(
            [KeyConfiguration(kid: "dev", algorithm: .hs256, secretFile: "dev.secret"), KeyConfiguration(kid: nil, algorithm: .es256, jwksFile: "dup.json")],
            in: directory)
        #expect(duplicate?.path == "auth.keys[1]")
    }

    /// A folder whose `current.pub` holds the first of two P-256 keys, and an
    /// authenticator that pins kid `current` to that file.
    private func rotatingKeySetup() throws -> (URL, JWTAuthenticator, P256.Signing.PrivateKey, P256.Signing.PrivateKey) {
        let directory = try AuthFixture.makeTemporaryDirectory()
        let first = P256.Signing.PrivateKey()
        let second = P256.Signing.PrivateKey()
        try write(first.publicKey.pemRepresentation, "current.pub", in: directory)
        let authenticator = try JWTAuthenticator(
            configuration: AuthFixture.configuration(keys: [KeyConfiguration(kid: "current", algorithm: .es256, pemFile: "current.pub")]),
            baseDirectory: directory)
        return (directory, authenticator, first, second)
    }

    @Test("reloadKeys swaps in rotated keys, and a bad file keeps the old keys")
    func reload() throws {
        let (directory, authenticator, first, second) = try rotatingKeySetup()
        let oldToken = try fixture.token(alg: "ES256", kid: "current", signer: .es256(first))
        let newToken = try fixture.token(alg: "ES256", kid: "current", signer: .es256(second))
        _ = expectAuthAccepted(authenticator.authenticate(authorizationHeader: "Bearer " + oldToken, now: AuthFixture.now))

        #expect(authenticator.keyFiles.map(\.lastPathComponent) == ["current.pub"])
        try write(second.publicKey.pemRepresentation, "current.pub", in: directory)
        try authenticator.reloadKeys()
        _ = expectAuthAccepted(authenticator.authenticate(authorizationHeader: "Bearer " + newToken, now: AuthFixture.now))
        expectAuthFailure(authenticator.authenticate(authorizationHeader: "Bearer " + oldToken, now: AuthFixture.now), .badSignature)

        try write("not a key", "current.pub", in: directory)
        #expect(throws: AuthConfigurationError.self) { try authenticator.reloadKeys() }
        _ = expectAuthAccepted(authenticator.authenticate(authorizationHeader: "Bearer " + newToken, now: AuthFixture.now))
    }

    @Test("the key file watcher reloads on a content change only, and keeps the old keys when the new file is bad")
    func keyFileWatcher() throws {
        let (directory, authenticator, first, second) = try rotatingKeySetup()
        let outcomes = Mutex<[Bool]>([])
        let watcher = KeyFileWatcher(authenticator: authenticator, logger: Logger(label: "test")) { result in
            outcomes.withLock { $0.append((try? result.get()) != nil) }
        }
        let oldToken = try fixture.token(alg: "ES256", kid: "current", signer: .es256(first))
        let newToken = try fixture.token(alg: "ES256", kid: "current", signer: .es256(second))

        var fingerprint = watcher.fingerprint()
        fingerprint = watcher.checkOnce(last: fingerprint)
        #expect(outcomes.withLock { $0 }.isEmpty, "no change, no reload")

        try write(second.publicKey.pemRepresentation, "current.pub", in: directory)
        fingerprint = watcher.checkOnce(last: fingerprint)
        #expect(outcomes.withLock { $0 } == [true])
        _ = expectAuthAccepted(authenticator.authenticate(authorizationHeader: "Bearer " + newToken, now: AuthFixture.now))
        expectAuthFailure(authenticator.authenticate(authorizationHeader: "Bearer " + oldToken, now: AuthFixture.now), .badSignature)

        try write("not a key", "current.pub", in: directory)
        _ = watcher.checkOnce(last: fingerprint)
        #expect(outcomes.withLock { $0 } == [true, false])
        _ = expectAuthAccepted(authenticator.authenticate(authorizationHeader: "Bearer " + newToken, now: AuthFixture.now))
    }

    @Test("removing a key file, or a pinned kid from its JWKS, revokes that key at the next reload; the other keys stay")
    func removalRevokesWithoutRestart() throws {
        let directory = try AuthFixture.makeTemporaryDirectory()
        let pemKey = P256.Signing.PrivateKey()
        let pinned = P256.Signing.PrivateKey()
        let other = P256.Signing.PrivateKey()
        let secret = Array(String(repeating: "s", count: 40).utf8)
        try write(pemKey.publicKey.pemRepresentation, "current.pub", in: directory)
        try write(#"{"keys":[\#(AuthFixture.ecJWK(pinned.publicKey, kid: "e1")),\#(AuthFixture.ecJWK(other.publicKey, kid: "e2"))]}"#, "set.json", in: directory)
        try writeSecret(secret, to: directory.appendingPathComponent("dev.secret"))
        let authenticator = try JWTAuthenticator(
            configuration: AuthFixture.configuration(keys: [
                KeyConfiguration(kid: "current", algorithm: .es256, pemFile: "current.pub"),
                KeyConfiguration(kid: "e1", algorithm: .es256, jwksFile: "set.json"),
                KeyConfiguration(kid: "dev", algorithm: .hs256, secretFile: "dev.secret"),
            ]), baseDirectory: directory)
        let watcher = KeyFileWatcher(authenticator: authenticator, logger: Logger(label: "test"))
        let pemToken = try fixture.token(alg: "ES256", kid: "current", signer: .es256(pemKey))
        let pinnedToken = try fixture.token(alg: "ES256", kid: "e1", signer: .es256(pinned))
        let devToken = try fixture.token(alg: "HS256", kid: "dev", signer: .hs256(secret))
        func check(_ token: String) -> Result<Principal, AuthFailure> {
            authenticator.authenticate(authorizationHeader: "Bearer " + token, now: AuthFixture.now)
        }
        // Accepted (and so remembered: a revoked key must also end its remembered tokens).
        for token in [pemToken, pinnedToken, devToken] { _ = expectAuthAccepted(check(token)) }
        var fingerprint = watcher.fingerprint()

        try FileManager.default.removeItem(at: directory.appendingPathComponent("current.pub"))
        fingerprint = watcher.checkOnce(last: fingerprint)
        expectAuthFailure(check(pemToken), .unknownKey)
        _ = expectAuthAccepted(check(pinnedToken))
        _ = expectAuthAccepted(check(devToken))
        #expect(authenticator.keyIDs == ["dev", "e1"])

        // The set still holds e2, but no longer the pinned e1.
        try write(#"{"keys":[\#(AuthFixture.ecJWK(other.publicKey, kid: "e2"))]}"#, "set.json", in: directory)
        fingerprint = watcher.checkOnce(last: fingerprint)
        expectAuthFailure(check(pinnedToken), .unknownKey)
        _ = expectAuthAccepted(check(devToken))
        #expect(authenticator.keyIDs == ["dev"])

        // The last key removed: nothing is accepted any more (not the last keys kept).
        try FileManager.default.removeItem(at: directory.appendingPathComponent("dev.secret"))
        fingerprint = watcher.checkOnce(last: fingerprint)
        expectAuthFailure(check(devToken), .unknownKey)
        #expect(authenticator.keyIDs.isEmpty)

        // A key file put back is trusted again; a file that is present but broken still keeps the keys in use.
        try write(pemKey.publicKey.pemRepresentation, "current.pub", in: directory)
        fingerprint = watcher.checkOnce(last: fingerprint)
        _ = expectAuthAccepted(check(pemToken))
        try write("not a key", "current.pub", in: directory)
        _ = watcher.checkOnce(last: fingerprint)
        _ = expectAuthAccepted(check(pemToken))
    }

    @Test("development tokens are accepted by the authenticator; minting needs a configured secret")
    func developmentToken() throws {
        let token = try DevelopmentToken.mint(
            configuration: fixture.configuration, baseDirectory: fixture.directory, subject: "dev-user", roles: ["admin"],
            ttl: .seconds(600), now: AuthFixture.now)
        let principal = try #require(expectAuthAccepted(fixture.authenticate(token)))
        #expect(principal.subject == "dev-user")
        #expect(principal.permissions.contains(.admin))
        #expect(principal.expiresAt == AuthFixture.now.addingTimeInterval(600))
        expectAuthFailure(
            fixture.authenticator.authenticate(authorizationHeader: "Bearer " + token, now: AuthFixture.now.addingTimeInterval(631)), .expired)

        let noSecret = AuthFixture.configuration(keys: [KeyConfiguration(kid: "rsa-1", algorithm: .rs256, pemFile: "rsa.pub")])
        #expect(throws: DevelopmentToken.Error.self) {
            try DevelopmentToken.mint(configuration: noSecret, baseDirectory: fixture.directory, subject: "x", roles: [], ttl: .seconds(60))
        }
        #expect(throws: DevelopmentToken.Error.self) {
            try DevelopmentToken.mint(
                secret: Array(repeating: 1, count: 31), kid: "dev", issuer: "i", audience: "a", subject: "s", roles: [], ttl: .seconds(60))
        }
        #expect(throws: DevelopmentToken.Error.self) {
            try DevelopmentToken.mint(
                secret: fixture.secret, kid: "dev", issuer: "i", audience: "a", subject: "line\nbreak", roles: [], ttl: .seconds(60))
        }
        #expect(throws: DevelopmentToken.Error.self) {
            try DevelopmentToken.mint(
                secret: fixture.secret, kid: "dev", issuer: "i", audience: "a", subject: "s", roles: [], ttl: .zero)
        }
    }

    @Test("base64url decoding is strict and canonical")
    func base64URL() {
        #expect(JOSEBase64URL.decode(Array("AQAB".utf8)) == [1, 0, 1])
        #expect(JOSEBase64URL.decode(Array("-_8".utf8)) == [0xFB, 0xFF])
        #expect(JOSEBase64URL.decode(Array("AQ".utf8)) == [1])
        #expect(JOSEBase64URL.decode(Array("AR".utf8)) == nil)  // non-zero trailing bits
        #expect(JOSEBase64URL.decode(Array("AQ==".utf8)) == nil)  // padding
        #expect(JOSEBase64URL.decode(Array("A+8".utf8)) == nil)  // standard alphabet
        #expect(JOSEBase64URL.decode(Array("AQABA".utf8)) == nil)  // length 4n+1
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(JOSEBase64URL.decode(Array(JOSEBase64URL.encode(bytes).utf8)) == bytes)
            #expect(JOSEBase64URL.encode(bytes) == AuthFixture.base64URL(bytes))
        }
    }
}
