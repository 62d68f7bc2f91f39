import Crypto
import Foundation
import Logging
import HummingbirdTesting
import Testing

@testable import Gateway

#if canImport(Glibc)
import Glibc
#endif

private let auditKeyBytes = Array(repeating: UInt8(7), count: 32)
private var auditKey: SymmetricKey { SymmetricKey(data: auditKeyBytes) }

private func openAudit(
    _ directory: URL, instance: String = "gw-1", maxFileBytes: Int = 64 << 20, subjectMode: AuditLog.SubjectMode = .plain,
    openFile: (@Sendable (String) throws -> any AuditFile)? = nil
) throws -> AuditLog {
    var configuration = AuditLog.Configuration(
        directory: directory, instanceID: instance, key: auditKeyBytes, maxFileBytes: maxFileBytes, subjectMode: subjectMode
    )
    if let openFile { configuration.openFile = openFile }
    return try AuditLog.open(configuration, logger: Logger(label: "test"))
}

private func event(_ id: String, subject: String = "alice", status: Int = 200) -> AuditEvent {
    AuditEvent(
        requestID: id, traceID: "4bf92f3577b34da6a3ce929d0e0e4736", receivedAt: Date(), subject: subject,
        issuer: "https://issuer.example", roles: ["client"], endpoint: "/v1/moderate",
        decision: RouteDecision(route: "moderation", variant: "baseline", model: "moderation", version: "1", revision: "abc123abc123"),
        verdict: "allow", reasonCodes: [], status: status, upstreamStatus: 200, latencySeconds: 0.0123,
        upstreamLatencySeconds: 0.01, inputBytes: 1234, contentType: "image/png", inputHMAC: "00"
    )
}

private let chainKey = AuditChainKey(keyBytes: auditKeyBytes)

/// Verifies with the chain key the test logs are sealed with.
private func verifyAudit(_ paths: [String], anchors: [AuditAnchor] = []) -> AuditVerificationReport {
    AuditVerifier.verify(paths: paths, key: chainKey, anchors: anchors)
}

private func auditFiles(_ directory: URL) throws -> [URL] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".jsonl") }.sorted()
        .map { directory.appendingPathComponent($0) }
}

/// Rewrites one file's lines with `change`.
private func editLines(_ url: URL, _ change: (inout [String]) -> Void) throws {
    let text = try String(contentsOf: url, encoding: .utf8)
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    if lines.last == "" { lines.removeLast() }
    change(&lines)
    try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
}

/// A file whose writes go to /dev/full (ENOSPC from the kernel), as on a full disk.
final class DevFullAuditFile: AuditFile {
    let fd = open("/dev/full", O_WRONLY | O_CLOEXEC)
    func append(_ bytes: [UInt8]) throws {
        let result = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if result < 0 { throw DurableFileError(operation: "write", path: "/dev/full", errno: errno) }
    }
    func sync() throws {}
    func close() { _ = Glibc.close(fd) }
}

/// Writes fine, but its fsync fails after `okSyncs` successes (as with EIO).
final class FailingSyncAuditFile: AuditFile {
    let inner: POSIXAuditFile
    var syncs = 0
    let okSyncs: Int
    init(path: String, okSyncs: Int) throws {
        inner = try POSIXAuditFile(creating: path)
        self.okSyncs = okSyncs
    }
    func append(_ bytes: [UInt8]) throws { try inner.append(bytes) }
    func sync() throws {
        syncs += 1
        if syncs > okSyncs { throw DurableFileError(operation: "fsync", path: "test", errno: EIO) }
        try inner.sync()
    }
    func close() { inner.close() }
}

@Suite("Audit log")
struct AuditLogTests {
    @Test("50 tasks × 100 records: the chain verifies, and group commit uses fewer fsyncs than records")
    func concurrentWritesVerify() async throws {
        let directory = try trafficTestDirectory("audit")
        let log = try openAudit(directory)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<50 {
                group.addTask {
                    for index in 0..<100 { try await log.record(event("req-\(task)-\(index)")) }
                }
            }
            try await group.waitForAll()
        }
        let stats = log.statistics
        await log.close()
        #expect(stats.records == 5_000)
        #expect(stats.fsyncs < stats.records)
        #expect(stats.recordsPerFsync > 1 && stats.meanFsyncSeconds > 0)
        #expect(stats.lastSeq == 5_000)
        let report = verifyAudit([directory.path])
        #expect(report.ok, "\(report.text)")
        #expect(report.chains.first?.records == 5_000)
        // Every request id is in the log exactly once.
        let text = try String(contentsOf: try #require(auditFiles(directory).first), encoding: .utf8)
        #expect(text.components(separatedBy: "\"request_id\":\"req-49-99\"").count == 2)
        #expect(!text.contains("image/png\u{0}"))
    }

    @Test("record fields: subject HMAC instead of the subject when configured; control characters escaped")
    func recordFields() async throws {
        let directory = try trafficTestDirectory("audit")
        let log = try openAudit(directory, subjectMode: .hmac)
        var withTarget = event("line\nbreak", subject: "alice")
        withTarget.target = ["model": "identity_fp32", "version": "2"]
        try await log.record(withTarget)
        #expect(log.hmac(Array("abc".utf8)) == HexEncoding.lowercase(HMAC<SHA256>.authenticationCode(for: Array("abc".utf8), using: auditKey)))
        await log.close()
        let text = try String(contentsOf: try #require(auditFiles(directory).first), encoding: .utf8)
        #expect(text.split(separator: "\n").count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["subject"] == nil)
        #expect((object["subject_hmac"] as? String)?.count == 64)
        #expect(object["request_id"] as? String == "line\nbreak")
        #expect(object["instance"] as? String == "gw-1")
        #expect(object["model"] as? String == "moderation" && object["revision"] as? String == "abc123abc123")
        #expect(object["target"] as? [String: String] == ["model": "identity_fp32", "version": "2"])
        #expect(object["status"] as? Int == 200 && object["input_bytes"] as? Int == 1234)
        #expect(object["prev_hash"] as? String == String(repeating: "0", count: 64))
        #expect(verifyAudit([directory.path]).ok)
    }

    @Test("the access log names the caller as the audit log does: under subject_mode hmac the same keyed hash, never the subject")
    func accessLogFollowsTheSubjectMode() async throws {
        let setup = try TestSetup()
        let directory = try trafficTestDirectory("audit")
        let log = try openAudit(directory, subjectMode: .hmac)
        var parts = GatewayParts(auditSink: log, transport: RecordingTransport())
        parts.auditLog = log
        let captured = CapturedLog()
        let configuration = try setup.configuration(tritonURL: "http://127.0.0.1:9", overrides: ["logging": "logging:\n  level: info\n"])
        let app = try buildApplication(configuration: configuration, parts: parts, logger: captured.logger(level: .info))
        try await app.test(.router) { client in
            let token = try setup.token(subject: "alice@example.com")
            let response = try await client.execute(
                uri: "/v2/models/identity_fp32", method: .get, headers: fields([(.authorization, "Bearer \(token)")]))
            #expect(response.status == .ok)
        }
        await log.close()
        let pseudonym = HexEncoding.lowercase(HMAC<SHA256>.authenticationCode(for: Array("alice@example.com".utf8), using: auditKey))
        let access = try #require(captured.entries.first { $0.message == "request" && $0.metadata["http.route"] == "/v2/models/{model}" })
        #expect(access.metadata["auth.subject"] == nil)
        #expect(access.metadata["auth.subject_hmac"] == pseudonym)
        #expect(!captured.entries.contains { $0.metadata.values.contains { $0.contains("alice@example.com") } })
        let record = try #require(try auditLines(directory).first { $0["type"] as? String == "request" })
        #expect(record["subject_hmac"] as? String == pseudonym, "both logs can be joined on the pseudonym")
    }

    @Test("an edited, a deleted and a reordered line are each reported at the right place")
    func tamperingDetected() async throws {
        let directory = try trafficTestDirectory("audit")
        let log = try openAudit(directory)
        for index in 1...20 { try await log.record(event("req-\(index)")) }
        await log.close()
        let file = try #require(auditFiles(directory).first)
        let pristine = try Data(contentsOf: file)

        try editLines(file) { $0[6] = $0[6].replacingOccurrences(of: "\"status\":200", with: "\"status\":201") }
        var report = verifyAudit([directory.path])
        var problem = try #require(report.chains.first?.problem)
        #expect(problem.kind == "bad_hash" && problem.line == 7 && problem.seq == 7)
        #expect(report.exitCode == 1)
        #expect(report.text.contains("BROKEN at \(file.path):7 (seq 7)"))

        try pristine.write(to: file)
        try editLines(file) { $0.remove(at: 9) }
        report = verifyAudit([directory.path])
        problem = try #require(report.chains.first?.problem)
        #expect(problem.kind == "seq_gap" && problem.line == 10 && problem.seq == 11)

        try pristine.write(to: file)
        try editLines(file) { $0.swapAt(3, 4) }
        report = verifyAudit([directory.path])
        problem = try #require(report.chains.first?.problem)
        #expect(problem.kind == "seq_out_of_order")
        #expect(problem.line == 4 && problem.seq == 5)

        // An edit that also recomputes the record's own hash is caught by the next record.
        try pristine.write(to: file)
        try editLines(file) { lines in
            let original = lines[2]
            let body = original.replacingOccurrences(of: "\"status\":200", with: "\"status\":500")
            let cut = body.range(of: ",\"hash\":\"")!.lowerBound
            let unsealed = Array((body[..<cut] + "}").utf8)
            lines[2] = String(decoding: AuditFraming.seal(body: unsealed, key: chainKey).line.dropLast(), as: UTF8.self)
        }
        report = verifyAudit([directory.path])
        problem = try #require(report.chains.first?.problem)
        #expect(problem.kind == "prev_hash_mismatch" && problem.line == 4 && problem.seq == 4)

        try pristine.write(to: file)
        #expect(verifyAudit([directory.path]).ok)
    }

    @Test("a record edited and the whole chain after it rehashed with SHA-256, as the framing documents, does not verify")
    func rewrittenAndRehashedChainFails() async throws {
        let directory = try trafficTestDirectory("audit")
        let log = try openAudit(directory)
        for index in 1...10 { try await log.record(event("req-\(index)", status: 200)) }
        await log.close()
        let file = try #require(auditFiles(directory).first)
        // Someone who can write the audit directory (but has no chain key) turns a 200 into a 299
        // and recomputes every prev_hash and hash from there on with plain SHA-256.
        try editLines(file) { lines in
            var previous = AuditFraming.genesisHash
            for index in lines.indices {
                var body = String(lines[index][..<lines[index].range(of: ",\"prev_hash\":\"")!.lowerBound])
                if index == 4 { body = body.replacingOccurrences(of: "\"status\":200", with: "\"status\":299") }
                let unsealed = Array((body + ",\"prev_hash\":\"\(previous)\"}").utf8)
                let hash = HexEncoding.lowercase(SHA256.hash(data: unsealed))
                lines[index] = String(decoding: unsealed.dropLast(), as: UTF8.self) + ",\"hash\":\"\(hash)\"}"
                previous = hash
            }
        }
        let edited = try String(contentsOf: file, encoding: .utf8)
        #expect(edited.contains("\"status\":299"))
        let report = verifyAudit([directory.path])
        #expect(!report.ok, "a rehashed chain verified: \(report.text)")
        #expect(report.chains.first?.problem?.seq == 1, "the first record already fails its keyed hash")
    }

    @Test("a torn final record is reported as such, and the next start cuts it and continues the chain")
    func tornTail() async throws {
        let directory = try trafficTestDirectory("audit")
        let log = try openAudit(directory)
        for index in 1...5 { try await log.record(event("req-\(index)")) }
        await log.close()
        let file = try #require(auditFiles(directory).first)
        let handle = try FileHandle(forWritingTo: file)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"seq\":6,\"ts\":\"2026-11-27T0".utf8))
        try handle.close()

        let report = verifyAudit([directory.path])
        let chain = try #require(report.chains.first)
        #expect(chain.status == "torn_tail")
        #expect(chain.problem?.kind == "torn_final_record" && chain.problem?.line == 6)
        #expect(chain.records == 5)
        #expect(report.onlyTornTail && report.exitCode == 2)

        let reopened = try openAudit(directory)
        try await reopened.record(event("req-after"))
        await reopened.close()
        let after = verifyAudit([directory.path])
        #expect(after.ok, "\(after.text)")
        #expect(after.chains.first?.records == 7)  // 5 + torn-tail admin event + 1
        let second = try String(contentsOf: try auditFiles(directory)[1], encoding: .utf8)
        #expect(second.contains("\"kind\":\"audit_torn_tail_removed\""))
    }

    @Test("rotation by size continues the chain across files, and across restarts")
    func rotation() async throws {
        let directory = try trafficTestDirectory("audit")
        var log = try openAudit(directory, maxFileBytes: 4_096)
        for index in 1...60 { try await log.record(event("req-\(index)")) }
        try await log.recordAdmin(kind: "traffic_reload", details: ["revision": "abc", "trigger": "sighup"])
        await log.close()
        log = try openAudit(directory, maxFileBytes: 4_096)
        for index in 61...70 { try await log.record(event("req-\(index)")) }
        let lastHash = log.statistics.lastHash
        await log.close()
        let files = try auditFiles(directory)
        #expect(files.count > 5)
        #expect(files.first?.lastPathComponent == "audit-gw-1-000001.jsonl")
        let report = verifyAudit(files.map(\.path).reversed())  // order comes from the names
        #expect(report.ok, "\(report.text)")
        #expect(report.chains.first?.records == 71)
        #expect(report.chains.first?.lastSeq == 71)
        #expect(report.chains.first?.lastHash == lastHash)

        // Deleting a whole middle file breaks the chain at the start of the next one.
        try FileManager.default.removeItem(at: files[2])
        let broken = verifyAudit([directory.path])
        #expect(broken.chains.first?.problem?.kind == "seq_gap")
        #expect(broken.chains.first?.problem?.file == files[3].path)
        #expect(broken.chains.first?.problem?.line == 1)
    }

    @Test("anchors are published at start, on rotation and at shutdown, and show the newest records cut from the chain")
    func anchorsDetectTruncation() async throws {
        let directory = try trafficTestDirectory("audit")
        var log = try openAudit(directory, maxFileBytes: 4_096)
        #expect(log.statistics.lastAnchor == nil, "a new chain has nothing to anchor")
        for index in 1...25 { try await log.record(event("req-\(index)")) }
        // About ten records fill a 4 KiB file: the newest anchor is that of the latest rotation.
        let rotated = try #require(log.statistics.lastAnchor)
        #expect(rotated.reason == "rotation" && rotated.seq >= 10)
        await log.close()
        let closed = try #require(log.statistics.lastAnchor)
        #expect(closed.reason == "shutdown" && closed.seq == 25 && closed.hash == log.statistics.lastHash)
        log = try openAudit(directory, maxFileBytes: 4_096)
        let started = try #require(log.statistics.lastAnchor)
        #expect(started.reason == "start" && started.seq == 25 && started.hash == closed.hash)
        await log.close()
        #expect(verifyAudit([directory.path], anchors: [rotated, closed]).ok)

        // Cut the newest records (a restart would continue from the shorter chain unnoticed):
        // the chain alone still verifies, the shutdown anchor shows the cut.
        let last = try #require(try auditFiles(directory).last { (try? Data(contentsOf: $0))?.isEmpty == false })
        let bytes = try Data(contentsOf: last).dropLast()  // the final newline
        try Data(bytes.lastIndex(of: UInt8(ascii: "\n")).map { bytes[...$0] } ?? Data()).write(to: last)
        #expect(verifyAudit([directory.path]).ok)
        let report = verifyAudit([directory.path], anchors: [AuditAnchor(text: closed.text)!])
        #expect(report.chains.first?.problem?.kind == "truncated")
        #expect(report.chains.first?.problem?.message.contains("reached seq 25") == true, "\(report.text)")
        #expect(report.exitCode == 1)
        // An anchor that names another record at a seq the chain holds: rewritten.
        let forged = AuditAnchor(instance: "gw-1", seq: 3, hash: String(repeating: "a", count: 64))
        #expect(verifyAudit([directory.path], anchors: [forged]).chains.first?.problem?.kind == "anchor_mismatch")
        // An anchor of a chain whose files are gone.
        let gone = AuditAnchor(instance: "gw-9", seq: 1, hash: closed.hash)
        #expect(verifyAudit([directory.path], anchors: [gone]).chains.contains { $0.problem?.kind == "missing_chain" })
        #expect(AuditAnchor(text: "gw-1:0:\(closed.hash)") == nil && AuditAnchor(text: "gw-1:3:XYZ") == nil)
    }

    @Test("each instance's chain is verified on its own")
    func severalChains() async throws {
        let directory = try trafficTestDirectory("audit")
        let a = try openAudit(directory, instance: "gw-a")
        let b = try openAudit(directory, instance: "gw-b")
        for index in 1...10 {
            try await a.record(event("a-\(index)"))
            try await b.record(event("b-\(index)"))
        }
        await a.close()
        await b.close()
        try editLines(try #require(auditFiles(directory).last)) { $0.remove(at: 0) }
        let report = verifyAudit([directory.path])
        #expect(report.chains.map(\.instance) == ["gw-a", "gw-b"])
        #expect(report.chains[0].status == "ok")
        #expect(report.chains[1].problem?.kind == "missing_start")
    }

    @Test("a write error (disk full) makes record throw, and keep throwing")
    func writeFailureIsPermanent() async throws {
        let directory = try trafficTestDirectory("audit")
        let log = try openAudit(directory, openFile: { _ in DevFullAuditFile() })
        await #expect(throws: AuditLogError.self) { try await log.record(event("one")) }
        await #expect(throws: AuditLogError.self) { try await log.record(event("two")) }
        await #expect(throws: AuditLogError.self) { try await log.recordAdmin(kind: "x", details: [:]) }
        #expect(log.statistics.failure?.contains("No space left") == true)
        await log.close()
    }

    @Test("an fsync error stops the writer: the record in flight and all later ones throw")
    func fsyncFailureIsPermanent() async throws {
        let directory = try trafficTestDirectory("audit")
        let log = try openAudit(directory, openFile: { try FailingSyncAuditFile(path: $0, okSyncs: 3) })
        for index in 1...3 { try await log.record(event("ok-\(index)")) }
        await #expect(throws: AuditLogError.self) { try await log.record(event("lost")) }
        await #expect(throws: AuditLogError.self) { try await log.record(event("later")) }
        await log.close()
    }

    @Test("a read-only audit directory refuses to open the log")
    func readOnlyDirectory() throws {
        // Root ignores directory permissions, so use a path under a regular file.
        let directory = try trafficTestDirectory("audit")
        let blocker = directory.appendingPathComponent("not-a-dir")
        try Data("x".utf8).write(to: blocker)
        #expect(throws: (any Error).self) { try openAudit(blocker.appendingPathComponent("audit")) }
    }
}

/// SIGKILL under load, with the audit log alone: a child process (this test
/// binary, re-run with a filter) writes records from 16 concurrent tasks and
/// prints each request id once `record` has returned; the parent kills it with
/// SIGKILL mid-stream, then checks the log verifies (or ends only in a torn record)
/// and holds every acknowledged id. The gateway end-to-end version (HTTP 2xx
/// instead of "ACK") belongs with the server.
@Suite("Audit log under SIGKILL")
struct AuditKillTests {
    static let childDirectoryVariable = "GATEWAY_AUDIT_KILL_CHILD_DIR"

    @Test("SIGKILL mid-load leaves a verifiable log with every acknowledged record")
    func sigkillLeavesVerifiableLog() async throws {
        let directory = try trafficTestDirectory("audit-kill")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["--testing-library", "swift-testing", "--filter", "auditWriterChildProcess"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.childDirectoryVariable] = directory.path
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = output.fileHandleForReading
        // Blocking pipe reads for the child's whole run: on a thread of their own.
        let acknowledged = try await offThePool { () -> [String] in
            var buffer = Data()
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                let count = buffer.split(separator: UInt8(ascii: "\n")).filter { $0.starts(with: Array("ACK ".utf8)) }.count
                if count >= 1_500 { break }
            }
            kill(process.processIdentifier, SIGKILL)
            // Whatever was acknowledged before the kill landed is in the pipe too.
            buffer.append(reader.readDataToEndOfFile())
            return String(decoding: buffer, as: UTF8.self).split(separator: "\n")
                .filter { $0.hasPrefix("ACK ") && $0.count > 4 }.map { String($0.dropFirst(4)) }
        }
        try await offThePool { process.waitUntilExit() }
        #expect(process.terminationReason == .uncaughtSignal)
        #expect(acknowledged.count >= 1_500)

        let report = verifyAudit([directory.path])
        #expect(report.ok || report.onlyTornTail, "\(report.text)")
        var logged: Set<String> = []
        for file in try auditFiles(directory) {
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
                if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let id = object["request_id"] as? String {
                    logged.insert(id)
                }
            }
        }
        let missing = acknowledged.filter { !logged.contains($0) }
        #expect(missing.isEmpty, "acknowledged but not in the log: \(missing.prefix(5))")

        // A restart after the crash continues a chain that verifies completely.
        let reopened = try openAudit(directory)
        try await reopened.record(event("after-crash"))
        await reopened.close()
        let after = verifyAudit([directory.path])
        #expect(after.ok, "\(after.text)")
    }

    /// Not a test of its own: the writer half of the SIGKILL test, run only in the
    /// child process that test starts (it never finishes by itself: it is killed).
    @Test(.enabled(if: ProcessInfo.processInfo.environment[AuditKillTests.childDirectoryVariable] != nil))
    func auditWriterChildProcess() async throws {
        let path = try #require(ProcessInfo.processInfo.environment[Self.childDirectoryVariable])
        let log = try openAudit(URL(fileURLWithPath: path))
        let deadline = Date().addingTimeInterval(60)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<16 {
                group.addTask {
                    var index = 0
                    while Date() < deadline {
                        let id = "kill-\(task)-\(index)"
                        try await log.record(event(id))
                        FileHandle.standardOutput.write(Data("ACK \(id)\n".utf8))
                        index += 1
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

@Suite("Audit encodings")
struct AuditEncodingTests {
    @Test func timestampsMatchFoundationsRFC3339Format() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        for seconds in [0.0, 1.5, 951_782_400.999, 1_795_000_000.123, 4_102_444_799.5, 1_795_000_000.9996] {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(UTCTimestamp.millis(date) == formatter.string(from: date), "at \(seconds)")
        }
        #expect(UTCTimestamp.millis(Date(timeIntervalSince1970: 1_795_000_000.25)) == "2026-11-18T11:06:40.250Z")
    }

    @Test func hexAndMillisecondFormatting() {
        #expect(HexEncoding.lowercase([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(HexEncoding.lowercase([UInt8]()) == "")
        #expect(EdgeMiddleware.milliseconds(0.0123456) == "12.346")
        #expect(EdgeMiddleware.milliseconds(2) == "2000.000")
        #expect(EdgeMiddleware.milliseconds(0.000_001) == "0.001")
    }
}
