import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers

/// Writes one JSON object per line to standard error: time, level, message,
/// label, and the metadata (dotted keys). Metadata named `authorization`
/// (in any case) is replaced by `[redacted]`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    private static let lock = NIOLock()

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
        file: String, function: String, line: UInt
    ) {
        var merged = self.metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let explicit { merged.merge(explicit) { $1 } }
        var object: [String: Any] = [
            "ts": Self.timestamp(),
            "level": level.rawValue,
            "msg": message.description,
            "logger": label,
        ]
        for (key, value) in merged {
            object[key] = key.lowercased().contains("authorization") ? "[redacted]" : Self.plain(value)
        }
        guard var data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        data.append(0x0A)
        Self.lock.withLock {
            // write(2) directly: Foundation's FileHandle.write traps on EPIPE/ENOSPC,
            // and a log line is never worth the process.
            data.withUnsafeBytes { buffer in
                guard var base = buffer.baseAddress else { return }
                var left = buffer.count
                while left > 0 {
                    let written = Glibc.write(STDERR_FILENO, base, left)
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { return }
                    base += written
                    left -= written
                }
            }
        }
    }

    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return a.map(plain)
        case .dictionary(let d): return d.mapValues(plain)
        }
    }

    static func timestamp() -> String {
        UTCTimestamp.millis(Date())
    }
}
