import Foundation

/// Lowercase hex encoding of digests and keys (revisions, audit hashes, HMACs).
enum HexEncoding {
    static func lowercase<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A value behind an `NSLock`, for state shared between request tasks and
/// background services (snapshots, canary windows, writer queues).
final class TrafficLocked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    var current: Value {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

/// Wall-clock source, injectable so tests drive canary windows without sleeping.
public typealias TrafficClock = @Sendable () -> Date
