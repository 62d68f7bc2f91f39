import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A POSIX call that failed, with its errno.
public struct DurableFileError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var errno: Int32

    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Small durable-write helpers on raw file descriptors: Foundation's file APIs do
/// not fsync directories, and we must know when bytes are on disk.
enum DurableFiles {
    static func closeDescriptor(_ fd: Int32) {
        _ = close(fd)
    }

    /// fsyncs a directory so that a create, rename or unlink in it is durable.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw DurableFileError(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw DurableFileError(operation: "fsync", path: path, errno: errno) }
    }

    /// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            guard let base = bytes.baseAddress else { return }
            let written = write(fd, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw DurableFileError(operation: "write", path: path, errno: errno)
            }
            if written == 0 { throw DurableFileError(operation: "write", path: path, errno: EIO) }
            offset += written
        }
    }

    /// Replaces `url` atomically with `data`: temp file in the same directory,
    /// fsync, rename, fsync the directory. Readers see the old or the new file whole.
    static func replace(_ url: URL, with data: Data) throws {
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DurableFileError(operation: "open", path: temporary, errno: errno) }
        do {
            try data.withUnsafeBytes { try writeAll(fd, $0, path: temporary) }
            guard fsync(fd) == 0 else { throw DurableFileError(operation: "fsync", path: temporary, errno: errno) }
            close(fd)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, url.path) == 0 else {
            let code = errno
            unlink(temporary)
            throw DurableFileError(operation: "rename", path: url.path, errno: code)
        }
        try syncDirectory(directory)
    }
}
