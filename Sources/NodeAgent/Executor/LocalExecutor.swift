import CaduceusCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs jobs as child processes of this one: each in a process group of its own, in a private scratch
/// directory, with its output captured to log files, its run time bounded, and nothing of it left running or
/// left on disk when it ends.
///
/// `run` lasts as long as the job; `stop` ends it early (SIGTERM to the group, SIGKILL after the grace
/// period). Processes of the job that leave its group are found by the `CADUCEUS_JOB_ID` in their
/// environment and killed too.
public final class LocalExecutor: Sendable {
    /// Where and how the executor works.
    public struct Settings: Sendable {
        /// The folder holding one folder per job (`<data>/jobs`).
        public var root: String
        /// How long a stopped job has between SIGTERM and SIGKILL, in seconds.
        public var graceSeconds: Double
        /// The most bytes kept of each of a job's output streams; the rest is counted and dropped.
        public var logLimitBytes: Int

        /// Creates settings.
        public init(root: String, graceSeconds: Double = 10, logLimitBytes: Int = 64 << 20) {
            self.root = root
            self.graceSeconds = graceSeconds
            self.logLimitBytes = logLimitBytes
        }
    }

    /// How a job's run went.
    public struct Result: Sendable, Hashable {
        /// How its process ended.
        public var end: ExecutionEnd
        /// Its process ID while it ran (0 if it never started).
        public var pid: Int32
        /// Bytes the job wrote to standard output and standard error, kept or not.
        public var stdoutBytes: Int
        public var stderrBytes: Int
        /// Whether either log was cut at the limit.
        public var truncated: Bool
        /// Processes of the job still running after it ended, killed by the executor.
        public var leftoversKilled: Int
        /// Files overwritten and removed from its scratch directory.
        public var scratchFilesErased: Int
    }

    private struct Running {
        var pid: pid_t
        var stop: StopReason?
    }

    let settings: Settings
    private let running = Mutex<[JobID: Running]>([:])

    /// Creates an executor working under `settings.root`.
    public init(settings: Settings) {
        self.settings = settings
    }

    /// The folder of a job: `scratch/` and its logs.
    public func folder(of job: JobID) -> String { settings.root + "/" + job.rawValue }

    /// Where a job's standard output and standard error are kept.
    public func logPaths(of job: JobID) -> (stdout: String, stderr: String) {
        (folder(of: job) + "/stdout.log", folder(of: job) + "/stderr.log")
    }

    /// Whether a job runs now.
    public func isRunning(_ job: JobID) -> Bool { running.withLock { $0[job] != nil } }

    /// Runs a job to its end. `started` is called with the process ID once the program runs.
    public func run(_ request: ExecutionRequest, started: @Sendable (Int32) -> Void = { _ in }) async -> Result {
        let folder = folder(of: request.job)
        let scratch = folder + "/scratch"
        let child: Spawn.Child
        let logs: (stdout: Int32, stderr: Int32)
        do {
            try Files.makeDirectory(settings.root, mode: 0o700)
            try Files.makeDirectory(folder, mode: 0o700)
            try Files.makeDirectory(scratch, mode: 0o700)
            logs = (
                try Files.create(logPaths(of: request.job).stdout), try Files.create(logPaths(of: request.job).stderr)
            )
            child = try Spawn.start(
                path: request.command, arguments: request.arguments,
                environment: request.environment(scratch: scratch), directory: scratch)
        } catch {
            let erased = Files.erase(scratch)
            return Result(
                end: .failedToStart(error.message), pid: 0, stdoutBytes: 0, stderrBytes: 0, truncated: false,
                leftoversKilled: 0, scratchFilesErased: erased)
        }
        running.withLock { $0[request.job] = Running(pid: child.pid) }
        started(child.pid)
        let limit = settings.logLimitBytes
        async let stdout = LogPump.drain(child.stdout, into: logs.stdout, limit: limit)
        async let stderr = LogPump.drain(child.stderr, into: logs.stderr, limit: limit)
        let timer = Task { [self] in
            try await Task.sleep(for: .seconds(request.maxRuntimeSeconds))
            await stop(request.job, reason: .timedOut)
        }
        let status = await Self.wait(for: child.pid)
        timer.cancel()
        // The program is gone; whatever it left behind goes too, so that the pipes close.
        let leftovers = Processes.killAll(job: request.job, group: child.pid)
        let (out, err) = await (stdout, stderr)
        let stopReason = running.withLock { $0.removeValue(forKey: request.job)?.stop }
        let erased = Files.erase(scratch)
        return Result(
            end: stopReason?.end ?? Self.end(status), pid: child.pid, stdoutBytes: out.total, stderrBytes: err.total,
            truncated: out.truncated || err.truncated, leftoversKilled: leftovers, scratchFilesErased: erased)
    }

    /// Stops a running job: SIGTERM to its process group now, SIGKILL to all of it after the grace period.
    /// The first reason given is the one the job ends with.
    public func stop(_ job: JobID, reason: StopReason) async {
        let pid: pid_t? = running.withLock { state in
            guard var entry = state[job] else { return nil }
            if entry.stop == nil { entry.stop = reason }
            state[job] = entry
            return entry.pid
        }
        guard let pid else { return }
        kill(-pid, SIGTERM)
        try? await Task.sleep(for: .seconds(settings.graceSeconds))
        guard isRunning(job) else { return }
        _ = Processes.killAll(job: job, group: pid)
    }

    /// Kills whatever is left of a job this executor does not track (it ran before a restart): every process
    /// carrying its job ID. Erases its scratch folder; returns the processes killed.
    public func reclaim(_ job: JobID) -> Int {
        let killed = Processes.killAll(job: job, group: nil)
        Files.erase(folder(of: job) + "/scratch")
        return killed
    }

    /// Overwrites and removes a job's log files (once the control plane holds them).
    public func eraseLogs(of job: JobID) {
        Files.erase(logPaths(of: job).stdout)
        Files.erase(logPaths(of: job).stderr)
    }

    /// Erases a job's scratch folder (overwriting its files first); returns the files erased.
    @discardableResult
    public func eraseScratch(of job: JobID) -> Int { Files.erase(folder(of: job) + "/scratch") }

    /// Erases every job's scratch folder (a node changing tenant); returns the files erased.
    public func eraseAllScratch() -> Int {
        jobFolders().reduce(0) { $0 + Files.erase(settings.root + "/" + $1 + "/scratch") }
    }

    /// Reclaims every job that left a folder and that this executor does not run (an agent starting after a
    /// crash: whatever its jobs left running is killed); returns the processes killed.
    public func reclaimAll() -> Int {
        jobFolders().compactMap { JobID(rawValue: $0) }.filter { !isRunning($0) }.reduce(0) { $0 + reclaim($1) }
    }

    private func jobFolders() -> [String] {
        guard let directory = opendir(settings.root) else { return [] }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        return names.sorted()
    }

    /// Up to `limit` bytes of a job's log from `offset`, and the log's size; nil when the job has no log.
    public func readLog(_ job: JobID, stderr: Bool, from offset: Int, limit: Int) -> (bytes: [UInt8], size: Int)? {
        let path = stderr ? logPaths(of: job).stderr : logPaths(of: job).stdout
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let size = Int(info.st_size)
        let start = min(max(0, offset), size)
        var bytes = [UInt8](repeating: 0, count: min(max(0, limit), size - start))
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
        return (Array(bytes.prefix(max(0, count))), size)
    }

    /// Waits for a child on a thread of its own (waitpid blocks).
    private static func wait(for pid: pid_t) async -> Int32 {
        (try? await DedicatedThread.run { () -> Int32 in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            return status
        }) ?? 0
    }

    private static func end(_ status: Int32) -> ExecutionEnd {
        let signal = status & 0x7f
        if signal == 0 { return .exited((status >> 8) & 0xff) }
        return .signalled(signal)
    }
}
