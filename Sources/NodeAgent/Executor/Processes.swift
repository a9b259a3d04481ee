import CaduceusCore

#if canImport(Glibc)
import Glibc
#endif

/// Finding and killing every process of a job: those in its process group, and those that left the group
/// but carry its `CADUCEUS_JOB_ID`.
enum Processes {
    /// Sends SIGKILL to every process of the job until none is left (at most a few rounds, for processes
    /// forking as they die); returns how many were killed.
    static func killAll(job: JobID, group: pid_t?) -> Int {
        var killed = Set<pid_t>()
        for _ in 0..<20 {
            let members = find(job: job, group: group)
            if members.isEmpty { break }
            for pid in members where kill(pid, SIGKILL) == 0 { killed.insert(pid) }
            usleep(2_000)
        }
        if let group, group > 1 { kill(-group, SIGKILL) }
        return killed.count
    }

    /// Processes in `group` or with `CADUCEUS_JOB_ID=<job>` in their environment (zombies excepted).
    static func find(job: JobID, group: pid_t?) -> [pid_t] {
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        let marker = Array("CADUCEUS_JOB_ID=\(job.rawValue)".utf8) + [0]
        var found: [pid_t] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = pid_t(name), pid != getpid() else { continue }
            guard let stat = read("/proc/\(name)/stat"), let fields = statFields(stat) else { continue }
            if fields.state == UInt8(ascii: "Z") { continue }
            if let group, group > 1, fields.group == group {
                found.append(pid)
            } else if let environment = read("/proc/\(name)/environ"), contains(environment, marker) {
                found.append(pid)
            }
        }
        return found
    }

    /// The state letter and process group of a `/proc/<pid>/stat` line.
    private static func statFields(_ bytes: [UInt8]) -> (state: UInt8, group: pid_t)? {
        // "pid (comm) S ppid pgrp …": comm may hold spaces and parentheses; the last ')' ends it.
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let rest = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard rest.count > 3, let state = rest[0].first,
            let group = pid_t(String(decoding: rest[2], as: UTF8.self))
        else { return nil }
        return (state, group)
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        // Entries are NUL-separated; the marker must start an entry.
        var start = 0
        while start < haystack.count {
            let end = haystack[start...].firstIndex(of: 0) ?? haystack.count
            if haystack[start..<min(haystack.count, end + 1)].elementsEqual(needle) { return true }
            start = end + 1
        }
        return false
    }

    private static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return bytes
    }
}
