import AuditLog
import CaduceusCore
import Foundation
import HTTPTypes

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files that hold secrets: created with their final mode from the start (never briefly readable
/// by others), fsynced, and renamed into place.
enum SecureFile {
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let temp = path + ".tmp"
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("cannot create", temp) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                close(fd)
                throw failure("cannot write", temp)
            }
            offset += n
        }
        guard fchmod(fd, mode) == 0, fsync(fd) == 0 else {
            close(fd)
            throw failure("cannot sync", temp)
        }
        close(fd)
        guard rename(temp, path) == 0 else { throw failure("cannot rename into", path) }
    }

    /// Reads a file, or nil when it does not exist.
    static func read(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT { return nil }
        guard fd >= 0 else { throw failure("cannot open", path) }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw failure("cannot read", path) }
            if n == 0 { return result }
            result += chunk[0..<n]
        }
    }

    /// The permission bits of `path`.
    static func mode(_ path: String) -> mode_t? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int).flatMap {
            $0.map { mode_t($0) }
        }
    }

    /// Creates a directory with `mode` (and tightens an existing one to it).
    static func makeDirectory(_ path: String, mode: mode_t) throws {
        if mkdir(path, mode) != 0 && errno != EEXIST { throw failure("cannot create directory", path) }
        guard chmod(path, mode) == 0 else { throw failure("cannot set the mode of", path) }
    }

    static func failure(_ what: String, _ path: String) -> CaduceusError {
        CaduceusError(code: "io", message: "\(what) \(path): \(String(cString: strerror(errno)))")
    }
}
