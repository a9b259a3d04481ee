import AuditLog
import CaduceusCore
import Logging
import Scheduling
import Synchronization

/// Keeps what a runner does in step with the job records: launches placed jobs, stops jobs that lost their
/// GPUs, records starts and ends, audits GPU scrubs, and cordons a node whose scrub failed.
///
/// It reconciles rather than reacts: after every committed change it compares the jobs that should run on
/// the runner's nodes with the launches the runner holds, so that a restart, a lost event or a race between
/// a cancel and a start all end in the same place.
final class ExecutionService: JobReporter, Sendable {
    let runner: any JobRunner
    let scheduling: SchedulingService
    let fleet: any FleetStore
    let audit: AuditRecorder
    let clock: any WallClock
    let logger: Logger
    /// Called with every scrub report (the control plane keeps each GPU's last one for `node show`).
    let onScrub: @Sendable (GPUScrubReport) -> Void
    /// Lists and reads the datasets jobs read (the control plane's use cases).
    let inputSource: (any JobInputSource)?
    /// Called once a run's end is recorded (the control plane seals the job's logs).
    let onEnded: @Sendable (JobID) async -> Void
    private let kicks: AsyncStream<Void>.Continuation
    private let stream: AsyncStream<Void>
    /// Each active node's holder as of the last reconciliation: the runner hears when it changes.
    private let holders = Mutex<[NodeID: TenantID?]?>(nil)

    init(
        runner: any JobRunner, scheduling: SchedulingService, fleet: any FleetStore, audit: AuditRecorder,
        clock: any WallClock, logger: Logger, inputSource: (any JobInputSource)? = nil,
        onEnded: @escaping @Sendable (JobID) async -> Void = { _ in },
        onScrub: @escaping @Sendable (GPUScrubReport) -> Void = { _ in }
    ) {
        self.onEnded = onEnded
        self.inputSource = inputSource
        self.onScrub = onScrub
        self.runner = runner
        self.scheduling = scheduling
        self.fleet = fleet
        self.audit = audit
        self.clock = clock
        self.logger = logger
        (stream, kicks) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Reconciles whenever kicked, one reconciliation at a time, until the task is cancelled. Each reads every
    /// unfinished job, so kicks that come within `coalescing` of the last reconciliation fold into one: a burst
    /// of submissions costs a reconciliation per burst, not per job.
    func run() async {
        await runner.prepare(reporter: self)
        for await _ in stream {
            await reconcile()
            try? await Task.sleep(for: Self.coalescing)
        }
    }

    static let coalescing = Duration.milliseconds(20)

    /// Asks for a reconciliation soon (requests made while one runs fold into one more).
    func kick() { kicks.yield() }

    /// Ends `run`.
    func finish() { kicks.finish() }

    /// Launches what should run and is not launched; stops what is launched and should not run; adopts jobs
    /// recorded as running that the runner does not track but whose work still runs (Slurm keeps running
    /// jobs across a restart), and fails the others (their process was lost in a restart).
    func reconcile() async {
        do {
            let activeNodes = try await fleet.activeNodes()
            let now = Dictionary(activeNodes.map { ($0.node.id, $0.node.lifecycle.tenant) }, uniquingKeysWith: { $1 })
            if holders.withLock({ last in
                defer { last = now }
                return last != nil && last != now
            }) {
                await runner.nodesChanged()
            }
            let jobs = try await fleet.unfinishedJobs()
            var wanted: [LaunchKey: JobRecord] = [:]
            var nodes: [LaunchKey: NodeID] = [:]
            for job in jobs where job.state == .placed || job.state == .running {
                guard let node = job.assignments.first?.node, runner.serves(node: node) else { continue }
                wanted[LaunchKey(job: job.id, attempt: job.preemptions)] = job
                nodes[LaunchKey(job: job.id, attempt: job.preemptions)] = node
            }
            let active = await runner.active()
            for (key, job) in wanted.sorted(by: { $0.key.description < $1.key.description })
            where !active.contains(key) {
                guard let node = nodes[key] else { continue }
                if job.state == .running {
                    if let launch = try await launch(for: job, key: key), await runner.adopt(launch, reporter: self) {
                        continue
                    }
                    let killed = await runner.reclaim(job.id, on: node)
                    try await finish(
                        key, succeeded: false,
                        reason: "its process was lost when the control plane or its node agent restarted"
                            + (killed > 0 ? " (\(killed) leftover processes killed)" : ""))
                } else if let launch = try await launch(for: job, key: key) {
                    await runner.launch(launch, reporter: self)
                }
            }
            for key in active.sorted(by: { $0.description < $1.description }) where wanted[key] == nil {
                let state = jobs.first { $0.id == key.job }?.state
                await runner.stop(key, reason: state == .pending || state == .preempting ? .preempted : .cancelled)
            }
            // After the launches, so that a job placed since the last call is launched, not withdrawn; oldest
            // first, as the store lists them.
            await runner.waiting(
                jobs.filter { $0.state == .pending }.map {
                    Self.run(of: $0, key: LaunchKey(job: $0.id, attempt: $0.preemptions))
                })
            for (node, _) in activeNodes where node.lifecycle.state == .sanitizing && runner.serves(node: node.id) {
                guard let result = await runner.sanitize(node: node.id, reporter: self), result.succeeded else {
                    continue
                }
                try await completeSanitization(of: node.id, result)
            }
        } catch {
            logger.error("reconciling jobs with the runner failed", metadata: ["error": "\(error)"])
        }
    }

    private func launch(for job: JobRecord, key: LaunchKey) async throws -> JobLaunch? {
        guard let assignment = job.assignments.first, let node = try await fleet.node(id: assignment.node) else {
            return nil
        }
        let gpus = assignment.gpus.compactMap { index in node.gpus.first { $0.index == index } }
        return JobLaunch(Self.run(of: job, key: key), node: node.id, gpus: gpus, datasets: job.spec.datasets ?? [])
    }

    /// The run `key` of `job`, before its placement.
    static func run(of job: JobRecord, key: LaunchKey) -> WaitingRun {
        WaitingRun(
            key: key, tenant: job.spec.tenant, project: job.spec.project, command: job.spec.command,
            arguments: job.spec.arguments, environment: job.spec.environment,
            maxRuntimeSeconds: job.spec.maxRuntimeSeconds)
    }

    // MARK: JobReporter

    func starting(_ launch: JobLaunch) async -> Bool {
        do {
            return try await scheduling.update { [self] _, tx in
                guard var job = try await tx.job(id: launch.key.job), job.state == .placed,
                    job.preemptions == launch.key.attempt
                else { return false }
                try SchedulingService.move(&job, to: .running)
                try await tx.updateJob(job)
                try await record("job.start", job: job)
                return true
            }
        } catch {
            logger.error("cannot record a job's start", metadata: ["job": "\(launch.key)", "error": "\(error)"])
            return false
        }
    }

    func ended(_ launch: JobLaunch, _ outcome: JobOutcome) async {
        do {
            try await finish(launch.key, succeeded: outcome.succeeded, reason: outcome.description, outcome: outcome)
        } catch {
            logger.error("cannot record a job's end", metadata: ["job": "\(launch.key)", "error": "\(error)"])
        }
        kick()
        await onEnded(launch.key.job)
    }

    func changed() { kick() }

    func inputs(of launch: JobLaunch) async throws -> [JobInput] {
        guard let inputSource else { throw CaduceusError(code: "job.inputs", message: "no datasets are kept here") }
        return try await inputSource.inputs(of: launch)
    }

    func readInput(_ launch: JobLaunch, _ input: JobInput, sink: ([UInt8]) async throws -> Void) async throws {
        guard let inputSource else { throw CaduceusError(code: "job.inputs", message: "no datasets are kept here") }
        try await inputSource.readInput(launch, input, sink: sink)
    }

    func scrubbed(_ report: GPUScrubReport) async {
        onScrub(report)
        let details: JSONValue = .object([
            "gpu": .string(report.gpuUUID), "index": .integer(Int64(report.gpuIndex)),
            "bytesOverwritten": .integer(Int64(report.bytesOverwritten)),
            "bytesVerified": .integer(Int64(report.bytesVerified)), "seconds": .number(report.seconds),
            "fake": .bool(report.fake), "failure": report.failure.map { .string($0) } ?? .null,
        ])
        do {
            try await scheduling.update { [self] scheduler, tx in
                guard var node = try await tx.node(id: report.node) else { return }
                try await audit.record(
                    RequestInfo(requestID: .generate()),
                    AuditRecorder.Subject(
                        action: "gpu.scrub", resourceType: "node", resourceID: node.id.rawValue,
                        tenant: node.lifecycle.tenant),
                    outcome: report.succeeded ? .success : .error, actorOverride: (node.id.rawValue, "node"),
                    details: details)
                guard !report.succeeded, node.lifecycle.state == .available else { return }
                // A GPU that may hold another job's data must not take work: the node stops taking any.
                _ = try node.lifecycle.handle(.cordon, jobsOnNode: scheduler.jobs(on: node.id).count)
                try await tx.updateNode(node)
                try await SchedulingService.sync(node, in: tx, into: &scheduler)
            }
        } catch {
            logger.error("cannot record a GPU scrub", metadata: ["node": "\(report.node)", "error": "\(error)"])
        }
        if !report.succeeded {
            logger.critical(
                "GPU scrub failed; node cordoned",
                metadata: [
                    "node": "\(report.node)", "gpu": "\(report.gpuUUID)", "failure": "\(report.failure ?? "unknown")",
                ])
        }
    }

    /// Records a node's sanitisation: the lifecycle takes the record and the node serves its next tenant.
    private func completeSanitization(of id: NodeID, _ result: NodeSanitization) async throws {
        let now = clock.now()
        let done = try await scheduling.update { [self] scheduler, tx in
            guard var node = try await tx.node(id: id), node.lifecycle.state == .sanitizing else { return false }
            let record = SanitizationRecord(
                id: .generate(), node: id, previousTenant: node.lifecycle.heldWorkOf, completedAt: now,
                gpuMemoryScrubbed: result.succeeded, scratchErased: true)
            _ = try node.lifecycle.handle(.sanitized(record), jobsOnNode: scheduler.jobs(on: id).count)
            try await tx.updateNode(node)
            try await tx.insertSanitization(
                SanitizationEntry(
                    record: record,
                    gpus: result.scrubs.map {
                        SanitizedGPU(
                            uuid: $0.gpuUUID, bytesOverwritten: $0.bytesOverwritten, bytesVerified: $0.bytesVerified,
                            passed: $0.succeeded)
                    }, scratchFilesErased: result.scratchFilesErased))
            try await SchedulingService.sync(node, in: tx, into: &scheduler)
            try await audit.record(
                RequestInfo(requestID: .generate()),
                AuditRecorder.Subject(
                    action: "node.sanitize", resourceType: "node", resourceID: id.rawValue,
                    tenant: record.previousTenant),
                outcome: .success, actorOverride: (id.rawValue, "node"))
            return true
        }
        if done { try await scheduling.pass() }
    }

    /// Ends a running run: succeeded or failed, its GPUs back to the scheduler, audited; then a pass.
    /// A run whose job already moved on (cancelled, preempted, requeued) only has its end audited.
    private func finish(_ key: LaunchKey, succeeded: Bool, reason: String, outcome: JobOutcome? = nil) async throws {
        let now = clock.now()
        let released = try await scheduling.update { [self] scheduler, tx in
            guard var job = try await tx.job(id: key.job) else { return false }
            let current = job.preemptions == key.attempt && (job.state == .running || job.state == .placed)
            guard current else {
                try await record("job.exit", job: job, outcome: succeeded ? .success : .error)
                return false
            }
            try SchedulingService.move(&job, to: succeeded ? .succeeded : .failed)
            job.endedAt = now
            job.assignments = []
            job.reason = reason
            scheduler.remove(job: job.id, at: now)
            try await tx.updateJob(job)
            try await record(succeeded ? "job.succeed" : "job.fail", job: job, outcome: succeeded ? .success : .error)
            return true
        }
        if released { try await scheduling.pass() }
    }

    private func record(_ action: String, job: JobRecord, outcome: AuditEvent.Outcome = .success) async throws {
        try await audit.record(
            RequestInfo(requestID: .generate()),
            AuditRecorder.Subject(
                action: action, resourceType: "job", resourceID: job.id.rawValue, tenant: job.spec.tenant),
            outcome: outcome, actorOverride: SchedulingService.actor)
    }
}
