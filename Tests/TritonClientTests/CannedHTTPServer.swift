import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 server on 127.0.0.1 that records requests and answers with canned bytes.
/// It stands in for Triton only where Triton cannot misbehave on demand (broken frames,
/// hung responses) or where the test must see the exact bytes the client sent.
final class CannedHTTPServer: @unchecked Sendable {
    struct Request {
        var head: String
        var body: [UInt8]
        func header(_ name: String) -> String? {
            for line in head.split(separator: "\r\n").dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                if line[..<colon].lowercased() == name.lowercased() {
                    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
        var requestLine: String { String(head.split(separator: "\r\n").first ?? "") }
    }

    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var recorded: [Request] = []
    private var connections = 0
    private let respond: @Sendable (Request) -> [UInt8]?

    /// `respond` returns the full response bytes, or `nil` to never answer.
    init(respond: @escaping @Sendable (Request) -> [UInt8]?) throws {
        self.respond = respond
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    var url: String { "http://127.0.0.1:\(port)" }

    var requests: [Request] {
        lock.lock(); defer { lock.unlock() }
        return recorded
    }

    var connectionCount: Int {
        lock.lock(); defer { lock.unlock() }
        return connections
    }

    /// Stops accepting. The descriptor is closed by the accept thread itself, so its number
    /// cannot be reused by another test's socket while that thread still uses it.
    func stop() {
        lock.lock(); stopped = true; lock.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private var stopped = false

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            let fd = accept(listener, nil, nil)
            lock.lock(); let done = stopped; lock.unlock()
            if done {
                if fd >= 0 { close(fd) }
                return
            }
            if fd < 0 { return }
            lock.lock(); connections += 1; lock.unlock()
            let thread = Thread { [self] in serve(fd) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            // Read one request: head up to CRLFCRLF, then Content-Length bytes.
            var headEnd: Int?
            while headEnd == nil {
                if let range = findHeadEnd(buffer) { headEnd = range; break }
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { return }
                buffer.append(contentsOf: chunk[0..<n])
            }
            guard let end = headEnd else { return }
            let head = String(decoding: buffer[0..<end], as: UTF8.self)
            var request = Request(head: head, body: [])
            let length = Int(request.header("Content-Length") ?? "0") ?? 0
            while buffer.count < end + 4 + length {
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { return }
                buffer.append(contentsOf: chunk[0..<n])
            }
            request.body = Array(buffer[(end + 4)..<(end + 4 + length)])
            buffer.removeFirst(end + 4 + length)
            lock.lock(); recorded.append(request); lock.unlock()
            guard let response = respond(request) else {
                // Hold the connection open without answering until the client gives up.
                while read(fd, &chunk, chunk.count) > 0 {}
                return
            }
            var sent = 0
            while sent < response.count {
                let n = response[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                sent += n
            }
        }
    }

    private func findHeadEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// An HTTP/1.1 response with a Content-Length.
    static func response(status: Int = 200, headers: [(String, String)] = [], body: [UInt8]) -> [UInt8] {
        var head = "HTTP/1.1 \(status) X\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}
