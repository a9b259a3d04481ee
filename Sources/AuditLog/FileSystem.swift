import CaduceusCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few POSIX file operations the log needs, with the durability steps spelt out.
///
/// Every failure becomes a `CaduceusError` naming the path and `errno`, so that a missing or unreadable log
/// gives a one-line error rather than a crash.
enum FileSystem {
    static func failure(_ what: String, _ path: String, code: String = "audit.io") -> CaduceusError {
        let reason = String(cString: strerror(errno))
        return CaduceusError(code: code, message: "\(what) \(path): \(reason)")
    }

    /// Whether anything exists at `path`.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// Whether `path` is a directory.
    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The size of the file at `path`.
    static func size(_ path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw failure("cannot stat", path) }
        return Int(info.st_size)
    }

    /// The permission bits of the file at `path`.
    static func mode(_ path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw failure("cannot stat", path) }
        return info.st_mode & 0o7777
    }

    /// Creates a directory and its missing parents with `mode`; succeeds if it exists.
    static func makeDirectories(_ path: String, mode: mode_t = 0o700) throws {
        if isDirectory(path) { return }
        let parent = directoryName(path)
        if parent != path && !parent.isEmpty { try makeDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST { throw failure("cannot create directory", path) }
    }

    /// The directory part of a path (`"."` for a bare name).
    static func directoryName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// Reads a whole file.
    static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open", path, code: errno == ENOENT ? "audit.notFound" : "audit.io") }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read", path)
            }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<n])
        }
        return result
    }

    /// Reads a file if it exists; nil if it does not.
    static func readIfPresent(_ path: String) throws -> [UInt8]? {
        do {
            return try read(path)
        } catch let error as CaduceusError where error.code == "audit.notFound" {
            return nil
        }
    }

    /// Writes all of `bytes` to `fd`, retrying short writes.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("cannot write", path)
            }
            offset += n
        }
    }

    /// Flushes a directory's entries to disk, so that a rename or create in it survives a crash.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open directory", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw failure("cannot sync directory", path) }
    }

    /// Writes a file so that a crash leaves either the old file or the whole new one, never a torn one:
    /// temp file, fsync, rename, fsync of the directory.
    static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let temp = try writeTemporary(path, bytes, mode: mode, sync: true)
        try publish(temp, as: path)
        try syncDirectory(directoryName(path))
    }

    /// Writes `bytes` to a temporary file beside `path` and returns its name; with `sync`, fsyncs it.
    static func writeTemporary(_ path: String, _ bytes: [UInt8], mode: mode_t, sync: Bool) throws -> String {
        let temp = path + ".tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("cannot create", temp) }
        defer { close(fd) }
        try bytes.withUnsafeBytes { try writeAll(fd, $0, path: temp) }
        if sync {
            guard fsync(fd) == 0 else { throw failure("cannot sync", temp) }
        }
        return temp
    }

    /// Renames a temporary file into place.
    static func publish(_ temp: String, as path: String) throws {
        guard rename(temp, path) == 0 else { throw failure("cannot rename into", path) }
    }

    /// Flushes every file system holding `path`'s data: one call for many freshly written files.
    static func syncFileSystem(of path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open directory", path) }
        defer { close(fd) }
        #if os(Linux)
        guard linuxSyncfs(fd) == 0 else { throw failure("cannot sync file system of", path) }
        #else
        sync()
        #endif
    }

    /// Names in a directory, without `.` and `..`; empty if the directory does not exist.
    static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes a file; succeeds if it was already gone.
    static func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw failure("cannot remove", path) }
    }

    /// Removes a directory and everything in it; succeeds if it was already gone.
    static func removeTree(_ path: String) throws {
        if !isDirectory(path) {
            try remove(path)
            return
        }
        for name in list(path) { try removeTree(path + "/" + name) }
        if rmdir(path) != 0 && errno != ENOENT { throw failure("cannot remove directory", path) }
    }
}

private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

/// Closes a file descriptor (a free function, so that types with a `close` method can call it).
func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }

#if os(Linux)
/// `syncfs(2)`, which Glibc declares only under `_GNU_SOURCE`.
@_silgen_name("syncfs")
private func linuxSyncfs(_ fd: Int32) -> Int32
#endif
