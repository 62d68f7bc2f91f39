import Foundation
import Testing
@testable import TritonClient

/// The Triton serving the fixture repository (Tests/Fixtures/model-repo), set by scripts/test.
let tritonURL = ProcessInfo.processInfo.environment["TRITON_URL"]
/// The same repository served in explicit model-control mode, for load/unload.
let tritonExplicitURL = ProcessInfo.processInfo.environment["TRITON_EXPLICIT_URL"]
/// The fixture repository on disk.
let fixtureRepo = ProcessInfo.processInfo.environment["TRITON_FIXTURE_REPO"]

func fixtureClient(_ configure: (inout InferenceServerClient.Configuration) -> Void = { _ in }) throws
    -> InferenceServerClient
{
    var configuration = InferenceServerClient.Configuration()
    configuration.requestTimeout = .seconds(60)
    configure(&configuration)
    return try InferenceServerClient(url: tritonURL ?? "", configuration: configuration)
}

func fp32Input(_ values: [Float], name: String = "INPUT0", batched: Bool = true) throws -> InferInput {
    var input = InferInput(name: name, shape: batched ? [1, Int64(values.count)] : [Int64(values.count)], datatype: .fp32)
    try input.setData(values)
    return input
}

@Suite(.enabled(if: tritonURL != nil, "TRITON_URL names a Triton serving the fixture repository"))
struct TritonEndpointTests {
    @Test func healthAndReadiness() async throws {
        let client = try fixtureClient()
        let options = CallOptions(headers: [("X-Client-Test", "1")], query: [("probe", "1")])
        #expect(try await client.isServerLive(options: options))
        #expect(try await client.isServerReady(options: options))
        #expect(try await client.isModelReady("identity_fp32", options: options))
        #expect(try await client.isModelReady("identity_fp32", version: "1"))
        #expect(try await client.isModelReady("identity_fp32", version: "9") == false)
        #expect(try await client.isModelReady("no_such_model") == false)
    }

    @Test func serverAndModelMetadata() async throws {
        let client = try fixtureClient()
        let server = try await client.serverMetadata(options: CallOptions(headers: [("X-A", "b")]))
        #expect(server.name == "triton")
        #expect(server.version == "2.51.0")
        #expect(server.extensions.contains("binary_tensor_data"))
        #expect(server.extensions.contains("classification"))

        let model = try await client.modelMetadata("add_sub")
        #expect(model.name == "add_sub")
        #expect(model.versions == ["1"])
        #expect(model.inputs.map(\.name) == ["INPUT0", "INPUT1"])
        #expect(model.inputs.first?.datatype == "FP32")
        #expect(model.inputs.first?.shape == [-1])
        #expect(model.outputs.map(\.name) == ["OUTPUT0", "OUTPUT1"])
        let batched = try await client.modelMetadata("identity_fp32", version: "1")
        #expect(batched.inputs.first?.shape == [-1, -1])

        await #expect {
            try await client.modelMetadata("no_such_model")
        } throws: {
            let error = $0 as? TritonClientError
            return error?.code == .httpStatus && error?.httpStatus == 404 && error?.message.contains("no_such_model") == true
        }
    }

    @Test func modelConfiguration() async throws {
        let client = try fixtureClient()
        let config = try await client.modelConfig("identity_fp32_batched")
        #expect(config["name"] == "identity_fp32_batched")
        #expect(config["max_batch_size"]?.int64Value == 32)
        #expect(config["dynamic_batching"] != nil)
        let versioned = try await client.modelConfig("classifier", version: "1")
        #expect(versioned["output"]?[0]?["label_filename"] == "labels.txt")
    }

    @Test func repositoryIndexListsTheFixtures() async throws {
        let client = try fixtureClient()
        let index = try await client.repositoryIndex()
        let names = Set(index.map(\.name))
        for name in ["identity_fp32", "add_sub", "failing", "slow", "classifier", "onnx_add", "identity_bf16"] {
            #expect(names.contains(name))
        }
        #expect(index.first(where: { $0.name == "identity_fp32" })?.state == "READY")
        let ready = try await client.repositoryIndex(readyOnly: true)
        #expect(ready.allSatisfy { $0.state == "READY" })
    }

    @Test func statisticsCountInferences() async throws {
        let client = try fixtureClient()
        func successCount() async throws -> Int64 {
            let stats = try await client.inferenceStatistics(modelName: "identity_int16")
            return stats["model_stats"]?[0]?["inference_stats"]?["success"]?["count"]?.int64Value ?? -1
        }
        let before = try await successCount()
        var input = InferInput(name: "INPUT0", shape: [1, 2], datatype: .int16)
        try input.setData([1, 2] as [Int16])
        _ = try await client.infer("identity_int16", inputs: [input])
        #expect(try await successCount() >= before + 1)
        let all = try await client.inferenceStatistics()
        #expect((all["model_stats"]?.arrayValue?.count ?? 0) >= 10)
        let versioned = try await client.inferenceStatistics(modelName: "identity_int16", version: "1")
        #expect(versioned["model_stats"]?[0]?["version"] == "1")
    }

    @Test func traceSettingsGlobalAndPerModel() async throws {
        let client = try fixtureClient()
        let global = try await client.traceSettings()
        #expect(global["trace_rate"] != nil)
        #expect(global["trace_level"]?.arrayValue != nil)

        let updated = try await client.updateTraceSettings(modelName: "identity_uint8", settings: ["trace_rate": "7"])
        #expect(updated["trace_rate"] == "7")
        #expect(try await client.traceSettings(modelName: "identity_uint8")["trace_rate"] == "7")
        #expect(try await client.traceSettings()["trace_rate"] == global["trace_rate"])
        let cleared = try await client.updateTraceSettings(modelName: "identity_uint8", settings: ["trace_rate": nil])
        #expect(cleared["trace_rate"] == global["trace_rate"])

        let globalUpdate = try await client.updateTraceSettings(settings: ["log_frequency": "3"])
        #expect(globalUpdate["log_frequency"] == "3")
        _ = try await client.updateTraceSettings(settings: ["log_frequency": global["log_frequency"] ?? "0"])
    }

    @Test func logSettings() async throws {
        let client = try fixtureClient()
        let settings = try await client.logSettings()
        #expect(settings["log_info"]?.boolValue != nil)
        let original = settings["log_verbose_level"]?.int64Value ?? 0
        let updated = try await client.updateLogSettings(["log_verbose_level": .int(original + 1)])
        #expect(updated["log_verbose_level"]?.int64Value == original + 1)
        let restored = try await client.updateLogSettings(["log_verbose_level": .int(original)])
        #expect(restored["log_verbose_level"]?.int64Value == original)
    }

    @Test func systemSharedMemoryRegisterInferUnregister() async throws {
        let client = try fixtureClient()
        let tag = UUID().uuidString.prefix(8).lowercased()
        // Triton maps each key once, so input and output get their own objects.
        let inKey = "/triton-client-test-in-\(tag)"
        let outKey = "/triton-client-test-out-\(tag)"
        let values: [Float] = [1.5, -2, 3.25, 4]
        let inputBytes = values.withUnsafeBytes { Data($0) }
        try inputBytes.write(to: URL(fileURLWithPath: "/dev/shm" + inKey))
        try Data(count: 16).write(to: URL(fileURLWithPath: "/dev/shm" + outKey))
        defer {
            try? FileManager.default.removeItem(atPath: "/dev/shm" + inKey)
            try? FileManager.default.removeItem(atPath: "/dev/shm" + outKey)
        }

        try await client.registerSystemSharedMemory(name: "in_\(tag)", key: inKey, byteSize: 16)
        try await client.registerSystemSharedMemory(name: "out_\(tag)", key: outKey, byteSize: 16)
        let status = try await client.systemSharedMemoryStatus(regionName: "in_\(tag)")
        #expect(status[0]?["name"]?.stringValue == "in_\(tag)")
        #expect(status[0]?["key"]?.stringValue == inKey)
        #expect(status[0]?["byte_size"]?.int64Value == 16)

        var input = InferInput(name: "INPUT0", shape: [1, 4], datatype: .fp32)
        input.setSharedMemory(regionName: "in_\(tag)", byteSize: 16)
        var output = InferRequestedOutput(name: "OUTPUT0")
        output.setSharedMemory(regionName: "out_\(tag)", byteSize: 16)
        let result = try await client.infer("identity_fp32", inputs: [input], outputs: [output])
        #expect(try result.shape("OUTPUT0") == [1, 4])
        #expect(try result.rawData("OUTPUT0") == nil)
        let written = try Data(contentsOf: URL(fileURLWithPath: "/dev/shm" + outKey))
        #expect(written == inputBytes)

        try await client.unregisterSystemSharedMemory(name: "in_\(tag)")
        try await client.unregisterSystemSharedMemory(name: "out_\(tag)")
        let all = try await client.systemSharedMemoryStatus()
        #expect(!(all.arrayValue ?? []).contains(where: { $0["name"]?.stringValue?.hasSuffix(String(tag)) == true }))
    }
}

/// Sample values for each datatype, and how to check them after a round trip.
enum RoundTrip {
    static func input(_ datatype: TritonDataType, binary: Bool) throws -> InferInput {
        var input = InferInput(name: "INPUT0", shape: [1, 3], datatype: datatype)
        switch datatype {
        case .bool: try input.setData([true, false, true])
        case .uint8: try input.setData([0, 127, 255] as [UInt8])
        case .uint16: try input.setData([0, 1, UInt16.max])
        case .uint32: try input.setData([0, 7, UInt32.max])
        case .uint64: try input.setData([0, 9_007_199_254_740_993, UInt64.max])
        case .int8: try input.setData([Int8.min, 0, Int8.max])
        case .int16: try input.setData([Int16.min, -1, Int16.max])
        case .int32: try input.setData([Int32.min, -1, Int32.max])
        case .int64: try input.setData([Int64.min, -9_007_199_254_740_993, Int64.max])
        case .fp16: try input.setData([1.0, -0.5, 65504] as [Float16])
        case .fp32: try input.setData([1.5, -2.25, 3.0e38] as [Float])
        case .fp64: try input.setData([0.1, -1e300, 3.0])
        case .bf16: try input.setData([1.0, -2.0, 3.140625] as [Float])
        case .bytes:
            if binary {
                try input.setData([Data("hello".utf8), Data(), Data([0x00, 0xFF, 0x10])])
            } else {
                try input.setData(["hello", "", "é\u{0}x"])
            }
        }
        input.binaryData = binary
        return input
    }

    static func check(_ result: InferResult, _ datatype: TritonDataType, binary: Bool) throws {
        #expect(try result.shape("OUTPUT0") == [1, 3])
        switch datatype {
        case .bool: #expect(try result.asBool("OUTPUT0") == [true, false, true])
        case .uint8: #expect(try result.asUInt8("OUTPUT0") == [0, 127, 255])
        case .uint16: #expect(try result.asUInt16("OUTPUT0") == [0, 1, UInt16.max])
        case .uint32: #expect(try result.asUInt32("OUTPUT0") == [0, 7, UInt32.max])
        case .uint64: #expect(try result.asUInt64("OUTPUT0") == [0, 9_007_199_254_740_993, UInt64.max])
        case .int8: #expect(try result.asInt8("OUTPUT0") == [Int8.min, 0, Int8.max])
        case .int16: #expect(try result.asInt16("OUTPUT0") == [Int16.min, -1, Int16.max])
        case .int32: #expect(try result.asInt32("OUTPUT0") == [Int32.min, -1, Int32.max])
        case .int64: #expect(try result.asInt64("OUTPUT0") == [Int64.min, -9_007_199_254_740_993, Int64.max])
        case .fp16: #expect(try result.asFloat16("OUTPUT0") == [1.0, -0.5, 65504])
        case .fp32: #expect(try result.asFloat("OUTPUT0") == [1.5, -2.25, 3.0e38])
        case .fp64: #expect(try result.asDouble("OUTPUT0") == [0.1, -1e300, 3.0])
        case .bf16: #expect(try result.asFloat("OUTPUT0") == [1.0, -2.0, 3.140625])
        case .bytes:
            if binary {
                #expect(try result.asBytes("OUTPUT0") == [Data("hello".utf8), Data(), Data([0x00, 0xFF, 0x10])])
            } else {
                #expect(try result.asStrings("OUTPUT0") == ["hello", "", "é\u{0}x"])
            }
        }
    }
}

@Suite(.enabled(if: tritonURL != nil, "TRITON_URL names a Triton serving the fixture repository"))
struct TritonInferTests {
    @Test(arguments: TritonDataType.allCases)
    func binaryRoundTrip(_ datatype: TritonDataType) async throws {
        let client = try fixtureClient()
        let model = "identity_\(datatype.rawValue.lowercased())"
        let result = try await client.infer(
            model, inputs: [RoundTrip.input(datatype, binary: true)],
            outputs: [InferRequestedOutput(name: "OUTPUT0", binaryData: true)])
        #expect(result.modelName == model)
        #expect(result.modelVersion == "1")
        #expect(try result.rawData("OUTPUT0") != nil)
        try RoundTrip.check(result, datatype, binary: true)
    }

    @Test(arguments: TritonDataType.allCases.filter(\.hasJSONRepresentation))
    func jsonRoundTrip(_ datatype: TritonDataType) async throws {
        let client = try fixtureClient()
        let result = try await client.infer(
            "identity_\(datatype.rawValue.lowercased())", inputs: [RoundTrip.input(datatype, binary: false)],
            outputs: [InferRequestedOutput(name: "OUTPUT0", binaryData: false)])
        #expect(try result.rawData("OUTPUT0") == nil)
        try RoundTrip.check(result, datatype, binary: false)
    }

    @Test(arguments: [TritonDataType.fp16, .bf16])
    func typesWithoutJSONFormAreRefusedBeforeSending(_ datatype: TritonDataType) async throws {
        let client = try fixtureClient()
        await #expect {
            try await client.infer(
                "identity_\(datatype.rawValue.lowercased())", inputs: [RoundTrip.input(datatype, binary: false)])
        } throws: { ($0 as? TritonClientError)?.code == .invalidArgument }
    }

    @Test func mixedBinaryAndJSONAndDefaultOutputs() async throws {
        let client = try fixtureClient()
        var jsonInput = try fp32Input([1, 2, 3, 4], batched: false)
        jsonInput.binaryData = false
        let binaryInput = try fp32Input([10, 20, 30, 40], name: "INPUT1", batched: false)
        // Outputs not named: all come back, binary by default.
        let all = try await client.infer("add_sub", inputs: [jsonInput, binaryInput])
        #expect(try all.asFloat("OUTPUT0") == [11, 22, 33, 44])
        #expect(try all.asFloat("OUTPUT1") == [-9, -18, -27, -36])
        #expect(try all.rawData("OUTPUT0") != nil)
        // binary_data_output false: JSON outputs.
        var options = InferOptions()
        options.binaryDataOutput = false
        let json = try await client.infer("add_sub", inputs: [jsonInput, binaryInput], inferOptions: options)
        #expect(try json.rawData("OUTPUT1") == nil)
        #expect(try json.asFloat("OUTPUT1") == [-9, -18, -27, -36])
        // One output binary, one JSON, only one requested.
        let one = try await client.infer(
            "add_sub", inputs: [jsonInput, binaryInput], outputs: [InferRequestedOutput(name: "OUTPUT1", binaryData: false)])
        #expect(one.outputs.map(\.name) == ["OUTPUT1"])
        #expect(try one.asFloat("OUTPUT1") == [-9, -18, -27, -36])
    }

    @Test func requestIDAndParametersReachTheModel() async throws {
        let client = try fixtureClient()
        var options = InferOptions()
        options.requestID = "req-42"
        options.priority = 1
        options.timeoutMicroseconds = 30_000_000
        // The model sleeps delay_ms (default 2000): a longer wait shows the parameter arrived.
        options.parameters = ["delay_ms": 2600]
        let started = ContinuousClock.now
        let result = try await client.infer(
            "slow", inputs: [fp32Input([1, 2], batched: false)], inferOptions: options,
            options: CallOptions(headers: [("X-Test", "params")], query: [("q", "1")]))
        #expect(ContinuousClock.now - started >= .milliseconds(2600))
        #expect(result.id == "req-42")
        #expect(try result.asFloat("OUTPUT0") == [1, 2])
    }

    @Test func sequenceParametersKeepStatePerCorrelationID() async throws {
        let client = try fixtureClient()
        let id = UInt64.random(in: 1...1_000_000_000)
        func step(_ value: Int32, start: Bool = false, end: Bool = false) async throws -> Int32 {
            var input = InferInput(name: "INPUT0", shape: [1, 1], datatype: .int32)
            try input.setData([value])
            var options = InferOptions()
            options.sequenceID = .number(id)
            options.sequenceStart = start
            options.sequenceEnd = end
            return try await client.infer("accumulator", inputs: [input], inferOptions: options).asInt32("OUTPUT0").first ?? -1
        }
        #expect(try await step(5, start: true) == 5)
        #expect(try await step(3) == 8)
        #expect(try await step(2, end: true) == 10)
    }

    @Test func classificationExtensionReturnsTopClasses() async throws {
        let client = try fixtureClient()
        let result = try await client.infer(
            "classifier", inputs: [fp32Input([0.1, 0.9, 0.5, 0.2], batched: false)],
            outputs: [InferRequestedOutput(name: "OUTPUT0", binaryData: true, classCount: 2)])
        let classes = try result.asStrings("OUTPUT0")
        #expect(classes.count == 2)
        let parts = classes.map { $0.split(separator: ":").map(String.init) }
        #expect(parts.first.flatMap { Float($0[0]) }.map { abs($0 - 0.9) < 1e-5 } == true)
        #expect(parts.map { $0.dropFirst().joined(separator: ":") } == ["1:dog", "2:bird"])
        let json = try await client.infer(
            "classifier", inputs: [fp32Input([0.1, 0.9, 0.5, 0.2], batched: false)],
            outputs: [InferRequestedOutput(name: "OUTPUT0", binaryData: false, classCount: 1)])
        #expect(try json.asStrings("OUTPUT0").first?.hasSuffix(":1:dog") == true)
    }

    @Test func onnxModelThroughTheShim() async throws {
        let client = try fixtureClient()
        let a = (0..<32).map { Float($0) }
        let b = (0..<32).map { Float($0) * 0.5 }
        var x = InferInput(name: "INPUT0", shape: [2, 16], datatype: .fp32)
        try x.setData(a)
        var y = InferInput(name: "INPUT1", shape: [2, 16], datatype: .fp32)
        try y.setData(b)
        let result = try await client.infer("onnx_add", inputs: [x, y])
        #expect(try result.shape("OUTPUT0") == [2, 16])
        #expect(try result.asFloat("OUTPUT0") == zip(a, b).map { $0 + $1 })
    }

    @Test func failingModelReportsItsMessage() async throws {
        let client = try fixtureClient()
        await #expect {
            try await client.infer("failing", inputs: [fp32Input([1], batched: false)])
        } throws: {
            guard let error = $0 as? TritonClientError else { return false }
            return error.code == .httpStatus && error.httpStatus == 500 && error.message.hasPrefix("fixture failure:")
        }
    }

    @Test func shapeMismatchIsRefusedByTriton() async throws {
        let client = try fixtureClient()
        // add_sub has no batch dimension: a 2-D tensor is wrong.
        await #expect {
            try await client.infer("add_sub", inputs: [fp32Input([1]), fp32Input([1], name: "INPUT1")])
        } throws: { ($0 as? TritonClientError)?.httpStatus == 400 }
    }

    @Test(.disabled(if: sanitizerRun, sanitizerReason)) func timeoutOnTheSlowModel() async throws {
        let client = try fixtureClient()
        var options = InferOptions()
        options.parameters = ["delay_ms": 10_000]
        let started = ContinuousClock.now
        await #expect {
            try await client.infer(
                "slow", inputs: [fp32Input([1], batched: false)], inferOptions: options,
                options: CallOptions(timeout: .milliseconds(300)))
        } throws: { ($0 as? TritonClientError)?.code == .timeout }
        // Relative, not tight: the call ended before the model would have answered.
        #expect(ContinuousClock.now - started < .seconds(10))
        // The client keeps working afterwards.
        options.parameters = ["delay_ms": 1]
        #expect(try await client.infer("slow", inputs: [fp32Input([7], batched: false)], inferOptions: options)
            .asFloat("OUTPUT0") == [7])
    }

    @Test func cancellationOnTheSlowModel() async throws {
        let client = try fixtureClient()
        var options = InferOptions()
        options.parameters = ["delay_ms": 10_000]
        let slowInput = try fp32Input([1], batched: false)
        let task = Task { try await client.infer("slow", inputs: [slowInput], inferOptions: options) }
        try await Task.sleep(for: .milliseconds(300))
        let cancelledAt = ContinuousClock.now
        task.cancel()
        await #expect {
            try await task.value
        } throws: { ($0 as? TritonClientError)?.code == .cancelled }
        // The model sleeps 10 s and the client's timeout is 60 s: only the cancellation ends
        // the call before the model answers.
        #expect(ContinuousClock.now - cancelledAt < .seconds(10))
        #expect(try await client.isServerReady())
    }

    @Test(arguments: [InferenceServerClient.CompressionAlgorithm.gzip, .deflate])
    func requestAndResponseCompression(_ algorithm: InferenceServerClient.CompressionAlgorithm) async throws {
        let client = try fixtureClient {
            $0.requestCompression = algorithm
            $0.responseCompression = algorithm
        }
        let values = (0..<1024).map { Float($0 % 7) }
        let binary = try await client.infer("identity_fp32", inputs: [fp32Input(values)])
        #expect(try binary.asFloat("OUTPUT0") == values)
        var jsonInput = try fp32Input(values)
        jsonInput.binaryData = false
        let json = try await client.infer(
            "identity_fp32", inputs: [jsonInput], outputs: [InferRequestedOutput(name: "OUTPUT0", binaryData: false)])
        #expect(try json.asFloat("OUTPUT0") == values)
    }

    @Test func http2OverTLSOptionSpeaksHTTP1OnPlainConnections() async throws {
        let client = try fixtureClient { $0.httpVersion = .http2OverTLS }
        #expect(try await client.infer("identity_fp32", inputs: [fp32Input([5])]).asFloat("OUTPUT0") == [5])
    }

    @Test func tlsToAPlainPortIsATransportError() async throws {
        let plain = try #require(tritonURL)
        var configuration = InferenceServerClient.Configuration()
        configuration.tls.verifyPeer = false
        configuration.tls.verifyHost = false
        let client = try InferenceServerClient(
            url: plain.replacingOccurrences(of: "http://", with: "https://"), configuration: configuration)
        await #expect {
            try await client.isServerLive()
        } throws: {
            let error = $0 as? TritonClientError
            return error?.code == .transport && error?.curlCode == 35
        }
    }

    @Test func rawPassthroughReturnsTritonsAnswerAsIs() async throws {
        let client = try fixtureClient()
        let ready = try await client.execute(RawHTTPRequest(method: "GET", path: "/v2/health/ready"))
        #expect(ready.status == 200)
        let metadata = try await client.execute(RawHTTPRequest(method: "GET", path: "/v2"))
        #expect(try JSONValue.parse(metadata.body)["name"] == "triton")

        let body = #"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"FP32","data":[1.0,2.0]}]}"#
        let infer = try await client.execute(RawHTTPRequest(
            method: "POST", path: "/v2/models/identity_fp32/infer",
            headers: [("Content-Type", "application/json")], body: Array(body.utf8), timeout: .seconds(10)))
        #expect(infer.status == 200)
        let result = try InferResult(body: infer.body, jsonHeaderLength: nil)
        #expect(try result.asFloat("OUTPUT0") == [1, 2])

        // Binary framing passes through untouched, Triton's headers come back.
        var input = try fp32Input([3, 4])
        input.binaryData = true
        let encoded = try InferRequestEncoder.encode(inputs: [input], outputs: [], options: InferOptions())
        let binary = try await client.execute(RawHTTPRequest(
            method: "POST", path: "/v2/models/identity_fp32/infer",
            headers: [("Inference-Header-Content-Length", String(encoded.jsonHeaderLength ?? 0))], body: encoded.body))
        #expect(binary.status == 200)
        let length = try #require(binary.header("Inference-Header-Content-Length").flatMap { Int($0) })
        #expect(try InferResult(body: binary.body, jsonHeaderLength: length).asFloat("OUTPUT0") == [3, 4])

        let missing = try await client.execute(RawHTTPRequest(method: "GET", path: "/v2/models/no_such_model"))
        #expect(missing.status == 404)
        #expect(try JSONValue.parse(missing.body)["error"]?.stringValue?.isEmpty == false)
    }

    @Test func manyConcurrentInfersOnOneClient() async throws {
        let client = try fixtureClient { $0.maxConnectionsPerHost = 16 }
        let tasks = 64
        let requestsPerTask = 50
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var wrong = 0
                    for r in 0..<requestsPerTask {
                        let values = (0..<16).map { Float(t * 1000 + r * 16 + $0) }
                        let result = try await client.infer("identity_fp32_batched", inputs: [fp32Input(values)])
                        if try result.asFloat("OUTPUT0") != values { wrong += 1 }
                    }
                    return wrong
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(failures == 0)
    }
}

@Suite(
    .enabled(if: tritonExplicitURL != nil, "TRITON_EXPLICIT_URL names a Triton in explicit model-control mode"),
    .serialized)
struct TritonModelControlTests {
    func client() throws -> InferenceServerClient {
        var configuration = InferenceServerClient.Configuration()
        configuration.requestTimeout = .seconds(120)
        return try InferenceServerClient(url: tritonExplicitURL ?? "", configuration: configuration)
    }

    func waitUntilUnloaded(_ client: InferenceServerClient, _ name: String) async throws -> Bool {
        for _ in 0..<100 {
            if try await !client.isModelReady(name) { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    @Test func loadAndUnload() async throws {
        let client = try client()
        let index = try await client.repositoryIndex()
        #expect(index.contains(where: { $0.name == "identity_int32" }))
        try await client.loadModel("identity_int32")
        #expect(try await client.isModelReady("identity_int32"))
        #expect(try await client.repositoryIndex(readyOnly: true).contains(where: { $0.name == "identity_int32" }))
        var input = InferInput(name: "INPUT0", shape: [1, 2], datatype: .int32)
        try input.setData([4, 5] as [Int32])
        #expect(try await client.infer("identity_int32", inputs: [input]).asInt32("OUTPUT0") == [4, 5])
        try await client.unloadModel("identity_int32", unloadDependents: true)
        #expect(try await waitUntilUnloaded(client, "identity_int32"))
        await #expect {
            try await client.loadModel("no_such_model")
        } throws: { ($0 as? TritonClientError)?.code == .httpStatus }
    }

    @Test func loadWithConfigOverride() async throws {
        let client = try client()
        let config = #"{"name":"identity_fp32","backend":"python","max_batch_size":4,"input":[{"name":"INPUT0","data_type":"TYPE_FP32","dims":[-1]}],"output":[{"name":"OUTPUT0","data_type":"TYPE_FP32","dims":[-1]}],"instance_group":[{"kind":"KIND_CPU","count":1}]}"#
        try await client.loadModel("identity_fp32", config: config)
        #expect(try await client.modelConfig("identity_fp32")["max_batch_size"]?.int64Value == 4)
        #expect(try await client.infer("identity_fp32", inputs: [fp32Input([1, 2])]).asFloat("OUTPUT0") == [1, 2])
        try await client.unloadModel("identity_fp32")
        #expect(try await waitUntilUnloaded(client, "identity_fp32"))
    }

    @Test(.enabled(if: fixtureRepo != nil, "TRITON_FIXTURE_REPO names the fixture repository"))
    func loadWithConfigAndFileOverride() async throws {
        let client = try client()
        let source = try Data(contentsOf: URL(fileURLWithPath: (fixtureRepo ?? "") + "/identity_fp64/1/model.py"))
        let config = #"{"name":"identity_fp64","backend":"python","max_batch_size":2,"input":[{"name":"INPUT0","data_type":"TYPE_FP64","dims":[-1]}],"output":[{"name":"OUTPUT0","data_type":"TYPE_FP64","dims":[-1]}],"instance_group":[{"kind":"KIND_CPU","count":1}]}"#
        try await client.loadModel("identity_fp64", config: config, files: ["1/model.py": source])
        #expect(try await client.modelConfig("identity_fp64")["max_batch_size"]?.int64Value == 2)
        var input = InferInput(name: "INPUT0", shape: [1, 2], datatype: .fp64)
        try input.setData([0.25, -8])
        #expect(try await client.infer("identity_fp64", inputs: [input]).asDouble("OUTPUT0") == [0.25, -8])
        try await client.unloadModel("identity_fp64")
        #expect(try await waitUntilUnloaded(client, "identity_fp64"))
    }
}

/// An HTTP/2 cleartext proxy (for example `nghttpx --frontend='127.0.0.1,PORT;no-tls'`) in front
/// of the fixture Triton: the HTTP/2 prior-knowledge path of the client.
let tritonH2CURL = ProcessInfo.processInfo.environment["TRITON_H2C_URL"]

@Suite(.enabled(if: tritonH2CURL != nil && tritonURL != nil, "TRITON_H2C_URL names an HTTP/2 cleartext proxy in front of TRITON_URL"))
struct TritonHTTP2Tests {
    @Test func priorKnowledgeThroughAnHTTP2Proxy() async throws {
        var configuration = InferenceServerClient.Configuration()
        configuration.httpVersion = .http2PriorKnowledge
        configuration.maxConnectionsPerHost = 1
        configuration.requestTimeout = .seconds(30)
        // Triton itself speaks only HTTP/1.1, so prior knowledge straight to it fails...
        let direct = try InferenceServerClient(url: tritonURL ?? "", configuration: configuration)
        await #expect(throws: TritonClientError.self) { try await direct.isServerLive() }
        // ...and works through the proxy (streams multiplexed on one connection with libcurl 8+;
        // a connection per call on older libcurl, see CurlSettings.forbidReuse).
        let client = try InferenceServerClient(url: tritonH2CURL ?? "", configuration: configuration)
        #expect(try await client.isServerReady())
        let wrong = try await withThrowingTaskGroup(of: Int.self) { group in
            for t in 0..<32 {
                group.addTask {
                    let values = (0..<8).map { Float(t * 10 + $0) }
                    let result = try await client.infer("identity_fp32", inputs: [fp32Input(values)])
                    return try result.asFloat("OUTPUT0") == values ? 0 : 1
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(wrong == 0)
        let raw = try await client.execute(RawHTTPRequest(method: "GET", path: "/v2/models/identity_fp32/config"))
        #expect(raw.status == 200)
    }
}
