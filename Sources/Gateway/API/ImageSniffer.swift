/// Recognises image formats by their magic numbers and reads the pixel size
/// from the header alone, so a decompression bomb is refused before anything
/// decodes it.
public enum ImageFormat: String, Sendable, CaseIterable {
    case jpeg, png, webp, gif, bmp

    public var mediaType: String { "image/\(rawValue)" }

    /// The format the bytes start with, or `nil` when they are not one of ours.
    public static func sniff(_ b: [UInt8]) -> ImageFormat? {
        if b.count >= 3, b[0] == 0xFF, b[1] == 0xD8, b[2] == 0xFF { return .jpeg }
        if b.count >= 8, b[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if b.count >= 6, b[0..<6].elementsEqual(Array("GIF87a".utf8)) || b[0..<6].elementsEqual(Array("GIF89a".utf8)) { return .gif }
        if b.count >= 12, b[0..<4].elementsEqual(Array("RIFF".utf8)), b[8..<12].elementsEqual(Array("WEBP".utf8)) { return .webp }
        if b.count >= 2, b[0] == 0x42, b[1] == 0x4D { return .bmp }
        return nil
    }

    /// Media types a client may declare for a raw body.
    public static func fromMediaType(_ type: String) -> ImageFormat? {
        switch type {
        case "image/jpeg", "image/jpg", "image/pjpeg": return .jpeg
        case "image/png": return .png
        case "image/webp": return .webp
        case "image/gif": return .gif
        case "image/bmp", "image/x-bmp", "image/x-ms-bmp": return .bmp
        default: return nil
        }
    }
}

public struct ImageDimensions: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: Int { width.multipliedReportingOverflow(by: height).overflow ? Int.max : width * height }
}

extension ImageFormat {
    /// Width and height from the header; `nil` when the header is truncated or malformed.
    public func dimensions(of b: [UInt8]) -> ImageDimensions? {
        func be16(_ i: Int) -> Int? { i + 1 < b.count ? Int(b[i]) << 8 | Int(b[i + 1]) : nil }
        func le16(_ i: Int) -> Int? { i + 1 < b.count ? Int(b[i]) | Int(b[i + 1]) << 8 : nil }
        func be32(_ i: Int) -> Int? { i + 3 < b.count ? Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) : nil }
        func le32s(_ i: Int) -> Int? {
            guard i + 3 < b.count else { return nil }
            let u = UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
            return Int(Int32(bitPattern: u))
        }
        func le24(_ i: Int) -> Int? { i + 2 < b.count ? Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 : nil }
        let found: ImageDimensions?
        switch self {
        case .png:
            // IHDR must be the first chunk.
            guard b.count >= 24, b[12..<16].elementsEqual(Array("IHDR".utf8)), let w = be32(16), let h = be32(20) else { return nil }
            found = ImageDimensions(width: w, height: h)
        case .gif:
            guard let w = le16(6), let h = le16(8) else { return nil }
            found = ImageDimensions(width: w, height: h)
        case .bmp:
            guard b.count >= 26, let w = le32s(18), let h = le32s(22), h != Int(Int32.min) else { return nil }
            found = ImageDimensions(width: w, height: abs(h))
        case .webp:
            guard b.count >= 30 else { return nil }
            let chunk = String(decoding: b[12..<16], as: UTF8.self)
            switch chunk {
            case "VP8 ":
                // Key frame start code then 14-bit dimensions.
                guard b[23] == 0x9D, b[24] == 0x01, b[25] == 0x2A, let w = le16(26), let h = le16(28) else { return nil }
                found = ImageDimensions(width: w & 0x3FFF, height: h & 0x3FFF)
            case "VP8L":
                guard b[20] == 0x2F else { return nil }
                let bits = UInt32(b[21]) | UInt32(b[22]) << 8 | UInt32(b[23]) << 16 | UInt32(b[24]) << 24
                found = ImageDimensions(width: Int(bits & 0x3FFF) + 1, height: Int((bits >> 14) & 0x3FFF) + 1)
            case "VP8X":
                guard let w = le24(24), let h = le24(27) else { return nil }
                found = ImageDimensions(width: w + 1, height: h + 1)
            default:
                return nil
            }
        case .jpeg:
            found = Self.jpegDimensions(b)
        }
        guard let found, found.width > 0, found.height > 0 else { return nil }
        return found
    }

    /// Walks JPEG segments to the first start-of-frame marker.
    private static func jpegDimensions(_ b: [UInt8]) -> ImageDimensions? {
        var i = 2
        while i + 3 < b.count {
            guard b[i] == 0xFF else { return nil }
            var marker = b[i + 1]
            // Fill bytes.
            while marker == 0xFF, i + 2 < b.count {
                i += 1
                marker = b[i + 1]
            }
            if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 {
                i += 2
                continue
            }
            if marker == 0xD9 || marker == 0xDA { return nil }
            guard i + 3 < b.count else { return nil }
            let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            guard length >= 2 else { return nil }
            let isSOF = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
            if isSOF {
                guard i + 8 < b.count else { return nil }
                let h = Int(b[i + 5]) << 8 | Int(b[i + 6])
                let w = Int(b[i + 7]) << 8 | Int(b[i + 8])
                return ImageDimensions(width: w, height: h)
            }
            i += 2 + length
        }
        return nil
    }
}
