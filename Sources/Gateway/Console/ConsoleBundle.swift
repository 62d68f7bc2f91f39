import Crypto
import Foundation
import NIOCore

/// The web console's static files (`console/` in the repository), read once when
/// the gateway starts. Only the files found then are served, by exact relative
/// path: a request can name nothing else on disk (no `..`, no symbolic links, no
/// hidden files), and serving costs no file I/O on the request path.
public struct ConsoleBundle: Sendable {
    struct Asset: Sendable {
        let body: ByteBuffer
        let contentType: String
        /// Strong validator: the first 16 bytes of the content's SHA-256, quoted.
        let etag: String
    }

    /// Relative path (`index.html`, `js/app.js`) → file.
    let assets: [String: Asset]

    /// Extensions the console may contain, with the type each is served as.
    static let contentTypes: [String: String] = [
        "html": "text/html; charset=utf-8",
        "js": "text/javascript; charset=utf-8",
        "css": "text/css; charset=utf-8",
        "svg": "image/svg+xml",
        "png": "image/png",
        "ico": "image/x-icon",
        "json": "application/json",
    ]
    static let maxFiles = 256
    static let maxTotalBytes = 8 << 20

    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Reads every servable file under `directory`. Throws when the folder is
    /// missing, has no `index.html`, or exceeds the caps.
    public static func load(directory: URL) throws -> ConsoleBundle {
        let root = directory.standardizedFileURL.resolvingSymlinksInPath()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw LoadError(description: "folder \(directory.path) does not exist")
        }
        let keys: [URLResourceKey] = [.isRegularFileKey, .isSymbolicLinkKey, .isDirectoryKey]
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: keys, options: [.skipsHiddenFiles]) else {
            throw LoadError(description: "folder \(directory.path) cannot be read")
        }
        var assets: [String: Asset] = [:]
        var total = 0
        for case let url as URL in walker {
            let values = try url.resourceValues(forKeys: Set(keys))
            if values.isSymbolicLink == true {
                if values.isDirectory == true { walker.skipDescendants() }
                continue
            }
            guard values.isRegularFile == true, let type = contentTypes[url.pathExtension.lowercased()] else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(root.path.count + 1))
            guard relative.split(separator: "/").allSatisfy(NameRules.isValidName) else { continue }
            let data = try Data(contentsOf: url)
            total += data.count
            guard assets.count < maxFiles, total <= maxTotalBytes else {
                throw LoadError(description: "folder \(directory.path) holds more than \(maxFiles) files or \(maxTotalBytes) bytes")
            }
            let digest = HexEncoding.lowercase(SHA256.hash(data: data).prefix(16))
            assets[relative] = Asset(body: ByteBuffer(bytes: data), contentType: type, etag: "\"\(digest)\"")
        }
        guard assets["index.html"] != nil else {
            throw LoadError(description: "folder \(directory.path) has no index.html")
        }
        return ConsoleBundle(assets: assets)
    }
}
