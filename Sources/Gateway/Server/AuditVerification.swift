import Foundation

/// Entry point of `moderation-gateway audit verify`: runs the audit part's
/// `AuditVerifier` over the files, prints one line per chain (and the first
/// problem of a broken one) plus the full report as JSON, and returns the exit
/// code: 0 every chain verifies, 2 only a torn final record (a crash), 1 broken
/// or nothing found.
public func verifyAuditLogs(paths: [String]) -> Int32 {
    let report = AuditVerifier.verify(paths: paths)
    for chain in report.chains {
        var line = "\(chain.status): instance \(chain.instance), \(chain.records) records"
        if let first = chain.firstSeq, let last = chain.lastSeq { line += ", seq \(first)...\(last)" }
        print(line)
        if let problem = chain.problem {
            print("  first problem: \(problem.kind) at \(problem.file):\(problem.line): \(problem.message)")
        }
    }
    if report.chains.isEmpty { print("no audit records found in \(paths.joined(separator: ", "))") }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    if let data = try? encoder.encode(report), let text = String(data: data, encoding: .utf8) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
    return report.exitCode
}
