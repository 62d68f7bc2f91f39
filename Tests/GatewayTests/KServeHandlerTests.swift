@testable import Gateway
import Testing

@Suite struct KServeHandlerTests {
    /// Only Triton's "load / unload is not allowed" 503 means model control is off (409);
    /// a 503 while it starts or drains, or on any other call, is not that.
    @Test func onlyTritonsModelControlRefusalIs409() {
        let refusal = Array(#"{"error":"explicit model load / unload is not allowed if polling is enabled"}"#.utf8)
        let draining = Array(#"{"error":"Server not ready"}"#.utf8)
        #expect(KServeHandler.isModelControlRefusal(path: "/v2/repository/models/m1/load", status: 503, body: refusal))
        #expect(KServeHandler.isModelControlRefusal(path: "/v2/repository/models/m1/unload", status: 503, body: refusal))
        #expect(!KServeHandler.isModelControlRefusal(path: "/v2/repository/models/m1/load", status: 503, body: draining))
        #expect(!KServeHandler.isModelControlRefusal(path: "/v2/repository/models/m1/load", status: 500, body: refusal))
        #expect(!KServeHandler.isModelControlRefusal(path: "/v2/trace/setting", status: 503, body: refusal))
    }
}
