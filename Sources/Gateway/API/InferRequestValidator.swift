import Foundation
import TritonClient

/// Checks a KServe v2 infer request before it goes to Triton: a malformed
/// request is refused here (400) and never reaches the server.
///
/// Accepts the JSON form and the binary tensor extension (JSON header of
/// `Inference-Header-Content-Length` bytes, then the tensors back to back).
enum InferRequestValidator {
    static let elementSizes: [String: Int] = [
        "BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "BF16": 2,
        "UINT32": 4, "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8, "BYTES": 0,
    ]
    static let maxElements = 1 << 31
    static let maxDepth = 32

    struct Invalid: Error {
        var detail: String
        init(_ detail: String) { self.detail = detail }
    }

    /// What one parsed value takes in the validator's tree, rounded up: a `JSONValue` in an
    /// array (24 bytes) or an object member with its key (40).
    static let bytesPerValue = 48

    /// Validates `body`; `headerLength` is the parsed `Inference-Header-Content-Length` (nil → all JSON).
    /// A JSON part of more than `maxValues` values is refused before its tree grows past them.
    static func validate(body: [UInt8], headerLength: Int?, maxValues: Int = .max) throws(Invalid) {
        let jsonLength = headerLength ?? body.count
        guard jsonLength > 0, jsonLength <= body.count else {
            throw Invalid("Inference-Header-Content-Length must be between 1 and the body size.")
        }
        // The client library's parser: hand-written, depth-limited, and it keeps
        // duplicate members, so they can be refused (Triton and the gateway must
        // not read different values of the same key).
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse(body[0..<jsonLength], maxValues: maxValues)
        } catch {
            throw Invalid("The inference request header is not a valid JSON object (of at most \(maxValues) values).")
        }
        guard case .object = parsed else { throw Invalid("The inference request header is not a valid JSON object.") }
        let document = parsed
        guard !hasDuplicateMembers(document, depth: 0) else {
            throw Invalid("The inference request header repeats a member name.")
        }
        let request = document
        if let id = request["id"] {
            guard let id = id.stringValue, !NameRules.hasControlBreaks(id), id.utf8.count <= 256 else {
                throw Invalid("\"id\" must be a string without control characters.")
            }
        }
        try checkParameters(request["parameters"], "\"parameters\"")
        guard let inputs = request["inputs"]?.arrayValue, !inputs.isEmpty else { throw Invalid("\"inputs\" must be a non-empty array.") }
        var binaryOffset = jsonLength
        var seen = Set<String>()
        for (index, rawInput) in inputs.enumerated() {
            let input = rawInput
            guard case .object = rawInput else { throw Invalid("inputs[\(index)] must be an object.") }
            guard let name = input["name"]?.stringValue, !name.isEmpty, !NameRules.hasControlBreaks(name), name.utf8.count <= 256 else {
                throw Invalid("inputs[\(index)].name must be a non-empty string without control characters.")
            }
            guard seen.insert(name).inserted else { throw Invalid("Input \"\(printable(name))\" is given twice.") }
            guard let datatype = input["datatype"]?.stringValue, let elementSize = elementSizes[datatype] else {
                throw Invalid("inputs[\(index)].datatype is not a KServe v2 data type.")
            }
            guard let shape = input["shape"]?.arrayValue else { throw Invalid("inputs[\(index)].shape must be an array of integers.") }
            var count = 1
            for dim in shape {
                guard let v = Self.integer(dim), v >= 0, v <= Int64(maxElements) else {
                    throw Invalid("inputs[\(index)].shape must hold non-negative integers.")
                }
                let (product, overflow) = count.multipliedReportingOverflow(by: Int(v))
                guard !overflow, product <= maxElements else { throw Invalid("inputs[\(index)].shape is too large.") }
                count = product
            }
            let parameters = input["parameters"] ?? .object([])
            try checkParameters(parameters, "inputs[\(index)].parameters")
            if parameters["shared_memory_region"] != nil {
                throw Invalid("Shared-memory inputs are not accepted through the gateway.")
            }
            if let sizeValue = parameters["binary_data_size"] {
                guard let size64 = Self.integer(sizeValue), size64 >= 0, size64 <= Int64(body.count) else {
                    throw Invalid("inputs[\(index)].parameters.binary_data_size must be a non-negative integer no larger than the body.")
                }
                let size = Int(size64)
                guard input["data"] == nil else { throw Invalid("inputs[\(index)] has both data and binary_data_size.") }
                guard size <= body.count - binaryOffset else {
                    throw Invalid("binary_data_size values add up to more than the binary part of the body.")
                }
                let slice = body[binaryOffset..<(binaryOffset + size)]
                if datatype == "BYTES" {
                    try checkBytesElements(slice, expected: count, index: index)
                } else {
                    let (expected, overflow) = count.multipliedReportingOverflow(by: elementSize)
                    guard !overflow, expected == size else {
                        throw Invalid("inputs[\(index)]: shape × element size does not equal binary_data_size (\(size)).")
                    }
                }
                binaryOffset += size
            } else {
                guard let data = input["data"] else { throw Invalid("inputs[\(index)] has neither data nor binary_data_size.") }
                var leaves = 0
                try countLeaves(data, datatype: datatype, count: &leaves, depth: 0, index: index)
                guard leaves == count else {
                    throw Invalid("inputs[\(index)]: shape has \(count) elements but data has \(leaves).")
                }
            }
        }
        if let outputs = request["outputs"] {
            guard let outputs = outputs.arrayValue else { throw Invalid("\"outputs\" must be an array.") }
            for (index, rawOutput) in outputs.enumerated() {
                let output = rawOutput
                guard case .object = output, let name = output["name"]?.stringValue, !name.isEmpty,
                    !NameRules.hasControlBreaks(name)
                else {
                    throw Invalid("outputs[\(index)].name must be a non-empty string without control characters.")
                }
                try checkParameters(output["parameters"], "outputs[\(index)].parameters")
                if output["parameters"]?["shared_memory_region"] != nil {
                    throw Invalid("Shared-memory outputs are not accepted through the gateway.")
                }
            }
        }
        guard binaryOffset == body.count else {
            throw Invalid("binary_data_size values add up to \(binaryOffset - jsonLength) bytes but the binary part is \(body.count - jsonLength).")
        }
    }

    /// Parameters are an object whose names and string values Triton keeps, hands to the
    /// model and can write back into its answers and logs: CR, LF or NUL in any of them, at
    /// any depth, is refused (SECURITY.md: control characters never travel on).
    static func checkParameters(_ value: JSONValue?, _ place: String) throws(Invalid) {
        guard let value else { return }
        guard case .object = value else { throw Invalid("\(place) must be an object.") }
        guard !hasControlBreaks(value, depth: 0) else {
            throw Invalid("\(place) holds a name or value with a control character (CR, LF or NUL), or nests deeper than \(maxDepth) levels.")
        }
    }

    static func hasControlBreaks(_ value: JSONValue, depth: Int) -> Bool {
        guard depth <= maxDepth else { return true }  // deeper than any parameter needs: refused
        switch value {
        case .string(let text):
            return NameRules.hasControlBreaks(text)
        case .object(let members):
            return members.contains { NameRules.hasControlBreaks($0.key) || hasControlBreaks($0.value, depth: depth + 1) }
        case .array(let items):
            return items.contains { hasControlBreaks($0, depth: depth + 1) }
        default:
            return false
        }
    }

    /// BYTES tensors: each element is a 4-byte little-endian length then that many bytes.
    static func checkBytesElements(_ slice: ArraySlice<UInt8>, expected: Int, index: Int) throws(Invalid) {
        var i = slice.startIndex
        var elements = 0
        while i < slice.endIndex {
            guard slice.endIndex - i >= 4 else { throw Invalid("inputs[\(index)]: a BYTES length prefix is cut short.") }
            let length = Int(slice[i]) | Int(slice[i + 1]) << 8 | Int(slice[i + 2]) << 16 | Int(slice[i + 3]) << 24
            i += 4
            guard length <= slice.endIndex - i else { throw Invalid("inputs[\(index)]: a BYTES length prefix runs past the tensor.") }
            i += length
            elements += 1
            if elements > expected { break }
        }
        guard elements == expected else {
            throw Invalid("inputs[\(index)]: shape has \(expected) elements but the BYTES data holds \(elements).")
        }
    }

    /// A JSON integer (not a number with a fraction or exponent form that happens to be whole).
    static func integer(_ value: JSONValue) -> Int64? {
        switch value {
        case .int(let v): return v
        case .uint(let v): return Int64(exactly: v)
        default: return nil
        }
    }

    static func hasDuplicateMembers(_ value: JSONValue, depth: Int) -> Bool {
        guard depth <= maxDepth else { return false }  // the parser already bounds depth
        switch value {
        case .object(let members):
            var keys = Set<String>()
            for (key, member) in members {
                guard keys.insert(key).inserted else { return true }
                if hasDuplicateMembers(member, depth: depth + 1) { return true }
            }
            return false
        case .array(let items):
            // Tensor data arrays hold no objects worth walking element by element.
            for item in items {
                if case .object = item, hasDuplicateMembers(item, depth: depth + 1) { return true }
            }
            return false
        default:
            return false
        }
    }

    static func countLeaves(_ value: JSONValue, datatype: String, count: inout Int, depth: Int, index: Int) throws(Invalid) {
        guard depth <= maxDepth else { throw Invalid("inputs[\(index)].data is nested too deeply.") }
        if case .array(let items) = value {
            for item in items { try countLeaves(item, datatype: datatype, count: &count, depth: depth + 1, index: index) }
            return
        }
        let ok: Bool
        switch (datatype, value) {
        case ("BYTES", .string): ok = true
        case ("BOOL", .bool): ok = true
        case ("FP16", .int), ("FP16", .uint), ("FP16", .double), ("BF16", .int), ("BF16", .uint), ("BF16", .double),
            ("FP32", .int), ("FP32", .uint), ("FP32", .double), ("FP64", .int), ("FP64", .uint), ("FP64", .double):
            ok = true
        case (_, .int), (_, .uint): ok = datatype != "BYTES" && datatype != "BOOL"
        default: ok = false
        }
        guard ok else { throw Invalid("inputs[\(index)].data holds a value that is not a \(datatype).") }
        count += 1
        if count > maxElements { throw Invalid("inputs[\(index)].data is too large.") }
    }

    static func printable(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F && $0 != "\"" }.prefix(64)))
    }
}
