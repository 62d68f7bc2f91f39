import Foundation
import Testing
@testable import TritonClient

/// Transport behaviour that needs exact control of the server's bytes; Triton itself is used
/// for everything else (see IntegrationTests).
@Suite struct TransportTests {
    /// A client for a canned server, with a timeout so a transport bug fails a test instead of hanging it.
    func cannedClient(_ url: String, _ configure: (inout InferenceServerClient.Configuration) -> Void = { _ in }) throws
        -> InferenceServerClient
    {
        var configuration = InferenceServerClient.Configuration()
        configuration.requestTimeout = .seconds(10)
        configure(&configuration)
        return try InferenceServerClient(url: url, configuration: configuration)
    }

    func fp32Input() throws -> InferInput {
        var input = InferInput(name: "INPUT0", shape: [1, 2], datatype: .fp32)
        try input.setData([1, 2] as [Float])
        return input
    }

    @Test func sendsHeadersQueryAndFramingExactly() async throws {
        let reply = #"{"model_name":"m","outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}]}"#
        let server = try CannedHTTPServer { _ in
            CannedHTTPServer.response(
                headers: [("Inference-Header-Content-Length", "\(reply.utf8.count)")],
                body: Array(reply.utf8) + [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])
        }
        defer { server.stop() }
        let client = try cannedClient(server.url) {
            $0.headers = [("X-Default", "d")]
            $0.requestCompression = .gzip
        }
        let result = try await client.infer(
            "my model", inputs: [fp32Input()], version: "2",
            options: CallOptions(headers: [("X-Call", "c")], query: [("a b", "1&2")]))
        #expect(try result.asFloat("OUTPUT0") == [1, 2])
        let request = try #require(server.requests.first)
        #expect(request.requestLine == "POST /v2/models/my%20model/versions/2/infer?a%20b=1%262 HTTP/1.1")
        #expect(request.header("X-Default") == "d")
        #expect(request.header("X-Call") == "c")
        #expect(request.header("Expect") == nil)
        #expect(request.header("Content-Encoding") == "gzip")
        let body = try BodyCompression.decompress(request.body)
        let headerLength = try #require(Int(request.header("Inference-Header-Content-Length") ?? ""))
        #expect(Array(body[headerLength...]) == [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])
        #expect(try JSONValue.parse(body[0..<headerLength])["inputs"]?[0]?["name"] == "INPUT0")
    }

    @Test func reusesOneConnectionForSequentialCallsOfEveryKind() async throws {
        let server = try CannedHTTPServer { request in
            if request.requestLine.hasPrefix("GET /v2 ") {
                return CannedHTTPServer.response(body: Array(#"{"name":"triton","version":"x","extensions":[]}"#.utf8))
            }
            return CannedHTTPServer.response(body: [])
        }
        defer { server.stop() }
        let client = try cannedClient(server.url)
        for _ in 0..<5 {
            #expect(try await client.isServerLive())
            #expect(try await client.serverMetadata().name == "triton")
            #expect(try await client.isModelReady("m"))
        }
        #expect(server.connectionCount == 1)
    }

    @Test func connectionsPerHostAreBounded() async throws {
        let server = try CannedHTTPServer { _ in
            Thread.sleep(forTimeInterval: 0.02)
            return CannedHTTPServer.response(body: [])
        }
        defer { server.stop() }
        let client = try cannedClient(server.url) { $0.maxConnectionsPerHost = 2 }
        let live = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 { group.addTask { try await client.isServerLive() } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(live == 16)
        #expect(server.connectionCount <= 2)
        #expect(server.requests.count == 16)
    }

    @Test func malformedBinaryFrameFromTheServerIsAnErrorNotACrash() async throws {
        let server = try CannedHTTPServer { _ in
            CannedHTTPServer.response(headers: [("Inference-Header-Content-Length", "999")], body: Array("{}".utf8))
        }
        defer { server.stop() }
        let client = try cannedClient(server.url)
        await #expect {
            try await client.infer("m", inputs: [fp32Input()])
        } throws: { ($0 as? TritonClientError)?.code == .malformedResponse }
    }

    @Test func oversizedResponseIsRefused() async throws {
        let server = try CannedHTTPServer { _ in CannedHTTPServer.response(body: [UInt8](repeating: 0x61, count: 5000)) }
        defer { server.stop() }
        let client = try cannedClient(server.url) { $0.maxResponseBytes = 1000 }
        await #expect {
            try await client.execute(RawHTTPRequest(method: "GET", path: "/v2"))
        } throws: { ($0 as? TritonClientError)?.code == .malformedResponse }
        let roomy = try cannedClient(server.url) { $0.maxResponseBytes = 5000 }
        #expect(try await roomy.execute(RawHTTPRequest(method: "GET", path: "/v2")).body.count == 5000)
    }

    @Test func duplicateResponseParameterKeysDoNotFailTheCall() async throws {
        let reply = #"{"model_name":"m","model_version":"1","parameters":{"sequence_id":1,"sequence_start":false,"sequence_id":1},"outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[1],"data":[4.5]}]}"#
        let server = try CannedHTTPServer { _ in CannedHTTPServer.response(body: Array(reply.utf8)) }
        defer { server.stop() }
        let client = try cannedClient(server.url)
        let result = try await client.infer("m", inputs: [fp32Input()])
        #expect(try result.asFloat("OUTPUT0") == [4.5])
        #expect(result.parameters?["sequence_id"] == .int(1))
    }

    @Test func timeoutWithoutAnAnswerIsATimeout() async throws {
        let server = try CannedHTTPServer { _ in nil }
        defer { server.stop() }
        // The server never answers and the client's own timeout is 60 s: only the call's
        // 200 ms timeout can end the call with `.timeout` well before that. The bound is
        // far above what a loaded CI machine shows (well under a second), far below 60 s.
        let client = try cannedClient(server.url) { $0.requestTimeout = .seconds(60) }
        let started = ContinuousClock.now
        await #expect {
            try await client.isServerLive(options: CallOptions(timeout: .milliseconds(200)))
        } throws: { ($0 as? TritonClientError)?.code == .timeout }
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(server.requests.count == 1, "the request was sent, then abandoned")
    }

    @Test(arguments: [false, true])
    func cancellingTheTaskAbortsTheTransfer(onClientExecutor: Bool) async throws {
        let server = try CannedHTTPServer { _ in nil }
        defer { server.stop() }
        let client = try cannedClient(server.url) { $0.requestTimeout = .seconds(60) }
        let task = Task(executorPreference: onClientExecutor ? client.executor : nil) { try await client.isServerLive() }
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        task.cancel()
        await #expect {
            try await task.value
        } throws: { ($0 as? TritonClientError)?.code == .cancelled }
        // The server never answers and the client's timeout is 60 s: only the cancellation can end
        // the call early. The bound is loose because CI machines are shared and loaded.
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test func tasksPreferringTheClientExecutorRunOnItsThread() async throws {
        let server = try CannedHTTPServer { _ in CannedHTTPServer.response(body: []) }
        defer { server.stop() }
        let client = try cannedClient(server.url) { $0.maxConnectionsPerHost = 4 }
        let outcomes = try await withTaskExecutorPreference(client.executor) {
            try await withThrowingTaskGroup(of: (live: Int, onCurlThread: Int).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var live = 0, onCurlThread = 0
                        for _ in 0..<20 {
                            if try await client.isServerLive() { live += 1 }
                            if client.loop.isCurrentThread { onCurlThread += 1 }
                        }
                        return (live, onCurlThread)
                    }
                }
                return try await group.reduce(into: [(live: Int, onCurlThread: Int)]()) { $0.append($1) }
            }
        }
        #expect(outcomes.map(\.live) == Array(repeating: 20, count: 8))
        #expect(outcomes.map(\.onCurlThread) == Array(repeating: 20, count: 8))
        // Without the preference the same calls resume on Swift's default pool.
        _ = try await client.isServerLive()
        #expect(!client.loop.isCurrentThread)
    }

    @Test(.disabled(if: sanitizerRun, sanitizerReason)) func anIdleClientThreadPicksUpCallsPromptly() async throws {
        // The curl thread sleeps in curl_multi_poll between calls and is woken only then:
        // a lost wakeup would leave each call waiting for the poll's 1 s timeout.
        let server = try CannedHTTPServer { _ in CannedHTTPServer.response(body: []) }
        defer { server.stop() }
        let client = try cannedClient(server.url)
        _ = try await client.isServerLive()
        let started = ContinuousClock.now
        for _ in 0..<10 {
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await client.isServerLive())
        }
        // A lost wakeup would leave the call queued until the poll's 1 s timeout: the loop
        // counts those itself, so the check does not depend on how loaded the machine is.
        #expect(client.loop.lostWakeups == 0)
        #expect(ContinuousClock.now - started < .seconds(10), "10 calls after idle gaps took \(ContinuousClock.now - started)")
    }

    @Test func theExecutorOfAStoppedClientStillRunsTasks() async throws {
        let server = try CannedHTTPServer { _ in CannedHTTPServer.response(body: []) }
        defer { server.stop() }
        let client = try cannedClient(server.url)
        let executor = client.executor
        client.loop.shutdown()
        // The curl thread is gone (or going): jobs must land on the default pool, not be lost.
        let value = await withTaskExecutorPreference(executor) {
            try? await Task.sleep(for: .milliseconds(5))
            return 42
        }
        #expect(value == 42)
        await #expect {
            try await withTaskExecutorPreference(executor) { try await client.isServerLive() }
        } throws: { ($0 as? TritonClientError)?.code == .cancelled }
    }

    @Test func refusedConnectionIsConnectionFailed() async throws {
        // Bind a port, then close it, so nothing listens there.
        let server = try CannedHTTPServer { _ in nil }
        let url = server.url
        server.stop()
        let client = try cannedClient(url)
        await #expect {
            try await client.isServerLive()
        } throws: { ($0 as? TritonClientError)?.code == .connectionFailed }
    }

    @Test func rawExecuteSendsOnlyWhatItIsGivenAndReturnsAnyStatus() async throws {
        let server = try CannedHTTPServer { _ in
            CannedHTTPServer.response(status: 400, headers: [("Content-Type", "application/json")], body: Array(#"{"error":"bad"}"#.utf8))
        }
        defer { server.stop() }
        let client = try cannedClient(server.url) { $0.headers = [("X-Default", "d")] }
        let response = try await client.execute(RawHTTPRequest(
            method: "POST", path: "/v2/models/x/infer", query: [("q", "1")],
            headers: [("Content-Type", "application/json"), ("traceparent", "00-abc-01"), ("Content-Length", "999")],
            body: Array("{}".utf8)))
        #expect(response.status == 400)
        #expect(response.body == Array(#"{"error":"bad"}"#.utf8))
        #expect(response.header("content-type") == "application/json")
        let request = try #require(server.requests.first)
        #expect(request.requestLine == "POST /v2/models/x/infer?q=1 HTTP/1.1")
        #expect(request.header("Content-Length") == "2")
        #expect(request.header("traceparent") == "00-abc-01")
        #expect(request.header("X-Default") == nil)
        #expect(request.header("Accept") == nil)
        #expect(request.header("Expect") == nil)
        #expect(request.body == Array("{}".utf8))
    }

    @Test func rawExecuteRefusesPathsOutsideV2AndHeaderInjection() async throws {
        let client = try InferenceServerClient(url: "127.0.0.1:1")
        for path in ["/admin", "/v2/../admin", "v2/health", "/v2/x?y=1", "/v2x"] {
            await #expect {
                try await client.execute(RawHTTPRequest(method: "GET", path: path))
            } throws: { ($0 as? TritonClientError)?.code == .invalidArgument }
        }
        await #expect {
            try await client.execute(RawHTTPRequest(method: "GET", path: "/v2", headers: [("X", "a\r\nInjected: 1")]))
        } throws: { ($0 as? TritonClientError)?.code == .invalidArgument }
        await #expect {
            try await client.execute(RawHTTPRequest(method: "GET\r\n", path: "/v2"))
        } throws: { ($0 as? TritonClientError)?.code == .invalidArgument }
    }

    @Test func releasingAClientStopsItsCurlThread() async throws {
        let server = try CannedHTTPServer { _ in CannedHTTPServer.response(body: []) }
        defer { server.stop() }
        weak var loop: CurlMultiLoop?
        do {
            let client = try cannedClient(server.url)
            loop = client.loop
            #expect(try await client.isServerLive())
        }
        // The thread holds the loop until it has cleaned up the multi handle and exited.
        for _ in 0..<100 where loop != nil {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(loop == nil)
    }

    @Test func invalidURLsAreRefused() {
        for url in ["ftp://host", "http://", "", "http://host:8000/?q=1"] {
            #expect(throws: TritonClientError.self) { try InferenceServerClient(url: url) }
        }
        #expect((try? InferenceServerClient(url: "localhost:8000/"))?.url == "http://localhost:8000")
    }
}
