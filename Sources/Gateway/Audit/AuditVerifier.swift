import Crypto
import Foundation

/// Where a chain stood at a moment: its newest record's sequence number and hash.
/// The audit writer publishes one at start, on rotation, periodically and at shutdown
/// (log line `audit anchor`, admin API); kept outside the audit volume, it shows
/// whether records were later cut from the chain's end. Written `INSTANCE:SEQ:HASH`.
public struct AuditAnchor: Sendable, Codable, Equatable {
    public var instance: String
    public var seq: Int
    public var hash: String
    /// `start`, `rotation`, `periodic` or `shutdown` (absent in a parsed anchor).
    public var reason: String?
    public var at: String?

    public init(instance: String, seq: Int, hash: String, reason: String? = nil, at: String? = nil) {
        self.instance = instance
        self.seq = seq
        self.hash = hash
        self.reason = reason
        self.at = at
    }

    public var text: String { "\(instance):\(seq):\(hash)" }

    /// Parses `INSTANCE:SEQ:HASH` (instance ids cannot contain `:`).
    public init?(text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, AuditFileNames.isSafe(String(parts[0])), let seq = Int(parts[1]), seq > 0,
              parts[2].count == 64, parts[2].allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        self.init(instance: String(parts[0]), seq: seq, hash: String(parts[2]))
    }
}

/// Result of `AuditVerifier.verify(paths:key:anchors:)`: one entry per chain (per instance).
public struct AuditVerificationReport: Sendable, Codable, Equatable {
    public struct Problem: Sendable, Codable, Equatable {
        /// `bad_hash`, `malformed`, `seq_gap`, `seq_out_of_order`, `prev_hash_mismatch`,
        /// `instance_mismatch`, `missing_start`, `torn_final_record`, `unreadable`,
        /// `anchor_mismatch`, `truncated` (the chain ends before an anchor's record),
        /// `missing_chain` (an anchor names an instance with no records).
        public var kind: String
        public var file: String
        /// 1-based line in `file`.
        public var line: Int
        /// Sequence number the record states, when it could be read.
        public var seq: Int?
        public var message: String
    }

    public struct Chain: Sendable, Codable, Equatable {
        public var instance: String
        public var files: [String]
        /// Records that verified (up to the first problem).
        public var records: Int
        public var firstSeq: Int?
        public var lastSeq: Int?
        public var lastHash: String?
        /// `ok`, `torn_tail` (everything verifies except a torn final record) or `broken`.
        public var status: String
        public var problem: Problem?
    }

    public var chains: [Chain]

    /// True when every chain verifies completely.
    public var ok: Bool { !chains.isEmpty && chains.allSatisfy { $0.status == "ok" } }
    /// True when nothing is broken but some chain ends in a torn record (a crash).
    public var onlyTornTail: Bool {
        !chains.isEmpty && chains.allSatisfy { $0.status != "broken" } && chains.contains { $0.status == "torn_tail" }
    }

    /// Suggested exit code for `audit verify`: 0 ok, 2 torn tail only, 1 broken or nothing found.
    public var exitCode: Int32 { ok ? 0 : (onlyTornTail ? 2 : 1) }

    /// Human-readable summary, one line per chain.
    public var text: String {
        if chains.isEmpty { return "no audit records found" }
        return chains.map { chain in
            let range = chain.firstSeq.map { first in "seq \(first)…\(chain.lastSeq ?? first)" } ?? "no records"
            let head = "chain \(chain.instance): "
            let files = "\(chain.files.count) file\(chain.files.count == 1 ? "" : "s")"
            switch chain.status {
            case "ok":
                return head + "OK, \(chain.records) records (\(range)) in \(files)"
            default:
                guard let problem = chain.problem else { return head + chain.status }
                let seq = problem.seq.map { " (seq \($0))" } ?? ""
                let label = chain.status == "torn_tail" ? "TORN FINAL RECORD" : "BROKEN"
                return head + "\(label) at \(problem.file):\(problem.line)\(seq): \(problem.kind): \(problem.message); "
                    + "\(chain.records) records verified before it (\(range)) in \(files)"
            }
        }.joined(separator: "\n")
    }
}

/// Checks audit chains written by `AuditLog`.
///
/// Each path is a file or a directory (whose `*.jsonl` files are taken). Files are
/// grouped by instance (from `audit-<instance>-<NNNNNN>.jsonl`, else the first
/// record's `instance`) and read in file-number order; each group must form one
/// chain from seq 1: each line complete (newline), its hash the chain key's HMAC of
/// the line, its seq one more than the last, its `prev_hash` the last record's hash.
/// The first break is reported with file, line and seq. A bad last line of the last
/// file is a torn final record (what a crash mid-write leaves), reported as such.
///
/// A chain cannot show by itself that records were cut from its end: each anchor
/// given (kept outside the audit volume) must name a record the chain still holds.
public enum AuditVerifier {
    public static func verify(paths: [String], key: AuditChainKey, anchors: [AuditAnchor] = []) -> AuditVerificationReport {
        var files: [String] = []
        var unreadable: [AuditVerificationReport.Chain] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                unreadable.append(brokenChain(instance: "?", file: path, kind: "unreadable", message: "no such file or directory"))
                continue
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.filter { $0.hasSuffix(".jsonl") }.sorted().map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        // Group by instance.
        var groups: [String: [(path: String, index: Int?, data: Data)]] = [:]
        for path in Set(files).sorted() {
            guard let data = FileManager.default.contents(atPath: path) else {
                unreadable.append(brokenChain(instance: "?", file: path, kind: "unreadable", message: "cannot read file"))
                continue
            }
            let name = (path as NSString).lastPathComponent
            let parsed = AuditFileNames.parseAuditFile(name)
            let instance = parsed?.instance ?? firstInstance(in: data) ?? name
            groups[instance, default: []].append((path, parsed?.index, data))
        }
        var chains = unreadable
        for instance in groups.keys.sorted() {
            let ordered = (groups[instance] ?? []).sorted { a, b in
                switch (a.index, b.index) {
                case let (x?, y?): return x < y
                default: return (firstSeq(in: a.data) ?? 0) < (firstSeq(in: b.data) ?? 0)
                }
            }
            chains.append(verifyChain(
                instance: instance, files: ordered.map { ($0.path, $0.data) }, key: key,
                anchors: anchors.filter { $0.instance == instance }))
        }
        for anchor in anchors where groups[anchor.instance] == nil {
            chains.append(brokenChain(
                instance: anchor.instance, file: paths.joined(separator: " "), kind: "missing_chain",
                message: "anchor \(anchor.text) names a chain with no records here: its files were removed"))
        }
        return AuditVerificationReport(chains: chains)
    }

    private static func brokenChain(instance: String, file: String, kind: String, message: String) -> AuditVerificationReport.Chain {
        .init(
            instance: instance, files: [file], records: 0, firstSeq: nil, lastSeq: nil, lastHash: nil, status: "broken",
            problem: .init(kind: kind, file: file, line: 0, seq: nil, message: message)
        )
    }

    private static func lines(_ data: Data) -> [(bytes: ArraySlice<UInt8>, complete: Bool)] {
        let bytes = Array(data)
        var result: [(ArraySlice<UInt8>, Bool)] = []
        var start = 0
        for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
            result.append((bytes[start..<index], true))
            start = index + 1
        }
        if start < bytes.count { result.append((bytes[start...], false)) }
        return result
    }

    private static func parse(_ line: ArraySlice<UInt8>) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
    }

    private static func firstInstance(in data: Data) -> String? {
        lines(data).first.flatMap { parse($0.bytes)?["instance"] as? String }
    }

    private static func firstSeq(in data: Data) -> Int? {
        lines(data).first.flatMap { parse($0.bytes)?["seq"] as? Int }
    }

    static func verifyChain(
        instance: String, files: [(path: String, data: Data)], key: AuditChainKey, anchors: [AuditAnchor]
    ) -> AuditVerificationReport.Chain {
        var chain = AuditVerificationReport.Chain(
            instance: instance, files: files.map(\.path), records: 0, firstSeq: nil, lastSeq: nil, lastHash: nil,
            status: "ok", problem: nil
        )
        var expectedPrev = AuditFraming.genesisHash
        var lastSeq: Int?
        for (fileNumber, file) in files.enumerated() {
            let fileLines = lines(file.data)
            for (lineIndex, line) in fileLines.enumerated() {
                let isFinal = fileNumber == files.count - 1 && lineIndex == fileLines.count - 1
                let object = parse(line.bytes)
                let seq = object?["seq"] as? Int
                func fail(_ kind: String, _ message: String) -> AuditVerificationReport.Chain {
                    var broken = chain
                    if isFinal && !line.complete {
                        broken.status = "torn_tail"
                        broken.problem = .init(
                            kind: "torn_final_record", file: file.path, line: lineIndex + 1, seq: seq,
                            message: "last record has no newline: cut short by a crash, never acknowledged"
                        )
                    } else {
                        broken.status = "broken"
                        broken.problem = .init(kind: kind, file: file.path, line: lineIndex + 1, seq: seq, message: message)
                    }
                    return broken
                }
                guard line.complete else {
                    return fail("malformed", "record has no terminating newline")
                }
                guard let object, let seq else {
                    return fail("malformed", "line is not a JSON audit record")
                }
                guard let sealed = AuditFraming.unseal(line: line.bytes) else {
                    return fail("malformed", "line does not end with a hash member")
                }
                guard key.seal(sealed.body) == sealed.statedHash else {
                    return fail("bad_hash", "record content does not match its keyed hash (edited, or another chain key)")
                }
                if let recordInstance = object["instance"] as? String, recordInstance != instance,
                   AuditFileNames.parseAuditFile((file.path as NSString).lastPathComponent) != nil {
                    return fail("instance_mismatch", "record belongs to instance \(recordInstance)")
                }
                let prev = object["prev_hash"] as? String
                if let lastSeq {
                    if seq != lastSeq + 1 {
                        let expected = lastSeq + 1
                        let laterHasExpected = fileLines[(lineIndex + 1)...].contains { parse($0.bytes)?["seq"] as? Int == expected }
                        if seq > expected && !laterHasExpected {
                            return fail("seq_gap", "expected seq \(expected), found \(seq): records missing")
                        }
                        return fail("seq_out_of_order", "expected seq \(lastSeq + 1), found \(seq): records reordered or repeated")
                    }
                    guard prev == expectedPrev else {
                        return fail("prev_hash_mismatch", "prev_hash does not match the hash of seq \(lastSeq)")
                    }
                } else {
                    guard seq == 1, prev == AuditFraming.genesisHash else {
                        return fail("missing_start", "chain starts at seq \(seq), not 1: earlier records or files missing")
                    }
                    chain.firstSeq = seq
                }
                if let anchor = anchors.first(where: { $0.seq == seq }), anchor.hash != sealed.statedHash {
                    return fail("anchor_mismatch", "anchor \(anchor.text) names another record at this seq: the chain was rewritten")
                }
                lastSeq = seq
                expectedPrev = sealed.statedHash
                chain.records += 1
                chain.lastSeq = seq
                chain.lastHash = sealed.statedHash
            }
        }
        if let beyond = anchors.filter({ $0.seq > (lastSeq ?? 0) }).max(by: { $0.seq < $1.seq }) {
            chain.status = "broken"
            chain.problem = .init(
                kind: "truncated", file: files.last?.path ?? "", line: files.last.map { lines($0.data).count } ?? 0,
                seq: lastSeq,
                message: "the chain ends at seq \(lastSeq ?? 0), but anchor \(beyond.text) shows it reached seq \(beyond.seq): "
                    + "the newest records were cut")
        }
        return chain
    }
}
