import Crypto
import Foundation
import Logging
import Metrics
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An open audit file the writer appends to. The default is a POSIX descriptor;
/// tests inject failing ones.
public protocol AuditFile: AnyObject {
    func append(_ bytes: [UInt8]) throws
    func sync() throws
    func close()
}

/// `O_WRONLY|O_APPEND|O_CREAT|O_EXCL` descriptor with `write(2)`/`fsync(2)`.
public final class POSIXAuditFile: AuditFile {
    private let fd: Int32
    private let path: String

    public init(creating path: String) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw DurableFileError(operation: "open", path: path, errno: errno) }
        self.fd = fd
        self.path = path
    }

    public func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try DurableFiles.writeAll(fd, $0, path: path) }
    }

    public func sync() throws {
        guard fsync(fd) == 0 else { throw DurableFileError(operation: "fsync", path: path, errno: errno) }
    }

    public func close() {
        DurableFiles.closeDescriptor(fd)
    }
}

/// A symmetric key made once and shared read-only (swift-crypto 3 does not mark `SymmetricKey` `Sendable`).
struct SendableKey: @unchecked Sendable {
    let key: SymmetricKey
    init(_ key: SymmetricKey) { self.key = key }
}

/// Why `record` failed.
public struct AuditLogError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    static func failed(_ cause: String) -> AuditLogError {
        AuditLogError(message: "audit writer stopped after an I/O error: \(cause)")
    }

    static let closed = AuditLogError(message: "audit log is closed")
}

/// Counters for the benchmark and the admin API.
public struct AuditStatistics: Sendable, Codable, Equatable {
    public var records = 0
    public var fsyncs = 0
    public var fsyncSecondsTotal = 0.0
    public var fsyncSecondsMax = 0.0
    public var files = 0
    public var currentFile: String?
    public var lastSeq = 0
    /// Hash of the last durable record: keep it outside the log (admin API,
    /// monitoring) to detect records cut from the end, which a chain cannot show.
    public var lastHash = ""
    /// The newest anchor this writer published (see ``AuditAnchor``).
    public var lastAnchor: AuditAnchor?
    public var failure: String?

    /// Records per fsync (the group-commit factor) and mean fsync time, kept as
    /// stored values so they appear in the admin JSON.
    public var recordsPerFsync = 0.0
    public var meanFsyncSeconds = 0.0
}

/// Durable, hash-chained audit log: one JSON line per request or admin event.
///
/// `record` returns once the line is written and fsynced. A single writer thread
/// does group commit: it takes every record queued since its last pass, appends
/// them with one `write`, calls `fsync` once, then resumes all their callers, so
/// throughput grows with concurrency instead of paying one fsync per request. The
/// first write or fsync error stops the writer for good: that and every later
/// `record` throws, and the gateway answers 503 rather than serve unaudited.
///
/// Files are `audit-<instance>-<NNNNNN>.jsonl` in `directory`; each start and each
/// rotation (by size) opens the next number, and the chain continues across them.
/// At start, a torn last line left by a crash is cut off (it was never
/// acknowledged) and the cut is recorded as an admin event in the chain.
///
/// Records are sealed with the chain key (``AuditChainKey``, derived from the audit
/// key), and the writer publishes anchors — the newest sequence number and hash — at
/// start, on rotation, every `anchorInterval` while records are written, and at
/// shutdown: as a log line (`audit anchor`, `audit.anchor=INSTANCE:SEQ:HASH`) and in
/// ``statistics`` (the admin API). `audit verify --anchor` then shows whether records
/// were cut from the end, which a chain alone cannot show.
public final class AuditLog: AuditSink, AdminEventRecorder, Service, Sendable {
    public enum SubjectMode: String, Sendable, Codable {
        /// Subject and issuer as in the token.
        case plain
        /// HMAC-SHA-256 of the subject with the audit key (`subject_hmac`); issuer kept.
        case hmac

        /// The field a subject is written as, in audit records and in the access log alike,
        /// so that with `hmac` neither log names the person and both can be joined on the
        /// same pseudonym.
        func field(for subject: String, key: SymmetricKey) -> (name: String, value: String) {
            switch self {
            case .plain:
                return ("subject", subject)
            case .hmac:
                return ("subject_hmac", HexEncoding.lowercase(HMAC<SHA256>.authenticationCode(for: Array(subject.utf8), using: key)))
            }
        }
    }

    public struct Configuration: Sendable {
        public var directory: URL
        /// This replica's name; every record carries it and file names contain it.
        public var instanceID: String
        /// Rotate once the current file reaches this size.
        public var maxFileBytes: Int
        /// Key bytes for input and subject HMACs (at least 32 bytes recommended).
        public var keyBytes: [UInt8]
        public var subjectMode: SubjectMode
        /// How often an anchor is published while records are being written.
        public var anchorInterval: Duration
        /// Opens a new audit file; replace only in tests.
        public var openFile: @Sendable (String) throws -> any AuditFile

        public init(
            directory: URL, instanceID: String, key: [UInt8], maxFileBytes: Int = 64 << 20,
            subjectMode: SubjectMode = .plain, anchorInterval: Duration = .seconds(60),
            openFile: @escaping @Sendable (String) throws -> any AuditFile = { try POSIXAuditFile(creating: $0) }
        ) {
            self.directory = directory
            self.instanceID = instanceID
            self.maxFileBytes = maxFileBytes
            self.keyBytes = key
            self.subjectMode = subjectMode
            self.anchorInterval = anchorInterval
            self.openFile = openFile
        }
    }

    private let configuration: Configuration
    private let writer: AuditWriter
    /// The HMAC key, scheduled once (not per hash).
    private let key: SendableKey

    private init(configuration: Configuration, writer: AuditWriter, key: SendableKey) {
        self.configuration = configuration
        self.writer = writer
        self.key = key
    }

    public var instanceID: String { configuration.instanceID }

    /// Opens the log: finds the chain's last record in `directory` (cutting a torn
    /// tail), opens the next file and starts the writer thread.
    public static func open(_ configuration: Configuration, logger: Logger) throws -> AuditLog {
        guard AuditFileNames.isSafe(configuration.instanceID) else {
            throw AuditLogError(message: "instance id must match [A-Za-z0-9_.-]+")
        }
        let directory = configuration.directory.path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let recovered = try AuditRecovery.recover(directory: directory, instanceID: configuration.instanceID)
        let key = SendableKey(SymmetricKey(data: configuration.keyBytes))
        let writer = try AuditWriter(
            configuration: configuration, key: key, chainKey: AuditChainKey(keyBytes: configuration.keyBytes),
            recovered: recovered, logger: logger)
        let log = AuditLog(configuration: configuration, writer: writer, key: key)
        if let torn = recovered.tornTail {
            logger.warning("audit log had a torn last record; cut it off", metadata: [
                "audit.file": "\(torn.file)", "audit.bytes": "\(torn.bytes)",
            ])
            writer.enqueueDetached(.admin(kind: "audit_torn_tail_removed", details: [
                "file": .string(torn.file), "bytes_removed": .int(torn.bytes), "sha256_removed": .string(torn.sha256),
            ]))
        }
        return log
    }

    /// HMAC-SHA-256 of `bytes` with the audit key, lowercase hex (the `input_hmac`).
    public func hmac<Bytes: DataProtocol>(_ bytes: Bytes) -> String {
        HexEncoding.lowercase(HMAC<SHA256>.authenticationCode(for: bytes, using: key.key))
    }

    /// How `subject` is written under the configured subject mode (``SubjectMode/field(for:key:)``).
    public func subjectField(_ subject: String) -> (name: String, value: String) {
        configuration.subjectMode.field(for: subject, key: key.key)
    }

    public func record(_ event: AuditEvent) async throws {
        try await writer.submit(.request(event))
    }

    public func recordAdmin(kind: String, details: [String: AuditValue]) async throws {
        try await writer.submit(.admin(kind: kind, details: details))
    }

    public var statistics: AuditStatistics { writer.statistics }

    /// Writes what is queued, then stops the writer; later `record` calls throw.
    public func close() async {
        await writer.close()
    }

    /// Runs until graceful shutdown, then drains and closes. Add it to the
    /// ServiceGroup before the HTTP server so it stops after the server.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}

enum AuditFileNames {
    static func isSafe(_ value: String) -> Bool {
        guard !value.isEmpty, value != ".", value != "..", value.utf8.count <= 128 else { return false }
        return value.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2E || byte == 0x2D
        }
    }

    static func auditFile(instance: String, index: Int) -> String {
        let number = String(index)
        return "audit-\(instance)-\(String(repeating: "0", count: max(0, 6 - number.count)))\(number).jsonl"
    }

    /// Parses `audit-<instance>-<NNNNNN>.jsonl`.
    static func parseAuditFile(_ name: String) -> (instance: String, index: Int)? {
        guard name.hasPrefix("audit-"), name.hasSuffix(".jsonl") else { return nil }
        let stem = name.dropFirst("audit-".count).dropLast(".jsonl".count)
        guard let dash = stem.lastIndex(of: "-") else { return nil }
        let instance = String(stem[stem.startIndex..<dash])
        guard let index = Int(stem[stem.index(after: dash)...]), !instance.isEmpty else { return nil }
        return (instance, index)
    }
}

/// Finds where a chain left off.
enum AuditRecovery {
    struct Result {
        var nextFileIndex = 1
        var lastSeq = 0
        var lastHash = AuditFraming.genesisHash
        var tornTail: (file: String, bytes: Int, sha256: String)?
    }

    static func recover(directory: String, instanceID: String) throws -> Result {
        var result = Result()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let files = names.compactMap { name -> (String, Int)? in
            guard let parsed = AuditFileNames.parseAuditFile(name), parsed.instance == instanceID else { return nil }
            return (name, parsed.index)
        }.sorted { $0.1 < $1.1 }
        guard let lastIndex = files.last?.1 else { return result }
        result.nextFileIndex = lastIndex + 1
        // Walk back over empty files to the newest record.
        for (name, _) in files.reversed() {
            let path = directory + "/" + name
            guard var data = FileManager.default.contents(atPath: path), !data.isEmpty else { continue }
            if data.last != UInt8(ascii: "\n") {
                let cut = (data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 }) ?? 0
                let removed = data[cut...]
                result.tornTail = (name, removed.count, HexEncoding.lowercase(SHA256.hash(data: removed)))
                guard truncate(path, off_t(cut)) == 0 else {
                    throw DurableFileError(operation: "truncate", path: path, errno: errno)
                }
                let fd = open(path, O_WRONLY | O_CLOEXEC)
                if fd >= 0 {
                    defer { DurableFiles.closeDescriptor(fd) }
                    guard fsync(fd) == 0 else { throw DurableFileError(operation: "fsync", path: path, errno: errno) }
                }
                data = data.prefix(cut)
                if data.isEmpty { continue }
            }
            let body = data.dropLast()
            let lineStart = (body.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 }) ?? body.startIndex
            let line = body[lineStart...]
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let seq = object["seq"] as? Int, let hash = object["hash"] as? String else {
                throw AuditLogError(message: "audit file \(name) ends in a record that does not parse; run `audit verify`")
            }
            result.lastSeq = seq
            result.lastHash = hash
            break
        }
        return result
    }
}

/// The writer thread and its queue.
final class AuditWriter: @unchecked Sendable {
    enum Payload {
        case request(AuditEvent)
        case admin(kind: String, details: [String: AuditValue])
    }

    struct Pending {
        var payload: Payload
        var continuation: CheckedContinuation<Void, any Error>?
    }

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var pending: [Pending] = []
    private var failure: AuditLogError?
    private var closing = false
    private var finished = false
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []
    private var stats = AuditStatistics()

    // Writer thread only.
    private let configuration: Configuration
    private let key: SendableKey
    private let chainKey: AuditChainKey
    private let logger: Logger
    /// Sequence number of the last published anchor, and when the next periodic one is due.
    private var anchoredSeq = 0
    private var nextAnchor: Date
    private var file: (any AuditFile)?
    private var fileIndex: Int
    private var fileBytes = 0
    private var seq: Int
    private var prevHash: String

    typealias Configuration = AuditLog.Configuration

    private let recordsCounter = Counter(label: "audit_records_total")
    private let fsyncCounter = Counter(label: "audit_fsyncs_total")
    private let failureCounter = Counter(label: "audit_write_failures_total")
    private let fsyncTimer = Metrics.Timer(label: "audit_fsync_duration_seconds")
    private let batchRecorder = Recorder(label: "audit_batch_records")

    init(configuration: Configuration, key: SendableKey, chainKey: AuditChainKey, recovered: AuditRecovery.Result, logger: Logger) throws {
        self.configuration = configuration
        self.key = key
        self.chainKey = chainKey
        self.logger = logger
        self.fileIndex = recovered.nextFileIndex
        self.seq = recovered.lastSeq
        self.prevHash = recovered.lastHash
        self.nextAnchor = Date().addingTimeInterval(configuration.anchorInterval.seconds)
        try openNextFile()
        stats.lastSeq = seq
        stats.lastHash = prevHash
        // Where the chain stood when this writer took over (nothing to anchor in a new chain).
        if seq > 0 { publishAnchor("start") }
        let thread = Thread { [self] in self.loop() }
        thread.name = "audit-writer"
        thread.start()
    }

    var statistics: AuditStatistics {
        condition.lock()
        defer { condition.unlock() }
        return stats
    }

    func submit(_ payload: Payload) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            condition.lock()
            if let failure {
                condition.unlock()
                continuation.resume(throwing: failure)
                return
            }
            if closing {
                condition.unlock()
                continuation.resume(throwing: AuditLogError.closed)
                return
            }
            pending.append(Pending(payload: payload, continuation: continuation))
            condition.signal()
            condition.unlock()
        }
    }

    /// Queues a record nobody waits for (startup events).
    func enqueueDetached(_ payload: Payload) {
        condition.lock()
        pending.append(Pending(payload: payload, continuation: nil))
        condition.signal()
        condition.unlock()
    }

    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if finished {
                condition.unlock()
                continuation.resume()
                return
            }
            closing = true
            finishWaiters.append(continuation)
            condition.signal()
            condition.unlock()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            var anchorDue = false
            while pending.isEmpty && !closing && !anchorDue {
                // Idle: sleep until work arrives or, with records since the last anchor, until it is due.
                if seq != anchoredSeq {
                    anchorDue = !condition.wait(until: nextAnchor) && pending.isEmpty && !closing
                } else {
                    condition.wait()
                }
            }
            if anchorDue {
                condition.unlock()
                publishAnchor("periodic")
                continue
            }
            if pending.isEmpty {
                // Closing with nothing left.
                finished = true
                let waiters = finishWaiters
                finishWaiters = []
                condition.unlock()
                if seq > 0 { publishAnchor("shutdown") }
                file?.close()
                file = nil
                waiters.forEach { $0.resume() }
                return
            }
            let batch = pending
            pending = []
            condition.unlock()

            do {
                let syncSeconds = try write(batch)
                condition.lock()
                stats.records += batch.count
                stats.fsyncs += 1
                stats.fsyncSecondsTotal += syncSeconds
                stats.fsyncSecondsMax = max(stats.fsyncSecondsMax, syncSeconds)
                stats.recordsPerFsync = Double(stats.records) / Double(stats.fsyncs)
                stats.meanFsyncSeconds = stats.fsyncSecondsTotal / Double(stats.fsyncs)
                stats.lastSeq = seq
                stats.lastHash = prevHash
                condition.unlock()
                recordsCounter.increment(by: batch.count)
                fsyncCounter.increment()
                fsyncTimer.recordNanoseconds(Int64(syncSeconds * 1e9))
                batchRecorder.record(batch.count)
                batch.forEach { $0.continuation?.resume() }
            } catch {
                let failure = AuditLogError.failed("\(error)")
                failureCounter.increment()
                logger.critical("audit writer stopped; requests will be refused", metadata: ["error": "\(error)"])
                condition.lock()
                self.failure = failure
                stats.failure = failure.message
                let rest = pending
                pending = []
                finished = true
                let waiters = finishWaiters
                finishWaiters = []
                condition.unlock()
                batch.forEach { $0.continuation?.resume(throwing: failure) }
                rest.forEach { $0.continuation?.resume(throwing: failure) }
                file?.close()
                file = nil
                waiters.forEach { $0.resume() }
                return
            }
        }
    }

    /// Appends the batch with one write and one fsync; returns the fsync's seconds.
    private func write(_ batch: [Pending]) throws -> Double {
        guard let file else { throw AuditLogError(message: "no audit file open") }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(batch.count * 700)
        let now = Date()
        for item in batch {
            seq += 1
            let body = encode(item.payload, seq: seq, at: now)
            let sealed = AuditFraming.seal(body: body, key: chainKey)
            prevHash = sealed.hash
            buffer.append(contentsOf: sealed.line)
        }
        try file.append(buffer)
        let start = DispatchTime.now().uptimeNanoseconds
        try file.sync()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        fileBytes += buffer.count
        if fileBytes >= configuration.maxFileBytes {
            file.close()
            self.file = nil
            publishAnchor("rotation")
            try openNextFile()
        } else if Date() >= nextAnchor {
            publishAnchor("periodic")
        }
        return seconds
    }

    /// Publishes the newest durable record's sequence number and hash: a log line an
    /// operator (or log shipping) keeps outside the audit volume, and the admin API.
    private func publishAnchor(_ reason: String) {
        let anchor = AuditAnchor(
            instance: configuration.instanceID, seq: seq, hash: prevHash, reason: reason, at: UTCTimestamp.millis(Date()))
        anchoredSeq = seq
        nextAnchor = Date().addingTimeInterval(configuration.anchorInterval.seconds)
        condition.lock()
        stats.lastAnchor = anchor
        condition.unlock()
        logger.notice("audit anchor", metadata: ["audit.anchor": "\(anchor.text)", "audit.anchor_reason": "\(reason)"])
    }

    private func openNextFile() throws {
        let name = AuditFileNames.auditFile(instance: configuration.instanceID, index: fileIndex)
        let path = configuration.directory.path + "/" + name
        file = try configuration.openFile(path)
        try DurableFiles.syncDirectory(configuration.directory.path)
        fileIndex += 1
        fileBytes = 0
        condition.lock()
        stats.files += 1
        stats.currentFile = name
        condition.unlock()
    }

    private func encode(_ payload: Payload, seq: Int, at now: Date) -> [UInt8] {
        var json = CompactJSONWriter()
        json.int("seq", seq)
        json.string("ts", UTCTimestamp.millis(now))
        json.string("instance", configuration.instanceID)
        switch payload {
        case .request(let event):
            json.string("type", "request")
            json.string("request_id", event.requestID)
            if let clientRequestID = event.clientRequestID { json.string("client_request_id", clientRequestID) }
            json.string("trace_id", event.traceID)
            json.string("received_at", UTCTimestamp.millis(event.receivedAt))
            if let subject = event.subject {
                let field = configuration.subjectMode.field(for: subject, key: key.key)
                json.string(field.name, field.value)
            }
            json.string("issuer", event.issuer)
            json.strings("roles", event.roles)
            json.string("endpoint", event.endpoint)
            if !event.target.isEmpty { json.value("target", .object(event.target.mapValues { .string($0) })) }
            if let decision = event.decision {
                json.string("route", decision.route)
                json.string("variant", decision.variant)
                json.string("model", decision.model)
                json.string("version", decision.version)
                json.string("revision", decision.revision)
            }
            json.string("verdict", event.verdict)
            json.strings("reasons", event.reasonCodes)
            json.string("error_code", event.errorCode)
            json.int("status", event.status)
            json.int("upstream_status", event.upstreamStatus)
            json.double("latency_ms", (event.latencySeconds * 1e6).rounded() / 1e3)
            json.double("upstream_latency_ms", event.upstreamLatencySeconds.map { ($0 * 1e6).rounded() / 1e3 })
            json.int("input_bytes", event.inputBytes)
            json.string("content_type", event.contentType)
            json.string("input_hmac", event.inputHMAC)
        case .admin(let kind, let details):
            json.string("type", "admin")
            json.string("kind", kind)
            json.value("details", .object(details))
        }
        json.string("prev_hash", prevHash)
        return json.finish()
    }
}
