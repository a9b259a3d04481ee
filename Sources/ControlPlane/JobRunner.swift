import CaduceusCore
import Foundation
import Scheduling

/// Where placed jobs run: the node agent of this machine in embedded mode, remote node agents, Slurm later.
///
/// The control plane tells a runner which jobs to launch and which to stop; the runner tells the control
/// plane, through a `JobReporter`, when a job is about to start, when it ended, and how each GPU scrub went.
public protocol JobRunner: Sendable {
    /// Whether this runner runs the work placed on `node`.
    func serves(node: NodeID) -> Bool
    /// Gets ready before the first launch (the local agent scrubs every GPU: nothing is known of what they
    /// held before it started), reporting what it did.
    func prepare(reporter: any JobReporter) async
    /// The launches it has taken and not yet reported ended.
    func active() async -> Set<LaunchKey>
    /// Takes a launch: the runner waits until the job's GPUs are free and scrubbed, asks the reporter
    /// whether the job may still start, starts it, and reports its end. Returns at once.
    func launch(_ launch: JobLaunch, reporter: any JobReporter) async
    /// Stops a launched job (SIGTERM, then SIGKILL after a grace period).
    func stop(_ key: LaunchKey, reason: JobStopReason) async
    /// Up to `limit` bytes of a job's standard output (or error) from `offset`, with the log's size; nil when
    /// this runner holds no log of the job.
    func readLog(_ job: JobID, stderr: Bool, from offset: Int, limit: Int) async -> (bytes: [UInt8], size: Int)?
    /// Sanitises a node whose work has all left it: scrubs every GPU (reporting each) and erases its local
    /// scratch. Nil when it cannot yet (a GPU is still held) or does not serve the node.
    func sanitize(node: NodeID, reporter: any JobReporter) async -> NodeSanitization?
    /// The files on this machine holding a job's standard output and error as plain text (nil when it keeps
    /// none); the control plane seals them once the job has ended.
    func logFiles(of job: JobID) -> (stdout: String, stderr: String)?
    /// Kills whatever is left on `node` of a job this runner no longer tracks (after a restart) and erases
    /// its scratch; returns the processes killed (a remote agent does it later and reports 0).
    func reclaim(_ job: JobID, on node: NodeID) async -> Int
    /// Takes over a launch recorded as running that this runner does not track — the control plane restarted,
    /// or another replica took the lead — when its work still exists where it runs, following it from now on
    /// as if this runner had launched it. Returns whether it did; a job not adopted is reclaimed and failed.
    func adopt(_ launch: JobLaunch, reporter: any JobReporter) async -> Bool
    /// Every job waiting in the queue now (each call names all of them). A runner that hands work to its
    /// executor ahead of placement (Slurm, where a waiting job is a held Slurm job) takes in the new ones
    /// and withdraws those no longer waiting; the launch of a job it holds this way starts that same work.
    func waiting(_ jobs: [WaitingRun]) async
    /// Nodes came, went or changed hands: a runner that keeps its own view of which nodes it serves, and for
    /// whom, refreshes it before the next launch.
    func nodesChanged() async
}

extension JobRunner {
    /// A runner whose work does not outlive the control plane adopts nothing.
    public func adopt(_ launch: JobLaunch, reporter: any JobReporter) async -> Bool { false }

    /// A runner that starts work only once it is placed keeps nothing of the queue.
    public func waiting(_ jobs: [WaitingRun]) async {}

    /// A runner that asks the store each time has no view to refresh.
    public func nodesChanged() async {}
}

/// A job waiting for GPUs: what its run will be, before the scheduler has chosen where.
public struct WaitingRun: Hashable, Sendable, Codable {
    /// The run it waits to start (its attempt counts the GPUs it lost before).
    public var key: LaunchKey
    public var tenant: TenantID
    public var project: ProjectID
    public var command: String
    public var arguments: [String]
    public var environment: [String: String]
    public var maxRuntimeSeconds: Int

    public init(
        key: LaunchKey, tenant: TenantID, project: ProjectID, command: String, arguments: [String],
        environment: [String: String], maxRuntimeSeconds: Int
    ) {
        self.key = key
        self.tenant = tenant
        self.project = project
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.maxRuntimeSeconds = maxRuntimeSeconds
    }
}

/// What a runner tells the control plane.
public protocol JobReporter: Sendable {
    /// Asked right before a job's process starts; the job starts only if this returns true (it is then
    /// recorded as running first, so that no job ever starts twice).
    func starting(_ launch: JobLaunch) async -> Bool
    /// A launched job ended (or never started).
    func ended(_ launch: JobLaunch, _ outcome: JobOutcome) async
    /// A GPU was scrubbed (after a job, or to sanitise a node).
    func scrubbed(_ report: GPUScrubReport) async
    /// Something changed on the runner's side (a node connected or sent a result): reconcile soon.
    func changed()
    /// The objects of the datasets a started job reads, to place in its scratch before its program runs.
    func inputs(of launch: JobLaunch) async throws -> [JobInput]
    /// Hands one input's plaintext to `sink`, in order, each piece verified first (audited as the job's read).
    func readInput(_ launch: JobLaunch, _ input: JobInput, sink: ([UInt8]) async throws -> Void) async throws
}

/// An object a job reads: where it goes in the job's scratch (`datasets/<dataset name>/<name>`).
public struct JobInput: Hashable, Sendable, Codable {
    public var dataset: DatasetID
    public var datasetName: String
    public var object: ObjectID
    public var name: String
    public var bytes: Int64

    public init(dataset: DatasetID, datasetName: String, object: ObjectID, name: String, bytes: Int64) {
        self.dataset = dataset
        self.datasetName = datasetName
        self.object = object
        self.name = name
        self.bytes = bytes
    }
}

/// One run of a job: its ID and how many times it had lost its GPUs before (each requeue is a new run).
public struct LaunchKey: Hashable, Sendable, Codable, CustomStringConvertible {
    public var job: JobID
    public var attempt: Int

    public init(job: JobID, attempt: Int) {
        self.job = job
        self.attempt = attempt
    }

    public var description: String { "\(job)#\(attempt)" }
}

/// Everything a runner needs to start a job.
public struct JobLaunch: Hashable, Sendable, Codable {
    public var key: LaunchKey
    public var tenant: TenantID
    public var project: ProjectID
    public var command: String
    public var arguments: [String]
    public var environment: [String: String]
    /// The node and its GPUs the job holds (a job of this runner holds GPUs on one node).
    public var node: NodeID
    public var gpus: [GPUDevice]
    public var maxRuntimeSeconds: Int
    /// Datasets it reads (placed in its scratch before it starts).
    public var datasets: [DatasetID]

    public init(
        key: LaunchKey, tenant: TenantID, project: ProjectID, command: String, arguments: [String],
        environment: [String: String], node: NodeID, gpus: [GPUDevice], maxRuntimeSeconds: Int,
        datasets: [DatasetID] = []
    ) {
        self.datasets = datasets
        self.key = key
        self.tenant = tenant
        self.project = project
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.node = node
        self.gpus = gpus
        self.maxRuntimeSeconds = maxRuntimeSeconds
    }

    /// `run`, placed on `node` with `gpus`.
    public init(_ run: WaitingRun, node: NodeID, gpus: [GPUDevice], datasets: [DatasetID] = []) {
        self.init(
            key: run.key, tenant: run.tenant, project: run.project, command: run.command, arguments: run.arguments,
            environment: run.environment, node: node, gpus: gpus, maxRuntimeSeconds: run.maxRuntimeSeconds,
            datasets: datasets)
    }

    /// The run as it waited in the queue.
    public var waitingRun: WaitingRun {
        WaitingRun(
            key: key, tenant: tenant, project: project, command: command, arguments: arguments,
            environment: environment, maxRuntimeSeconds: maxRuntimeSeconds)
    }
}

/// Why a runner stops a job.
public enum JobStopReason: String, Sendable, Hashable, Codable {
    case cancelled, preempted
}

/// How a run ended, as the runner saw it.
public struct JobOutcome: Hashable, Sendable, Codable {
    /// Whether the program exited with status 0.
    public var succeeded: Bool
    /// In words: "exited with status 3", "stopped after its maximum run time", "did not start: …".
    public var description: String
    /// Bytes of output, and whether the logs were cut at their limit.
    public var outputBytes: Int
    public var logsTruncated: Bool
    /// Processes of the job still running at its end, killed by the runner.
    public var leftoversKilled: Int

    public init(succeeded: Bool, description: String, outputBytes: Int, logsTruncated: Bool, leftoversKilled: Int) {
        self.succeeded = succeeded
        self.description = description
        self.outputBytes = outputBytes
        self.logsTruncated = logsTruncated
        self.leftoversKilled = leftoversKilled
    }
}

/// One GPU's scrub, for the audit trail.
public struct GPUScrubReport: Hashable, Sendable, Codable {
    public var node: NodeID
    public var gpuUUID: String
    public var gpuIndex: Int
    public var bytesOverwritten: UInt64
    public var bytesVerified: UInt64
    public var seconds: Double
    /// Whether memory was overwritten, read back as written, and no process was left on the GPU.
    public var succeeded: Bool
    /// What went wrong, if anything.
    public var failure: String?
    /// Whether the GPU is a stand-in (`--fake-gpus`).
    public var fake: Bool

    public init(
        node: NodeID, gpuUUID: String, gpuIndex: Int, bytesOverwritten: UInt64, bytesVerified: UInt64, seconds: Double,
        succeeded: Bool, failure: String?, fake: Bool
    ) {
        self.node = node
        self.gpuUUID = gpuUUID
        self.gpuIndex = gpuIndex
        self.bytesOverwritten = bytesOverwritten
        self.bytesVerified = bytesVerified
        self.seconds = seconds
        self.succeeded = succeeded
        self.failure = failure
        self.fake = fake
    }
}

/// What a runner did to sanitise a node.
public struct NodeSanitization: Hashable, Sendable, Codable {
    /// Each GPU's scrub.
    public var scrubs: [GPUScrubReport]
    /// Files overwritten and removed from the node's scratch.
    public var scratchFilesErased: Int
    /// Whether every GPU's scrub passed and the scratch is gone.
    public var succeeded: Bool

    public init(scrubs: [GPUScrubReport], scratchFilesErased: Int, succeeded: Bool) {
        self.scrubs = scrubs
        self.scratchFilesErased = scratchFilesErased
        self.succeeded = succeeded
    }
}

/// Several runners as one: each node is served by the first runner that serves it.
public struct JobRunners: JobRunner {
    let runners: [any JobRunner]

    /// Combines `runners`, in order of precedence.
    public init(_ runners: [any JobRunner]) { self.runners = runners }

    public func serves(node: NodeID) -> Bool { runners.contains { $0.serves(node: node) } }

    public func prepare(reporter: any JobReporter) async {
        for runner in runners { await runner.prepare(reporter: reporter) }
    }

    public func active() async -> Set<LaunchKey> {
        var all = Set<LaunchKey>()
        for runner in runners { all.formUnion(await runner.active()) }
        return all
    }

    public func launch(_ launch: JobLaunch, reporter: any JobReporter) async {
        await runners.first { $0.serves(node: launch.node) }?.launch(launch, reporter: reporter)
    }

    public func stop(_ key: LaunchKey, reason: JobStopReason) async {
        for runner in runners where await runner.active().contains(key) { await runner.stop(key, reason: reason) }
    }

    public func readLog(_ job: JobID, stderr: Bool, from offset: Int, limit: Int) async -> (bytes: [UInt8], size: Int)?
    {
        for runner in runners {
            if let log = await runner.readLog(job, stderr: stderr, from: offset, limit: limit) { return log }
        }
        return nil
    }

    public func sanitize(node: NodeID, reporter: any JobReporter) async -> NodeSanitization? {
        await runners.first { $0.serves(node: node) }?.sanitize(node: node, reporter: reporter)
    }

    public func reclaim(_ job: JobID, on node: NodeID) async -> Int {
        await runners.first { $0.serves(node: node) }?.reclaim(job, on: node) ?? 0
    }

    public func adopt(_ launch: JobLaunch, reporter: any JobReporter) async -> Bool {
        await runners.first { $0.serves(node: launch.node) }?.adopt(launch, reporter: reporter) ?? false
    }

    public func waiting(_ jobs: [WaitingRun]) async {
        for runner in runners { await runner.waiting(jobs) }
    }

    public func nodesChanged() async {
        for runner in runners { await runner.nodesChanged() }
    }

    /// The files of the runner that holds the job's log, plain or sealed (`<file>.sealed`).
    public func logFiles(of job: JobID) -> (stdout: String, stderr: String)? {
        let held = { (path: String) in
            FileManager.default.fileExists(atPath: path) || FileManager.default.fileExists(atPath: path + ".sealed")
        }
        return runners.lazy.compactMap { $0.logFiles(of: job) }.first { held($0.stdout) || held($0.stderr) }
            ?? runners.lazy.compactMap { $0.logFiles(of: job) }.first
    }
}
