import Crypto
import Foundation
import Logging
import ServiceLifecycle

/// Reloads the JWT verification keys when a PEM, JWKS or secret file changes,
/// so that a rotated or revoked key takes effect without a restart. Files are
/// compared by content (SHA-256), not by modification time, which also catches
/// Kubernetes' symlink swap of a mounted Secret. A file that fails to load is
/// reported and the keys in use stay as they were; a file that was removed (or a pinned
/// kid gone from its JWK Set) revokes its keys.
public final class KeyFileWatcher: Service, Sendable {
    let authenticator: JWTAuthenticator
    let interval: Duration
    let logger: Logger
    let onReload: @Sendable (Result<[String], any Error>) -> Void

    public init(
        authenticator: JWTAuthenticator, interval: Duration = .seconds(5), logger: Logger,
        onReload: @escaping @Sendable (Result<[String], any Error>) -> Void = { _ in }
    ) {
        self.authenticator = authenticator
        self.interval = interval
        self.logger = logger
        self.onReload = onReload
    }

    /// SHA-256 of every key file's content (a missing file hashes as empty).
    func fingerprint() -> [String] {
        authenticator.keyFiles.map { url in
            let data = (try? Data(contentsOf: url)) ?? Data()
            return HexEncoding.lowercase(SHA256.hash(data: data))
        }
    }

    /// Reloads when the fingerprint differs from `last`; returns the new fingerprint.
    @discardableResult
    func checkOnce(last: [String]) -> [String] {
        let current = fingerprint()
        guard current != last else { return last }
        do {
            let revoked = try authenticator.reloadKeys()
            logger.notice("jwt keys reloaded", metadata: ["auth.kids": "\(authenticator.keyIDs.joined(separator: ","))"])
            for line in revoked { logger.warning("jwt key revoked", metadata: ["auth.key": "\(line)"]) }
            if authenticator.keyIDs.isEmpty {
                logger.error("no jwt keys left: every token is refused until a key file is back")
            }
            onReload(.success(authenticator.keyIDs))
        } catch {
            logger.error("jwt key reload refused; keeping the keys in use", metadata: ["error": "\(error)"])
            onReload(.failure(error))
        }
        return current
    }

    public func run() async throws {
        guard !authenticator.keyFiles.isEmpty else { return }
        try? await cancelWhenGracefulShutdown {
            var last = self.fingerprint()
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                // File reads are small and rare; they run off the request path.
                last = self.checkOnce(last: last)
            }
        }
    }
}
