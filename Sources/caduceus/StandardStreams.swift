#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes the CLI's own output to standard output and standard error, unbuffered (callers batch).
enum StandardStreams {
    /// Writes bytes to standard output.
    static func write(_ bytes: [UInt8]) {
        writeAll(STDOUT_FILENO, bytes)
    }

    /// Writes a line to standard output.
    static func line(_ text: String) {
        write(Array((text + "\n").utf8))
    }

    /// Writes a line to standard error.
    static func error(_ text: String) {
        writeAll(STDERR_FILENO, Array((text + "\n").utf8))
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    /// Reads a whole file, or standard input for `-`.
    static func readInput(_ path: String) throws -> [UInt8] {
        let fd = path == "-" ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { if path != "-" { close(fd) } }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            result += chunk[0..<n]
        }
        return result
    }
}

/// A one-line error for the person at the terminal.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
