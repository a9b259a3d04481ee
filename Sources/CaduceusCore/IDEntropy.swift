import Synchronization

#if canImport(Glibc)
import Glibc
private let readBytes = Glibc.read
#elseif canImport(Darwin)
import Darwin
private let readBytes = Darwin.read
#endif

/// The random bits of new IDs, read from the kernel's generator 4 KiB at a time: one read per 256 IDs, where
/// drawing each ID's two words on its own took two system calls (every request makes at least two IDs).
///
/// Each word is handed out once. A process started by `fork` would share the parent's unread words, so a
/// change of process ID discards them.
enum IDEntropy {
    private struct Pool {
        var words: [UInt64] = []
        var next = 0
        var process: Int32 = 0
    }

    private static let pool = Mutex(Pool())
    private static let wordsPerRead = 512

    /// 128 fresh random bits.
    static func next() -> (UInt64, UInt64) {
        pool.withLock { pool in
            let process = getpid()
            if pool.next + 2 > pool.words.count || pool.process != process {
                pool.words = read()
                pool.next = 0
                pool.process = process
            }
            defer { pool.next += 2 }
            return (pool.words[pool.next], pool.words[pool.next + 1])
        }
    }

    /// A page of words from `/dev/urandom`, or from the standard library's generator when it cannot be read.
    private static func read() -> [UInt64] {
        var words = [UInt64](repeating: 0, count: wordsPerRead)
        let complete = words.withUnsafeMutableBytes { buffer -> Bool in
            let descriptor = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return false }
            defer { close(descriptor) }
            var filled = 0
            while filled < buffer.count {
                let count = readBytes(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
                if count > 0 {
                    filled += count
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    return false
                }
            }
            return true
        }
        if !complete {
            var generator = SystemRandomNumberGenerator()
            for index in words.indices { words[index] = generator.next() }
        }
        return words
    }
}
