import CaduceusCore

#if canImport(Glibc)
import Glibc
#endif

/// The executor's file work: private folders and logs, and erasing a job's scratch.
enum Files {
    /// Creates a folder with `mode` unless it exists; refuses one that is a link or another's.
    static func makeDirectory(_ path: String, mode: mode_t) throws(CaduceusError) {
        if mkdir(path, mode) == 0 || errno == EEXIST {
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == getuid() else {
                throw CaduceusError(code: "executor.files", message: "\(path) is not a folder of this user")
            }
            chmod(path, mode)
            return
        }
        throw CaduceusError(
            code: "executor.files", message: "cannot create \(path): \(String(cString: strerror(errno)))")
    }

    /// Opens a log file readable by this user only, for appending (a requeued job's runs follow each other);
    /// returns its descriptor.
    static func create(_ path: String) throws(CaduceusError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw CaduceusError(
                code: "executor.files", message: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        fchmod(fd, 0o600)
        return fd
    }

    /// Overwrites every regular file under `path` with zeros, syncs and removes it, then removes the folders;
    /// returns how many files were erased. Links are removed, never followed.
    @discardableResult
    static func erase(_ path: String) -> Int {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        if info.st_mode & S_IFMT != S_IFDIR {
            let erased = info.st_mode & S_IFMT == S_IFREG ? overwrite(path, size: Int(info.st_size)) : 0
            unlink(path)
            return erased
        }
        var erased = 0
        if let directory = opendir(path) {
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(directory)
            for name in names { erased += erase(path + "/" + name) }
        }
        rmdir(path)
        return erased
    }

    private static func overwrite(_ path: String, size: Int) -> Int {
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        var written = 0
        while written < size {
            let count = zeros.withUnsafeBytes { write(fd, $0.baseAddress, min($0.count, size - written)) }
            if count <= 0 { break }
            written += count
        }
        fdatasync(fd)
        return 1
    }
}
