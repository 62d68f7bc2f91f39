import Foundation

/// Why `audit verify` could not start: an unreadable key file or a malformed anchor.
public struct AuditVerificationUsageError: Error, CustomStringConvertible {
    public var description: String
}

/// `moderation-gateway audit verify --key-file KEY [--anchor A…] PATH…`: checks each
/// chain with the chain key derived from the audit key file, and that every anchor
/// (`INSTANCE:SEQ:HASH`, as the writer logs them) names a record the chain still holds;
/// prints the report (text, or JSON with `json`) and returns its exit code (0 ok,
/// 2 only a torn final record, 1 broken).
public func verifyAuditLogs(paths: [String], json: Bool, keyFile: String, anchors: [String]) throws -> Int32 {
    guard let keyBytes = FileManager.default.contents(atPath: keyFile), !keyBytes.isEmpty else {
        throw AuditVerificationUsageError(description: "cannot read the audit key file \(keyFile) (audit.key_file of the gateway that wrote the log)")
    }
    let parsed = try anchors.map { text in
        guard let anchor = AuditAnchor(text: text) else {
            throw AuditVerificationUsageError(description: "anchor \(text) is not INSTANCE:SEQ:HASH (copy audit.anchor from an `audit anchor` log line)")
        }
        return anchor
    }
    let report = AuditVerifier.verify(paths: paths, key: AuditChainKey(keyBytes: [UInt8](keyBytes)), anchors: parsed)
    if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let data = try? encoder.encode(report) { print(String(decoding: data, as: UTF8.self)) }
    } else {
        print(report.text)
    }
    return report.exitCode
}
