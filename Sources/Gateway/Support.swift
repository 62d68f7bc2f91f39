import Foundation

/// Lowercase hex encoding of digests and keys (revisions, audit hashes, HMACs).
enum HexEncoding {
    static func lowercase<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digit(byte >> 4))
            out.append(digit(byte & 0x0F))
        }
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    static func digit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}

/// A value behind an `NSLock`, for state shared between request tasks and
/// background services (snapshots, canary windows, writer queues, limiters). Not
/// `Synchronization.Mutex`: on Linux it locks with raw futex calls that ThreadSanitizer
/// cannot see, so every access under it is reported as a race (scripts/test --sanitizer).
final class Locked<Value>: @unchecked Sendable {
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

/// RFC 3339 UTC timestamps with milliseconds ("2026-11-27T11:18:42.123Z"), for audit records
/// and log lines, written with `gmtime_r` instead of a Foundation date formatter (one is
/// needed per record and per line, and the formatter cost more than the rest of a record).
enum UTCTimestamp {
    static func millis(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = Int(interval.rounded(.down))
        var millis = Int(((interval - Double(seconds)) * 1000).rounded())
        if millis >= 1000 { seconds += 1; millis -= 1000 }
        var time = time_t(seconds)
        var parts = tm()
        guard gmtime_r(&time, &parts) != nil else { return ISO8601DateFormatter().string(from: date) }
        var out: [UInt8] = []
        out.reserveCapacity(24)
        func put(_ value: Int, _ width: Int) { appendDigits(value, width: width, to: &out) }
        put(Int(parts.tm_year) + 1900, 4); out.append(UInt8(ascii: "-"))
        put(Int(parts.tm_mon) + 1, 2); out.append(UInt8(ascii: "-"))
        put(Int(parts.tm_mday), 2); out.append(UInt8(ascii: "T"))
        put(Int(parts.tm_hour), 2); out.append(UInt8(ascii: ":"))
        put(Int(parts.tm_min), 2); out.append(UInt8(ascii: ":"))
        put(Int(parts.tm_sec), 2); out.append(UInt8(ascii: "."))
        put(millis, 3); out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `value` (not negative) in decimal, zero-padded on the left to at least `width` digits.
    static func appendDigits(_ value: Int, width: Int, to out: inout [UInt8]) {
        let start = out.count
        var rest = value
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0 || out.count - start < width
        out[start...].reverse()
    }
}

/// Random request ids and trace ids without a system call each: bytes come from
/// the kernel's generator, read 4 KiB at a time from `/dev/urandom` (opened once).
/// Foundation's `UUID()` opens `/dev/urandom` on every call on Linux, and the
/// standard library's generator makes one `getrandom` call per 8 bytes.
enum RandomIDs {
    private static let pool = Locked(Pool())

    private struct Pool {
        var bytes = [UInt8](repeating: 0, count: 4096)
        var used = 4096
        let descriptor = open("/dev/urandom", O_RDONLY | O_CLOEXEC)

        mutating func refill() {
            var filled = 0
            if descriptor >= 0 {
                bytes.withUnsafeMutableBytes { out in
                    while filled < out.count {
                        let n = read(descriptor, out.baseAddress! + filled, out.count - filled)
                        if n > 0 {
                            filled += n
                        } else if n == 0 || errno != EINTR {
                            break
                        }
                    }
                }
            }
            if filled < bytes.count {
                // No /dev/urandom (a bare chroot): the standard library's generator, word by word.
                var generator = SystemRandomNumberGenerator()
                for i in filled..<bytes.count { bytes[i] = generator.next() }
            }
            used = 0
        }
    }

    /// `count` random bytes (at most 64) passed to `body`.
    static func withBytes<R>(_ count: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        precondition(count > 0 && count <= 64)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { local in
            pool.withLock { pool in
                if pool.used + count > pool.bytes.count { pool.refill() }
                for i in 0..<count { local[i] = pool.bytes[pool.used + i] }
                pool.used += count
            }
            return body(UnsafeBufferPointer(local))
        }
    }

    /// Lowercase hex of `bytes` random bytes.
    static func hex(bytes: Int) -> String {
        withBytes(bytes) { random in
            String(unsafeUninitializedCapacity: bytes * 2) { out in
                for (i, byte) in random.enumerated() {
                    out[2 * i] = HexEncoding.digit(byte >> 4)
                    out[2 * i + 1] = HexEncoding.digit(byte & 0x0F)
                }
                return bytes * 2
            }
        }
    }

    /// A version 4 UUID in lowercase, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`.
    static func uuid() -> String {
        withBytes(16) { random in
            String(unsafeUninitializedCapacity: 36) { out in
                var position = 0
                for i in 0..<16 {
                    var byte = random[i]
                    if i == 6 { byte = byte & 0x0F | 0x40 }  // version 4
                    if i == 8 { byte = byte & 0x3F | 0x80 }  // RFC 4122 variant
                    if i == 4 || i == 6 || i == 8 || i == 10 {
                        out[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    out[position] = HexEncoding.digit(byte >> 4)
                    out[position + 1] = HexEncoding.digit(byte & 0x0F)
                    position += 2
                }
                return position
            }
        }
    }
}

/// Writes one JSON object member by member in a fixed order (audit records,
/// problem bodies); strings are escaped so that no control character (CR, LF,
/// NUL…) can reach a file or a client raw.
struct CompactJSONWriter {
    private(set) var bytes: [UInt8] = [UInt8(ascii: "{")]
    private var first = true

    init() {
        bytes.reserveCapacity(768)
    }

    private mutating func key(_ name: String) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        Self.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func string(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        Self.appendString(value, to: &bytes)
    }

    mutating func int(_ name: String, _ value: Int?) {
        guard let value else { return }
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func double(_ name: String, _ value: Double?) {
        guard let value else { return }
        key(name)
        Self.appendDouble(value, to: &bytes)
    }

    mutating func strings(_ name: String, _ values: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            Self.appendString(value, to: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func value(_ name: String, _ value: AuditValue) {
        key(name)
        Self.appendValue(value, to: &bytes)
    }

    mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    static func appendValue(_ value: AuditValue, to bytes: inout [UInt8]) {
        switch value {
        case .string(let s): appendString(s, to: &bytes)
        case .int(let i): bytes.append(contentsOf: String(i).utf8)
        case .double(let d): appendDouble(d, to: &bytes)
        case .bool(let b): bytes.append(contentsOf: Array((b ? "true" : "false").utf8))
        case .null: bytes.append(contentsOf: Array("null".utf8))
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                appendValue(item, to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                appendString(key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                appendValue(members[key] ?? .null, to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    static func appendDouble(_ value: Double, to bytes: inout [UInt8]) {
        if value.isFinite {
            bytes.append(contentsOf: Array("\(value)".utf8))
        } else {
            bytes.append(contentsOf: Array("null".utf8))
        }
    }

    static func appendString(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20, 0x7F:
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(HexEncoding.digit(byte >> 4))
                bytes.append(HexEncoding.digit(byte & 0x0F))
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
