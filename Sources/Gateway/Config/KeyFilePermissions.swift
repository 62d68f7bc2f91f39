import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a key file's mode may allow, checked whenever keys are read (at start and on
/// reload), the way `ssh` checks a private key: a secret that others can read is not a
/// secret, and a public key that others can write can be swapped for theirs.
enum KeyFilePermissions {
    /// A file whose bytes are secret (an HS256 secret, the audit key, a TLS private key):
    /// no access for others, and none for the group except reading a file root owns.
    /// That exception is Kubernetes' Secret volume: files owned by root, with the pod's
    /// `fsGroup` as group and `defaultMode: 0440`, read by a non-root gateway through
    /// its group. Returns why the file is refused, or `nil`; a file that cannot be
    /// examined is left to the reader, whose error says so.
    static func secretProblem(_ path: String) -> String? {
        guard let (mode, owner) = modeAndOwner(path) else { return nil }
        let refused: mode_t = owner == 0 ? 0o037 : 0o077
        guard mode & refused != 0 else { return nil }
        let fix = owner == 0 ? "chmod 600 (or 440 with the reading group)" : "chmod 600"
        return "\(path) has mode \(octal(mode)): a secret must not be readable or writable by others; \(fix) \(path)"
    }

    /// A public key (PEM or JWKS): anyone may read it, only its owner may write it.
    static func publicKeyProblem(_ path: String) -> String? {
        guard let (mode, _) = modeAndOwner(path), mode & 0o022 != 0 else { return nil }
        return "\(path) has mode \(octal(mode)): others could replace this key with theirs; chmod 644 \(path)"
    }

    private static func modeAndOwner(_ path: String) -> (mode: mode_t, owner: uid_t)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (info.st_mode & 0o777, info.st_uid)
    }

    private static func octal(_ mode: mode_t) -> String { "0" + String(mode, radix: 8) }
}
