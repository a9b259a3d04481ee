import CaduceusCore

#if canImport(Glibc)
import Glibc
#endif

/// Copies a job's output from a pipe to its log file, up to a limit; past it, output is counted and dropped
/// so that a job flooding its output neither fills the disk nor blocks on a full pipe.
enum LogPump {
    struct Totals: Sendable {
        var total: Int
        var truncated: Bool
    }

    /// Reads `pipe` to its end on a thread of its own, writing at most `limit` bytes to `log`; closes both.
    static func drain(_ pipe: Int32, into log: Int32, limit: Int) async -> Totals {
        (try? await DedicatedThread.run {
            defer {
                close(pipe)
                fsync(log)
                close(log)
            }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            var total = 0
            var kept = 0
            while true {
                let count = buffer.withUnsafeMutableBytes { read(pipe, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                total += count
                let keep = min(count, limit - kept)
                if keep > 0 {
                    _ = buffer.withUnsafeBytes { write(log, $0.baseAddress, keep) }
                    kept += keep
                }
            }
            return Totals(total: total, truncated: total > kept)
        }) ?? Totals(total: 0, truncated: false)
    }
}
