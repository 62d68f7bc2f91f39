import Foundation
import Testing
@testable import TritonClient

@Suite struct InputAndEncoderTests {
    @Test func shapeAndElementCountMustAgree() throws {
        var input = InferInput(name: "INPUT0", shape: [2, 3], datatype: .fp32)
        #expect(throws: TritonClientError.self) { try input.setData([1, 2, 3] as [Float]) }
        try input.setData([1, 2, 3, 4, 5, 6] as [Float])
        var wrongType = InferInput(name: "INPUT0", shape: [2], datatype: .int32)
        #expect(throws: TritonClientError.self) { try wrongType.setData([1, 2] as [Int64]) }
        var negative = InferInput(name: "INPUT0", shape: [-1, 2], datatype: .int32)
        #expect(throws: TritonClientError.self) { try negative.setData([1, 2] as [Int32]) }
        var huge = InferInput(name: "INPUT0", shape: [Int64.max, Int64.max], datatype: .int8)
        #expect(throws: TritonClientError.self) { try huge.setData([1] as [Int8]) }
        var bytes = InferInput(name: "INPUT0", shape: [2], datatype: .bytes)
        #expect(throws: TritonClientError.self) { try bytes.setData(["one"]) }
    }

    @Test func reshapingAfterSetDataIsCaughtBeforeSending() throws {
        var input = InferInput(name: "INPUT0", shape: [4], datatype: .fp32)
        try input.setData([1, 2, 3, 4] as [Float])
        input.setShape([5])
        #expect(throws: TritonClientError.self) {
            try InferRequestEncoder.encode(inputs: [input], outputs: [], options: InferOptions())
        }
    }

    @Test func inputWithoutDataIsRefused() {
        let input = InferInput(name: "INPUT0", shape: [1], datatype: .fp32)
        #expect(throws: TritonClientError.self) {
            try InferRequestEncoder.encode(inputs: [input], outputs: [], options: InferOptions())
        }
    }

    @Test func binaryRequestHasExactJSONHeaderThenBlobs() throws {
        var input = InferInput(name: "INPUT0", shape: [1, 2], datatype: .fp32)
        try input.setData([1.5, -2] as [Float])
        var options = InferOptions()
        options.requestID = "r-1"
        options.priority = 2
        options.parameters = ["delay_ms": 5]
        let encoded = try InferRequestEncoder.encode(
            inputs: [input], outputs: [InferRequestedOutput(name: "OUTPUT0", classCount: 3)], options: options)
        let header =
            #"{"id":"r-1","parameters":{"priority":2,"delay_ms":5},"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true,"classification":3}}]}"#
        let length = try #require(encoded.jsonHeaderLength)
        #expect(String(decoding: encoded.body[0..<length], as: UTF8.self) == header)
        #expect(Array(encoded.body[length...]) == [0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x00, 0xC0])
    }

    @Test func jsonRequestCarriesDataAndNoBinaryHeader() throws {
        var a = InferInput(name: "A", shape: [3], datatype: .int64)
        try a.setData([Int64.min, 0, Int64.max])
        a.binaryData = false
        var b = InferInput(name: "B", shape: [2], datatype: .bool)
        try b.setData([true, false])
        b.binaryData = false
        var c = InferInput(name: "C", shape: [2], datatype: .bytes)
        try c.setData(["x\"y", "é"])
        c.binaryData = false
        var d = InferInput(name: "D", shape: [2], datatype: .fp64)
        try d.setData([0.1, -3])
        d.binaryData = false
        var options = InferOptions()
        options.sequenceID = .number(7)
        options.sequenceStart = true
        options.binaryDataOutput = false
        let encoded = try InferRequestEncoder.encode(inputs: [a, b, c, d], outputs: [], options: options)
        #expect(encoded.jsonHeaderLength == nil)
        let json = try JSONValue.parse(encoded.body)
        #expect(json["parameters"]?["sequence_id"] == .int(7))
        #expect(json["parameters"]?["sequence_start"] == .bool(true))
        #expect(json["parameters"]?["binary_data_output"] == nil)
        #expect(json["inputs"]?[0]?["data"] == [.int(Int64.min), 0, .int(Int64.max)])
        #expect(json["inputs"]?[1]?["data"] == [true, false])
        #expect(json["inputs"]?[2]?["data"] == ["x\"y", "é"])
        #expect(json["inputs"]?[3]?["data"] == [0.1, -3.0])
    }

    @Test func typesWithoutJSONFormAreRefusedInJSONMode() throws {
        for datatype in [TritonDataType.fp16, .bf16] {
            var input = InferInput(name: "X", shape: [1], datatype: datatype)
            try input.setData([1] as [Float])
            input.binaryData = false
            #expect(throws: TritonClientError.self) {
                try InferRequestEncoder.encode(inputs: [input], outputs: [], options: InferOptions())
            }
        }
        var nan = InferInput(name: "X", shape: [1], datatype: .fp32)
        try nan.setData([Float.nan])
        nan.binaryData = false
        #expect(throws: TritonClientError.self) {
            try InferRequestEncoder.encode(inputs: [nan], outputs: [], options: InferOptions())
        }
    }

    @Test func reservedParameterNamesAreRefused() throws {
        var input = InferInput(name: "X", shape: [1], datatype: .fp32)
        try input.setData([1] as [Float])
        var options = InferOptions()
        options.parameters = ["priority": 1]
        #expect(throws: TritonClientError.self) {
            try InferRequestEncoder.encode(inputs: [input], outputs: [], options: options)
        }
    }

    @Test func bytesUseLittleEndianLengthPrefixes() throws {
        var input = InferInput(name: "X", shape: [2], datatype: .bytes)
        try input.setData([Data([0xFF, 0x00]), Data()])
        guard case .raw(let raw) = input.payload else { Issue.record("no raw payload"); return }
        #expect(raw == [2, 0, 0, 0, 0xFF, 0x00, 0, 0, 0, 0])
        var raw2 = InferInput(name: "X", shape: [1], datatype: .bytes)
        #expect(throws: TritonClientError.self) { try raw2.setRawData([5, 0, 0, 0, 1]) }
        try raw2.setRawData([1, 0, 0, 0, 9])
    }

    @Test func bf16RoundsToNearestEvenAndFP16Converts() throws {
        #expect(BFloat16Conversion.bits(from: 1.0) == 0x3F80)
        #expect(BFloat16Conversion.bits(from: -2.0) == 0xC000)
        // 1 + 2^-8 is exactly between two bf16 values: ties go to even (1.0).
        #expect(BFloat16Conversion.bits(from: Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        // Just above the tie rounds up.
        #expect(BFloat16Conversion.bits(from: Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(BFloat16Conversion.float(from: BFloat16Conversion.bits(from: .nan)).isNaN)
        #expect(BFloat16Conversion.float(from: BFloat16Conversion.bits(from: .infinity)) == .infinity)
        #expect(BFloat16Conversion.float(from: 0x4049) == 3.140625)

        var input = InferInput(name: "X", shape: [2], datatype: .bf16)
        try input.setData([1.0, 3.14159] as [Float])
        guard case .raw(let raw) = input.payload else { Issue.record("no raw payload"); return }
        #expect(raw == [0x80, 0x3F, 0x49, 0x40])

        var half = InferInput(name: "X", shape: [2], datatype: .fp16)
        try half.setData([1.0, -0.5] as [Float])
        guard case .raw(let halfRaw) = half.payload else { Issue.record("no raw payload"); return }
        #expect(halfRaw == [0x00, 0x3C, 0x00, 0xB8])
    }

    @Test func compressionRoundTrips() throws {
        let body = Array(String(repeating: "tensor data ", count: 500).utf8)
        for algorithm in [InferenceServerClient.CompressionAlgorithm.gzip, .deflate] {
            let compressed = try BodyCompression.compress(body, algorithm: algorithm)
            #expect(compressed.count < body.count / 4)
            #expect(try BodyCompression.decompress(compressed) == body)
        }
        #expect(try BodyCompression.compress(body, algorithm: .gzip).prefix(2) == [0x1F, 0x8B])
    }
}

@Suite struct InferResultTests {
    /// A response body with the JSON header first and the blobs after it.
    func frame(_ json: String, _ blobs: [UInt8]) -> (body: [UInt8], length: Int) {
        let header = Array(json.utf8)
        return (header + blobs, header.count)
    }

    @Test func decodesBinaryOutputsInOrder() throws {
        let json = #"{"id":"7","model_name":"m","model_version":"1","parameters":{"sequence_id":3,"sequence_id":3},"outputs":[{"name":"A","datatype":"INT32","shape":[2],"parameters":{"binary_data_size":8}},{"name":"B","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":11}},{"name":"C","datatype":"FP16","shape":[1],"parameters":{"binary_data_size":2}}]}"#
        let blobs: [UInt8] = [1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF] + [3, 0, 0, 0, 0x61, 0x62, 0x63, 0, 0, 0, 0] + [0x00, 0x3C]
        let (body, length) = frame(json, blobs)
        let result = try InferResult(body: body, jsonHeaderLength: length)
        #expect(result.id == "7")
        #expect(result.modelName == "m")
        #expect(result.modelVersion == "1")
        #expect(result.parameters?["sequence_id"] == .int(3))
        #expect(try result.asInt32("A") == [1, -2])
        #expect(try result.asStrings("B") == ["abc", ""])
        #expect(try result.asBytes("B") == [Data("abc".utf8), Data()])
        #expect(try result.asFloat16("C") == [1.0])
        #expect(try result.asFloat("C") == [1.0])
        #expect(try result.shape("A") == [2])
        #expect(throws: TritonClientError.self) { try result.asFloat("A") }
        #expect(throws: TritonClientError.self) { try result.asInt32("missing") }
    }

    @Test func decodesJSONOutputs() throws {
        let json = #"{"model_name":"m","outputs":[{"name":"U","datatype":"UINT64","shape":[2],"data":[18446744073709551615,0]},{"name":"B","datatype":"BOOL","shape":[1,2],"data":[[true],[false]]},{"name":"S","datatype":"BYTES","shape":[1],"data":["0.9:1:dog"]},{"name":"F","datatype":"FP32","shape":[2],"data":[1.5,2]}]}"#
        let result = try InferResult(body: Array(json.utf8), jsonHeaderLength: nil)
        #expect(try result.asUInt64("U") == [UInt64.max, 0])
        #expect(try result.asBool("B") == [true, false])
        #expect(try result.asStrings("S") == ["0.9:1:dog"])
        #expect(try result.asFloat("F") == [1.5, 2])
    }

    func expectMalformed(_ body: [UInt8], _ length: Int?, access: (InferResult) throws -> Void = { _ in }) {
        do {
            let result = try InferResult(body: body, jsonHeaderLength: length)
            try access(result)
            Issue.record("expected a malformedResponse error")
        } catch let error as TritonClientError {
            #expect(error.code == .malformedResponse, "\(error)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func headerLengthBeyondTheBodyIsAnError() {
        let (body, length) = frame(#"{"outputs":[]}"#, [])
        expectMalformed(body, length + 1)
        expectMalformed(body, -1)
    }

    @Test func blobCutShortIsAnError() {
        let (body, length) = frame(
            #"{"outputs":[{"name":"A","datatype":"FP32","shape":[4],"parameters":{"binary_data_size":16}}]}"#,
            [0, 0, 0, 0, 0, 0, 0, 0])
        expectMalformed(body, length)
    }

    @Test func blobSizeThatDisagreesWithShapeIsAnError() {
        let (body, length) = frame(
            #"{"outputs":[{"name":"A","datatype":"FP32","shape":[4],"parameters":{"binary_data_size":8}}]}"#,
            [0, 0, 0, 0, 0, 0, 0, 0])
        expectMalformed(body, length) { _ = try $0.asFloat("A") }
    }

    @Test func bytesPrefixThatOverrunsIsAnError() {
        let (body, length) = frame(
            #"{"outputs":[{"name":"S","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}}]}"#,
            [9, 0, 0, 0, 0x61, 0x62])
        expectMalformed(body, length) { _ = try $0.asStrings("S") }
        let (short, shortLength) = frame(
            #"{"outputs":[{"name":"S","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":2}}]}"#, [1, 0])
        expectMalformed(short, shortLength) { _ = try $0.asBytes("S") }
        let (huge, hugeLength) = frame(
            #"{"outputs":[{"name":"S","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":4}}]}"#,
            [0xFF, 0xFF, 0xFF, 0xFF])
        expectMalformed(huge, hugeLength) { _ = try $0.asStrings("S") }
    }

    @Test func bytesElementCountMustMatchShape() {
        let (body, length) = frame(
            #"{"outputs":[{"name":"S","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":5}}]}"#,
            [1, 0, 0, 0, 0x61])
        expectMalformed(body, length) { _ = try $0.asStrings("S") }
    }

    @Test func badJSONHeadersAreErrors() {
        expectMalformed(Array(#"{"outputs":[{"datatype":"FP32"}]}"#.utf8), nil)
        expectMalformed(Array(#"{"outputs":[{"name":"A","datatype":"FP32","shape":[-1]}]}"#.utf8), nil)
        expectMalformed(Array(#"{"outputs":[{"name":"A","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":-4}}]}"#.utf8), nil)
        expectMalformed(Array("[1,2]".utf8), nil)
        expectMalformed(Array("not json".utf8), nil)
        expectMalformed(Array(#"{"outputs":[{"name":"A","datatype":"INT8","shape":[1],"data":[300]}]}"#.utf8), nil) {
            _ = try $0.asInt8("A")
        }
        expectMalformed(Array(#"{"outputs":[{"name":"A","datatype":"FP32","shape":[2],"data":[1]}]}"#.utf8), nil) {
            _ = try $0.asFloat("A")
        }
    }

    @Test func tritonErrorBodiesBecomeHTTPStatusErrors() {
        let error = InferenceServerClient.errorFromResponse(status: 400, body: Array(#"{"error":"model not found"}"#.utf8))
        #expect(error.code == .httpStatus)
        #expect(error.httpStatus == 400)
        #expect(error.message == "model not found")
        let plain = InferenceServerClient.errorFromResponse(status: 502, body: Array("<html>bad gateway</html>".utf8))
        #expect(plain.message == "<html>bad gateway</html>")
    }
}
