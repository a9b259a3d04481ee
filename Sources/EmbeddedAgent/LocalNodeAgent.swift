import CaduceusCore
import ControlPlane
import Foundation
import Logging
import NodeAgent
import Scheduling
import Synchronization

/// The node agent of the machine `caduceus serve` runs on: runs the jobs placed on this node with the local
/// executor, gives each only the GPUs it was placed on and only once they are scrubbed, and scrubs them again
/// when it ends.
public final class LocalNodeAgent: JobRunner {
    /// The node this agent serves.
    public let node: NodeID
    let gpus: NodeGPUs
    let executor: LocalExecutor
    let logger: Logger
    private let launches = Mutex<[LaunchKey: LaunchState]>([:])
    /// Launches waiting for GPUs, woken whenever GPUs may have come free; `generation` counts the wake-ups so
    /// that none is lost between a failed claim and the wait.
    private let freed = Mutex<(generation: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))

    private struct LaunchState {
        var stop: JobStopReason?
        var started = false
    }

    /// Creates the agent of `node`, with its GPUs and executor.
    public init(node: NodeID, gpus: NodeGPUs, executor: LocalExecutor, logger: Logger) {
        self.node = node
        self.gpus = gpus
        self.executor = executor
        self.logger = logger
    }

    public func serves(node: NodeID) -> Bool { node == self.node }

    public func active() async -> Set<LaunchKey> { launches.withLock { Set($0.keys) } }

    public func launch(_ launch: JobLaunch, reporter: any JobReporter) async {
        let fresh = launches.withLock { state -> Bool in
            guard state[launch.key] == nil else { return false }
            state[launch.key] = LaunchState()
            return true
        }
        guard fresh else { return }
        Task { await execute(launch, reporter: reporter) }
    }

    public func stop(_ key: LaunchKey, reason: JobStopReason) async {
        let started = launches.withLock { state -> Bool? in
            guard var entry = state[key] else { return nil }
            if entry.stop == nil { entry.stop = reason }
            state[key] = entry
            return entry.started
        }
        guard started == true else { return }
        await executor.stop(key.job, reason: reason == .cancelled ? .cancelled : .preempted)
    }

    public func readLog(_ job: JobID, stderr: Bool, from offset: Int, limit: Int) async -> (bytes: [UInt8], size: Int)?
    {
        executor.readLog(job, stderr: stderr, from: offset, limit: limit)
    }

    public func sanitize(node: NodeID, reporter: any JobReporter) async -> NodeSanitization? {
        guard node == self.node else { return nil }
        let outcome: GPUScrubOutcome
        do {
            outcome = try await gpus.sanitize(reason: .tenantChange)
        } catch {
            // A GPU is still held or being scrubbed: the end of that job brings another try.
            return nil
        }
        wakeWaiters()
        for record in outcome.records { await reporter.scrubbed(Self.report(record)) }
        let erased = executor.eraseAllScratch()
        return NodeSanitization(
            scrubs: outcome.records.map(Self.report), scratchFilesErased: erased,
            succeeded: outcome.alert == nil && !outcome.records.isEmpty)
    }

    public func logFiles(of job: JobID) -> (stdout: String, stderr: String)? { executor.logPaths(of: job) }

    public func reclaim(_ job: JobID, on node: NodeID) async -> Int {
        executor.reclaim(job)
    }

    /// Scrubs every GPU of the node, reporting each scrub: at start-up nothing is known of what they held.
    public func prepare(reporter: any JobReporter) async {
        do {
            let outcome = try await gpus.sanitize(reason: .startup)
            wakeWaiters()
            for record in outcome.records { await reporter.scrubbed(Self.report(record)) }
        } catch {
            logger.error("cannot scrub the GPUs at start-up", metadata: ["error": "\(error)"])
        }
    }

    /// Waits for the job's GPUs, asks whether it may still start, runs it, reports its end, scrubs its GPUs.
    private func execute(_ launch: JobLaunch, reporter: any JobReporter) async {
        let job = launch.key.job
        let uuids = launch.gpus.map(\.uuid)
        // The GPUs may still hold the previous job's memory (being scrubbed) or the job's previous run.
        while true {
            let generation = freed.withLock { $0.generation }
            if launches.withLock({ $0[launch.key]?.stop }) != nil {
                return await end(launch, reporter, description: "stopped before it started")
            }
            if !executor.isRunning(job) {
                do {
                    try await gpus.claim(uuids, for: job)
                    break
                } catch {
                    if let alert = await gpus.cordon {
                        return await end(launch, reporter, description: "did not start: \(alert.message)")
                    }
                }
            }
            await waitForFreedGPUs(since: generation)
        }
        guard await reporter.starting(launch) else {
            launches.withLock { _ = $0.removeValue(forKey: launch.key) }
            await scrub(job, reporter)
            return
        }
        launches.withLock { $0[launch.key]?.started = true }
        if !launch.datasets.isEmpty {
            do {
                try await placeInputs(launch, reporter)
            } catch {
                executor.eraseScratch(of: job)
                await end(launch, reporter, description: "did not start: cannot read its datasets: \(error)")
                await scrub(job, reporter)
                return
            }
        }
        let request = ExecutionRequest(
            job: job, tenant: launch.tenant, project: launch.project, command: launch.command,
            arguments: launch.arguments, environment: launch.environment, gpuUUIDs: uuids,
            maxRuntimeSeconds: launch.maxRuntimeSeconds)
        let result = await executor.run(request)
        // The launch stays active until its end is recorded: a reconciliation in between must not take the
        // job for one whose process was lost.
        await reporter.ended(
            launch,
            JobOutcome(
                succeeded: result.end.succeeded, description: result.end.description,
                outputBytes: result.stdoutBytes + result.stderrBytes, logsTruncated: result.truncated,
                leftoversKilled: result.leftoversKilled))
        launches.withLock { _ = $0.removeValue(forKey: launch.key) }
        await scrub(job, reporter)
    }

    /// Writes the plaintext of the job's datasets into its scratch (`datasets/<dataset name>/<object name>`,
    /// 0600 in folders of 0700): the scratch is the job's alone and is overwritten and removed when it ends,
    /// so the plaintext lives no longer than the job. Reading through a mount that decrypts on access would
    /// need FUSE on every node; this needs nothing but disk.
    private func placeInputs(_ launch: JobLaunch, _ reporter: any JobReporter) async throws {
        let root = executor.folder(of: launch.key.job) + "/scratch/datasets"
        for input in try await reporter.inputs(of: launch) {
            let folder = root + "/" + input.datasetName
            for directory in [
                executor.folder(of: launch.key.job), executor.folder(of: launch.key.job) + "/scratch", root, folder,
            ] {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
            let path = folder + "/" + input.name
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
                let handle = FileHandle(forWritingAtPath: path)
            else { throw CaduceusError(code: "agent.inputs", message: "cannot write \(input.name) into the scratch") }
            defer { try? handle.close() }
            try await reporter.readInput(launch, input) { bytes in try handle.write(contentsOf: bytes) }
        }
    }

    /// Waits until GPUs may have come free after `generation` (at most a second, as a safety net).
    private func waitForFreedGPUs(since generation: Int) async {
        let timeout = Task { [self] in
            try await Task.sleep(for: .seconds(1))
            wakeWaiters()
        }
        await withCheckedContinuation { continuation in
            let now = freed.withLock { state -> Bool in
                guard state.generation == generation else { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
        timeout.cancel()
    }

    /// Wakes every launch waiting for GPUs.
    private func wakeWaiters() {
        let waiters = freed.withLock { state in
            state.generation += 1
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func end(_ launch: JobLaunch, _ reporter: any JobReporter, description: String) async {
        await reporter.ended(
            launch,
            JobOutcome(
                succeeded: false, description: description, outputBytes: 0, logsTruncated: false, leftoversKilled: 0))
        launches.withLock { _ = $0.removeValue(forKey: launch.key) }
    }

    private func scrub(_ job: JobID, _ reporter: any JobReporter) async {
        let outcome = await gpus.jobEnded(job)
        wakeWaiters()
        for record in outcome.records { await reporter.scrubbed(Self.report(record)) }
        if let alert = outcome.alert {
            logger.critical("GPU scrub failed", metadata: ["node": "\(node)", "alert": "\(alert.message)"])
        }
    }

    static func report(_ record: GPUScrubRecord) -> GPUScrubReport {
        GPUScrubReport(
            node: record.node, gpuUUID: record.gpuUUID, gpuIndex: record.gpuIndex,
            bytesOverwritten: record.bytesOverwritten, bytesVerified: record.bytesVerified,
            seconds: Double(record.durationMicroseconds) / 1e6, succeeded: record.passed,
            failure: record.failure?.message, fake: record.fake)
    }
}
