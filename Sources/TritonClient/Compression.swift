import CZlib

/// Request-body compression with zlib (gzip framing or zlib "deflate" framing, as Triton expects).
public enum BodyCompression {
    /// Why `decompress` refused its input.
    public enum DecompressionError: Error, Sendable, Equatable {
        /// The output would pass the limit (a decompression bomb stops here).
        case tooLarge
        /// Not a complete gzip or zlib stream, or bytes after its end.
        case corrupt
    }

    /// Compresses `input` in one pass. `gzip` uses the gzip wrapper; `deflate` the zlib wrapper.
    public static func compress(_ input: [UInt8], algorithm: InferenceServerClient.CompressionAlgorithm)
        throws(TritonClientError) -> [UInt8]
    {
        var stream = z_stream()
        let windowBits: Int32 = algorithm == .gzip ? 31 : 15
        guard czlib_deflate_init2(&stream, Z_DEFAULT_COMPRESSION, windowBits) == Z_OK else {
            throw .invalidArgument("zlib could not start compressing")
        }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count))) + 32
        var output = [UInt8](repeating: 0, count: bound)
        var produced = 0
        let status: Int32 = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                stream.avail_in = uInt(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = uInt(target.count)
                let result = deflate(&stream, Z_FINISH)
                produced = target.count - Int(stream.avail_out)
                return result
            }
        }
        guard status == Z_STREAM_END else { throw .invalidArgument("zlib could not compress the request body") }
        output.removeSubrange(produced...)
        return output
    }

    /// Decompresses one gzip or zlib stream into at most `limit` bytes; stops as soon
    /// as the output passes the limit, so a small bomb costs at most `limit` bytes of work.
    public static func decompress(_ input: [UInt8], limit: Int = 1 << 30) throws(DecompressionError) -> [UInt8] {
        var stream = z_stream()
        // 47 = auto-detect gzip or zlib header.
        guard czlib_inflate_init2(&stream, 47) == Z_OK else { throw .corrupt }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, max(64 * 1024, input.count * 4)))
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var status: Int32 = Z_OK
        var leftOver = 0
        input.withUnsafeBufferPointer { source in
            // zlib never writes through next_in; the pointer type is only C's lack of const.
            stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
            stream.avail_in = uInt(source.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { target in
                    stream.next_out = target.baseAddress
                    stream.avail_out = uInt(target.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    output.append(contentsOf: target[0..<(target.count - Int(stream.avail_out))])
                }
            } while status == Z_OK && output.count <= limit
            leftOver = Int(stream.avail_in)
        }
        guard output.count <= limit else { throw .tooLarge }
        guard status == Z_STREAM_END, leftOver == 0 else { throw .corrupt }
        return output
    }
}
