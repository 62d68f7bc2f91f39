import Foundation

/// Entry point of `moderation-gateway audit verify`: prints the verifier's text
/// report and returns its exit code (see `verifyAuditLogs(paths:json:)`).
public func verifyAuditLogs(paths: [String]) -> Int32 {
    verifyAuditLogs(paths: paths, json: false)
}
