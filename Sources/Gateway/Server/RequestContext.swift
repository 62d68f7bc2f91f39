import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers

/// What a request learned on its way through, shared by the handler and the
/// edge middleware that writes the audit event and metrics.
public final class RequestRecord: Sendable {
    struct Fields {
        var principal: Principal?
        var decision: RouteDecision?
        var verdict: String?
        var reasonCodes: [String] = []
        var upstreamStatus: Int?
        var upstreamLatencySeconds: Double?
        var inputBytes = 0
        var contentType: String?
        var inputHMAC: String?
        var target: [String: String] = [:]
        var routeTemplate: String?
        var authFailureReason: String?
    }
    private let box = NIOLockedValueBox(Fields())

    func update(_ body: (inout Fields) -> Void) { box.withLockedValue { body(&$0) } }
    var snapshot: Fields { box.withLockedValue { $0 } }
}

/// W3C trace context of a request: the trace id we log and the `traceparent` we send upstream.
public struct TraceContext: Sendable {
    public var traceID: String
    public var parentID: String
    public var flags: String

    /// Parses a `traceparent` (version 00, lowercase hex, non-zero ids); `nil` if malformed.
    public static func parse(_ value: String) -> TraceContext? {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].count == 2, parts[1].count == 32, parts[2].count == 16, parts[3].count == 2 else { return nil }
        guard parts.prefix(4).allSatisfy({ $0.utf8.allSatisfy(isLowerHex) }) else { return nil }
        guard parts[0] != "ff", parts[1] != String(repeating: "0", count: 32), parts[2] != String(repeating: "0", count: 16) else { return nil }
        if parts[0] == "00" && parts.count != 4 { return nil }
        return TraceContext(traceID: String(parts[1]), parentID: String(parts[2]), flags: String(parts[3]))
    }

    static func isLowerHex(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) }

    /// A new trace (no usable incoming `traceparent`).
    static func fresh() -> TraceContext {
        TraceContext(traceID: RandomIDs.hex(bytes: 16), parentID: RandomIDs.hex(bytes: 8), flags: "01")
    }

    /// The header for the upstream call: same trace, a new span id for the gateway's hop.
    func childHeader() -> String {
        "00-\(traceID)-\(RandomIDs.hex(bytes: 8))-\(flags)"
    }
}

/// Per-request context: the request id and trace, plus the shared record.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID: String = ""
    public var trace: TraceContext = TraceContext(traceID: "", parentID: "", flags: "00")
    public let record = RequestRecord()
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peerAddress = source.channel.remoteAddress?.ipAddress
    }

    /// Bodies are read by the handlers with their own limit (`limits.max_body_bytes`).
    public var maxUploadSize: Int { Int.max }
}
