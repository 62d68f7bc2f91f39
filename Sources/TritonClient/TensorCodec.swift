import Foundation

/// The BYTES tensor layout of the binary extension: each element is a 4-byte little-endian
/// length followed by that many bytes.
enum BytesCodec {
    static func append(element: some Collection<UInt8>, to raw: inout [UInt8]) {
        let length = UInt32(truncatingIfNeeded: element.count)
        raw.append(UInt8(truncatingIfNeeded: length))
        raw.append(UInt8(truncatingIfNeeded: length >> 8))
        raw.append(UInt8(truncatingIfNeeded: length >> 16))
        raw.append(UInt8(truncatingIfNeeded: length >> 24))
        raw.append(contentsOf: element)
    }

    /// Visits every element; a prefix that runs past the end is an error built by `error`.
    static func forEach(
        _ raw: ArraySlice<UInt8>, name: String, error: (String) -> TritonClientError,
        _ body: (ArraySlice<UInt8>) throws(TritonClientError) -> Void
    ) throws(TritonClientError) {
        var index = raw.startIndex
        while index < raw.endIndex {
            guard raw.endIndex - index >= 4 else {
                throw error("tensor '\(name)': BYTES element length prefix cut short at byte \(index - raw.startIndex)")
            }
            let length = Int(raw[index]) | Int(raw[index + 1]) << 8 | Int(raw[index + 2]) << 16 | Int(raw[index + 3]) << 24
            index += 4
            guard raw.endIndex - index >= length else {
                throw error(
                    "tensor '\(name)': BYTES element of \(length) bytes overruns the \(raw.endIndex - index) bytes left")
            }
            try body(raw[index..<(index + length)])
            index += length
        }
    }

    static func count(_ raw: [UInt8], name: String, error: (String) -> TritonClientError) throws(TritonClientError) -> Int {
        var count = 0
        try forEach(raw[...], name: name, error: error) { _ in count += 1 }
        return count
    }
}

/// bfloat16 is the upper half of an IEEE float32; conversion rounds to nearest even.
public enum BFloat16Conversion {
    /// The bfloat16 bit pattern nearest to `value` (NaN stays NaN).
    public static func bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounding: UInt32 = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// The float32 value of a bfloat16 bit pattern (exact).
    public static func float(from bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}

/// Builds the body of an infer request: a JSON header written by hand, then the binary blobs.
struct InferRequestEncoder {
    struct Encoded {
        var body: [UInt8]
        /// Length of the JSON header when binary data follows it, else `nil`.
        var jsonHeaderLength: Int?
    }

    static func encode(inputs: [InferInput], outputs: [InferRequestedOutput], options: InferOptions)
        throws(TritonClientError) -> Encoded
    {
        guard !inputs.isEmpty else { throw .invalidArgument("an inference request needs at least one input") }
        var binaryBytes = 0
        for input in inputs {
            if case .raw(let raw) = input.payload, input.binaryData { binaryBytes += raw.count }
        }
        var w = JSONWriter(capacity: 256 + 64 * inputs.count + (binaryBytes == 0 ? 0 : binaryBytes))
        w.byte(UInt8(ascii: "{"))
        var needsComma = false
        if let id = options.requestID {
            w.raw("\"id\":")
            w.string(id)
            needsComma = true
        }
        // Request parameters.
        var parameters: [(String, InferParameter)] = []
        if let sequenceID = options.sequenceID {
            switch sequenceID {
            case .number(let n): parameters.append(("sequence_id", .uint(n)))
            case .string(let s): parameters.append(("sequence_id", .string(s)))
            }
            parameters.append(("sequence_start", .bool(options.sequenceStart)))
            parameters.append(("sequence_end", .bool(options.sequenceEnd)))
        }
        if let priority = options.priority { parameters.append(("priority", .uint(priority))) }
        if let timeout = options.timeoutMicroseconds { parameters.append(("timeout", .uint(timeout))) }
        if outputs.isEmpty, options.binaryDataOutput { parameters.append(("binary_data_output", .bool(true))) }
        for (key, value) in options.parameters.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "sequence_id", "sequence_start", "sequence_end", "priority", "timeout", "binary_data_output":
                throw .invalidArgument("request parameter '\(key)' is reserved; use the InferOptions property")
            default: parameters.append((key, value))
            }
        }
        if !parameters.isEmpty {
            if needsComma { w.byte(UInt8(ascii: ",")) }
            w.raw("\"parameters\":")
            try writeParameters(parameters, to: &w)
            needsComma = true
        }
        if needsComma { w.byte(UInt8(ascii: ",")) }
        w.raw("\"inputs\":[")
        for (i, input) in inputs.enumerated() {
            if i > 0 { w.byte(UInt8(ascii: ",")) }
            try writeInput(input, to: &w)
        }
        w.byte(UInt8(ascii: "]"))
        if !outputs.isEmpty {
            w.raw(",\"outputs\":[")
            for (i, output) in outputs.enumerated() {
                if i > 0 { w.byte(UInt8(ascii: ",")) }
                try writeOutput(output, to: &w)
            }
            w.byte(UInt8(ascii: "]"))
        }
        w.byte(UInt8(ascii: "}"))

        guard inputs.contains(where: { $0.binaryData && isRaw($0) }) else {
            return Encoded(body: w.bytes, jsonHeaderLength: nil)
        }
        let headerLength = w.bytes.count
        var body: [UInt8] = []
        swap(&body, &w.bytes)
        for input in inputs where input.binaryData {
            if case .raw(let raw) = input.payload { body.append(contentsOf: raw) }
        }
        return Encoded(body: body, jsonHeaderLength: headerLength)
    }

    private static func isRaw(_ input: InferInput) -> Bool {
        if case .raw = input.payload { return true }
        return false
    }

    private static func writeParameters(_ parameters: [(String, InferParameter)], to w: inout JSONWriter)
        throws(TritonClientError)
    {
        w.byte(UInt8(ascii: "{"))
        for (i, (key, value)) in parameters.enumerated() {
            if i > 0 { w.byte(UInt8(ascii: ",")) }
            w.string(key)
            w.byte(UInt8(ascii: ":"))
            try value.write(to: &w)
        }
        w.byte(UInt8(ascii: "}"))
    }

    private static func writeInput(_ input: InferInput, to w: inout JSONWriter) throws(TritonClientError) {
        w.raw("{\"name\":")
        w.string(input.name)
        w.raw(",\"shape\":[")
        for (i, dim) in input.shape.enumerated() {
            if i > 0 { w.byte(UInt8(ascii: ",")) }
            w.integer(dim)
        }
        w.raw("],\"datatype\":\"")
        w.bytes.append(contentsOf: input.datatype.rawValue.utf8)
        w.byte(UInt8(ascii: "\""))
        var parameters = input.parameters.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value) }
        switch input.payload {
        case .none:
            throw .invalidArgument("tensor '\(input.name)' has no data; call setData first")
        case .sharedMemory(let region, let byteSize, let offset):
            parameters.append(("shared_memory_region", .string(region)))
            parameters.append(("shared_memory_byte_size", .int(Int64(byteSize))))
            if offset != 0 { parameters.append(("shared_memory_offset", .int(Int64(offset)))) }
            w.raw(",\"parameters\":")
            try writeParameters(parameters, to: &w)
        case .raw(let raw):
            // The size may have been set for an earlier shape.
            let count = try input.elementCount()
            if let size = input.datatype.elementSize, raw.count != count * size {
                throw .invalidArgument("tensor '\(input.name)': shape \(input.shape) needs \(count * size) bytes, data has \(raw.count)")
            }
            if input.binaryData {
                parameters.append(("binary_data_size", .int(Int64(raw.count))))
                w.raw(",\"parameters\":")
                try writeParameters(parameters, to: &w)
            } else {
                if !parameters.isEmpty {
                    w.raw(",\"parameters\":")
                    try writeParameters(parameters, to: &w)
                }
                w.raw(",\"data\":[")
                try writeJSONData(raw, of: input, count: count, to: &w)
                w.byte(UInt8(ascii: "]"))
            }
        }
        w.byte(UInt8(ascii: "}"))
    }

    private static func writeOutput(_ output: InferRequestedOutput, to w: inout JSONWriter) throws(TritonClientError) {
        w.raw("{\"name\":")
        w.string(output.name)
        var parameters = output.parameters.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value) }
        if let shm = output.sharedMemory {
            parameters.append(("shared_memory_region", .string(shm.region)))
            parameters.append(("shared_memory_byte_size", .int(Int64(shm.byteSize))))
            if shm.offset != 0 { parameters.append(("shared_memory_offset", .int(Int64(shm.offset)))) }
        } else {
            parameters.append(("binary_data", .bool(output.binaryData)))
        }
        if output.classCount > 0 { parameters.append(("classification", .int(Int64(output.classCount)))) }
        w.raw(",\"parameters\":")
        try writeParameters(parameters, to: &w)
        w.byte(UInt8(ascii: "}"))
    }

    /// Writes the elements of `raw` (binary layout) as a flat JSON array body, without boxing.
    private static func writeJSONData(_ raw: [UInt8], of input: InferInput, count: Int, to w: inout JSONWriter)
        throws(TritonClientError)
    {
        func each<T: BitwiseCopyable>(_: T.Type, _ write: (T, inout JSONWriter) throws(TritonClientError) -> Void)
            throws(TritonClientError)
        {
            let values: [T] = RawTensor.decode(raw[...], count: count)
            for (i, v) in values.enumerated() {
                if i > 0 { w.byte(UInt8(ascii: ",")) }
                try write(v, &w)
            }
        }
        switch input.datatype {
        case .bool: try each(UInt8.self) { v, w in if v != 0 { w.raw("true") } else { w.raw("false") } }
        case .uint8: try each(UInt8.self) { v, w in w.integer(v) }
        case .uint16: try each(UInt16.self) { v, w in w.integer(v) }
        case .uint32: try each(UInt32.self) { v, w in w.integer(v) }
        case .uint64: try each(UInt64.self) { v, w in w.integer(v) }
        case .int8: try each(Int8.self) { v, w in w.integer(v) }
        case .int16: try each(Int16.self) { v, w in w.integer(v) }
        case .int32: try each(Int32.self) { v, w in w.integer(v) }
        case .int64: try each(Int64.self) { v, w in w.integer(v) }
        case .fp32: try each(Float.self) { (v, w) throws(TritonClientError) in try w.float(v) }
        case .fp64: try each(Double.self) { (v, w) throws(TritonClientError) in try w.double(v) }
        case .fp16, .bf16:
            throw .invalidArgument("tensor '\(input.name)': \(input.datatype) has no JSON form; send it as binary data")
        case .bytes:
            var first = true
            try BytesCodec.forEach(raw[...], name: input.name, error: TritonClientError.invalidArgument) {
                (element) throws(TritonClientError) in
                guard let text = String(validating: element, as: UTF8.self) else {
                    throw .invalidArgument("tensor '\(input.name)': a BYTES element is not UTF-8; send it as binary data")
                }
                if !first { w.byte(UInt8(ascii: ",")) }
                first = false
                w.string(text)
            }
        }
    }
}

/// Copies little-endian tensor bytes into typed arrays (one memcpy, no per-element boxing).
enum RawTensor {
    static func decode<T: BitwiseCopyable>(_ bytes: ArraySlice<UInt8>, count: Int) -> [T] {
        [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { source in
                let byteCount = min(source.count, count * MemoryLayout<T>.stride)
                if let base = source.baseAddress, let target = buffer.baseAddress, byteCount > 0 {
                    UnsafeMutableRawPointer(target).copyMemory(from: base, byteCount: byteCount)
                }
                initialized = byteCount / MemoryLayout<T>.stride
            }
        }
    }
}
