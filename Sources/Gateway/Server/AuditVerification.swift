import Foundation

/// Entry point of `moderation-gateway audit verify`. The verifier lives with the
/// audit writer (branch `traffic`); until it is connected here this reports that
/// verification is not available and returns a non-zero exit code.
public func verifyAuditLogs(paths: [String]) -> Int32 {
    FileHandle.standardError.write(Data("audit verify: not available in this build (the audit verifier is not connected yet)\n".utf8))
    return 3
}
