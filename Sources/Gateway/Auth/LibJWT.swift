import CJWT

/// The one place the gateway calls libjwt: RS256/ES256 signature checks.
///
/// libjwt 1.10 takes the algorithm from the token, so callers must have
/// checked the header already and pass only the public key pinned to that
/// algorithm; this function also checks that libjwt verified with the pinned
/// algorithm. libjwt's claim handling is not used (it checks none).
enum LibJWT {
    static func verify(token: String, publicKeyPEM: [UInt8], algorithm: JWTAlgorithm) -> Bool {
        let expected: jwt_alg_t
        switch algorithm {
        case .rs256: expected = JWT_ALG_RS256
        case .es256: expected = JWT_ALG_ES256
        default: return false  // HS256 is verified by our own constant-time code, never by libjwt.
        }
        guard !publicKeyPEM.isEmpty, publicKeyPEM.count < Int(Int32.max) else { return false }
        var used = JWT_ALG_TERM
        let rc = token.withCString { tokenPointer in
            publicKeyPEM.withUnsafeBufferPointer { key in
                cjwt_verify(tokenPointer, key.baseAddress, Int32(key.count), &used)
            }
        }
        return rc == 0 && used == expected
    }
}
