import CaduceusCore
import ControlPlane
import Foundation
import Logging
import Scheduling
import Synchronization

/// Runs placed jobs on a Slurm cluster through slurmrestd, as the local and remote runners run them on
/// node agents.
///
/// Caduceus's scheduler still decides placement: each launch runs in the tenant's partition with the
/// chosen node (`nodelist`) and `gres=gpu:<model>:N`. A job waiting in Caduceus's queue is already in
/// Slurm's, held (priority 0, no node): when the scheduler places it, that Slurm job is released onto the
/// chosen node and GPUs in one update, so that jobs reach Slurm as fast as they are submitted while Slurm
/// never starts one Caduceus has not placed. A tenant's partition must hold exactly that
/// tenant's nodes; when it holds a node of another tenant (or one no tenant holds), the runner refuses to
/// run that tenant's jobs and says why. Job state comes from polling slurmrestd; a job Slurm fails or loses
/// ends with Slurm's reason. Cancel and preemption cancel the Slurm job (its GPUs are freed at once, unlike
/// SUSPEND); a preempted job goes back to Caduceus's queue and is submitted again where the scheduler
/// places it. Output goes to `<spool>/logs/<job>/` (a directory every node and the control plane share),
/// and the Slurm epilog (`scripts/slurm-epilog.sh`, which runs `caduceus-gpu scrub`) leaves each GPU scrub
/// in `<spool>/scrubs/`, which the runner reports to the control plane to audit.
public final class SlurmRunner: JobRunner {
    public struct Settings: Sendable {
        /// slurmrestd's address and credentials.
        public var endpoint: SlurmEndpoint
        /// Partition by tenant name; a tenant not named uses the partition named like the tenant.
        public var partitions: [String: String]
        /// The directory shared by the control plane and every Slurm node: job logs, scratch, scrub records.
        public var spool: String
        /// How often slurmrestd is polled.
        public var pollInterval: Duration
        /// Polls a submitted job may be missing from slurmctld's list before it counts as lost.
        public var missingPollsBeforeLost: Int
        /// The `caduceus-gpu` program on the nodes, which scrubs a node's GPUs when it is sanitised.
        public var gpuProgram: String
        /// More options for its scrub (`--fake-gpus N` on a cluster of stand-ins).
        public var gpuOptions: [String]
        /// How many waiting jobs are handed to Slurm held, ahead of placement (0: a job reaches Slurm only once
        /// it is placed); the oldest are handed first, the others when they are placed.
        public var queueAhead: Int

        public init(
            endpoint: SlurmEndpoint, partitions: [String: String], spool: String,
            pollInterval: Duration = .milliseconds(250), missingPollsBeforeLost: Int = 12,
            gpuProgram: String = "caduceus-gpu", gpuOptions: [String] = [], queueAhead: Int = 1000
        ) {
            self.queueAhead = queueAhead
            self.gpuProgram = gpuProgram
            self.gpuOptions = gpuOptions
            self.endpoint = endpoint
            self.partitions = partitions
            self.spool = spool
            self.pollInterval = pollInterval
            self.missingPollsBeforeLost = missingPollsBeforeLost
        }
    }

    /// What the runner knows of Caduceus's nodes: name, holder and GPUs.
    public struct FleetNode: Sendable, Equatable {
        public var id: NodeID
        public var name: String
        public var tenant: TenantID?
        public var tenantName: String?
        public var gpus: [GPUDevice]

        public init(id: NodeID, name: String, tenant: TenantID?, tenantName: String?, gpus: [GPUDevice]) {
            self.id = id
            self.name = name
            self.tenant = tenant
            self.tenantName = tenantName
            self.gpus = gpus
        }
    }

    /// How slurmrestd and the cluster look now, for `cluster status` and `/readyz`.
    public struct Health: Sendable, Equatable, Codable {
        public var reachable: Bool
        public var release: String?
        public var problem: String?
        public var nodes: [String]
        /// Why a tenant's jobs are refused, by tenant name.
        public var refusedTenants: [String: String]
    }

    struct Tracked {
        var launch: JobLaunch
        var reporter: any JobReporter
        var slurmID: Int?
        var stop: JobStopReason?
        var missingPolls = 0
        /// Started, but slurmrestd could not be reached to submit it: sent again from the poll loop.
        var awaitingSlurm = false
        /// The held Slurm job it waited in, when it was handed to Slurm ahead of placement.
        var held: Task<Holding, Never>?
    }

    struct State {
        var served: [NodeID: FleetNode] = [:]
        var launches: [LaunchKey: Tracked] = [:]
        /// Why each tenant's jobs may not run here now, by tenant ID.
        var refusals: [TenantID: String] = [:]
        var health = Health(reachable: false, release: nil, problem: "not checked yet", nodes: [], refusedTenants: [:])
        var reporter: (any JobReporter)?
        var started = false
        /// The Slurm job sanitising each node, while it runs.
        var sanitizing: [NodeID: Int] = [:]
        /// Launches whose end is being reported: still this runner's until the control plane has recorded it.
        var ending: Set<LaunchKey> = []
        /// Waiting jobs handed to Slurm held, by run.
        var queued: [LaunchKey: Task<Holding, Never>] = [:]
        /// Held Slurm jobs of Caduceus's that were there before this runner (a restart, or another replica that
        /// led): nil until listed; then each is taken by its job's queue entry or launch, or cancelled.
        var inherited: [LaunchKey: Int]?
    }

    public let settings: Settings
    let client: SlurmClient
    private let fleet: @Sendable () async throws -> [FleetNode]
    let logger: Logger
    let state = Mutex(State())
    /// One listing of the inherited held jobs at a time.
    let inheriting = AsyncLock()

    /// A runner over `client`; `fleet` lists Caduceus's nodes (each refresh matches them to Slurm's by name).
    public init(
        settings: Settings, client: SlurmClient, logger: Logger,
        fleet: @escaping @Sendable () async throws -> [FleetNode]
    ) {
        self.settings = settings
        self.client = client
        self.fleet = fleet
        self.logger = logger
    }

    /// The latest view of slurmrestd and the partitions.
    public var health: Health { state.withLock { $0.health } }

    // MARK: JobRunner

    public func serves(node: NodeID) -> Bool { state.withLock { $0.served[node] != nil } }

    public func prepare(reporter: any JobReporter) async {
        for folder in ["logs", "scratch", "scrubs", "sanitize", "placements"] {
            try? FileManager.default.createDirectory(
                atPath: settings.spool + "/" + folder, withIntermediateDirectories: true)
        }
        await refresh()
        let first = state.withLock { state -> Bool in
            state.reporter = reporter
            defer { state.started = true }
            return !state.started
        }
        guard first else { return }
        Task { [weak self] in
            var tick = 0
            while let self {
                try? await Task.sleep(for: self.settings.pollInterval)
                tick += 1
                if tick % 20 == 0 { await self.refresh() }
                await self.poll()
            }
        }
    }

    public func nodesChanged() async { await refresh() }

    public func active() async -> Set<LaunchKey> { state.withLock { Set($0.launches.keys).union($0.ending) } }

    public func launch(_ launch: JobLaunch, reporter: any JobReporter) async {
        let taken = state.withLock { state -> Bool in
            guard state.launches[launch.key] == nil else { return false }
            var tracked = Tracked(launch: launch, reporter: reporter)
            tracked.held = state.queued.removeValue(forKey: launch.key)
            state.launches[launch.key] = tracked
            return true
        }
        guard taken else { return }
        Task { await self.submit(launch.key) }
    }

    public func stop(_ key: LaunchKey, reason: JobStopReason) async {
        let slurmID = state.withLock { state -> Int?? in
            guard var tracked = state.launches[key], tracked.stop == nil else { return nil }
            tracked.stop = reason
            state.launches[key] = tracked
            return .some(tracked.slurmID)
        }
        guard case .some(let id?) = slurmID else { return }
        do {
            try await client.cancel(id)
        } catch {
            logger.error(
                "cannot cancel a Slurm job", metadata: ["job": "\(key)", "slurm": "\(id)", "error": "\(error)"])
        }
    }

    public func readLog(_ job: JobID, stderr: Bool, from offset: Int, limit: Int) async -> (bytes: [UInt8], size: Int)?
    {
        let path = logPath(job, stderr: stderr)
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let size = Int((try? handle.seekToEnd()) ?? 0)
        guard offset < size else { return ([], size) }
        try? handle.seek(toOffset: UInt64(offset))
        let data = (try? handle.read(upToCount: min(limit, size - offset))) ?? Data()
        return ([UInt8](data), size)
    }

    public func sanitize(node: NodeID, reporter: any JobReporter) async -> NodeSanitization? {
        guard let entry = state.withLock({ $0.served[node] }) else { return nil }
        let busy = state.withLock { $0.launches.values.contains { $0.launch.node == node } }
        guard !busy else { return nil }
        return await sanitize(entry, reporter: reporter)
    }

    public func logFiles(of job: JobID) -> (stdout: String, stderr: String)? {
        let out = logPath(job, stderr: false)
        let err = logPath(job, stderr: true)
        let manager = FileManager.default
        // Once the control plane sealed them, only `<file>.sealed` is left.
        guard [out, err, out + ".sealed", err + ".sealed"].contains(where: manager.fileExists(atPath:)) else {
            return nil
        }
        return (out, err)
    }

    public func reclaim(_ job: JobID, on node: NodeID) async -> Int {
        do {
            let leftovers = try await client.jobs().filter {
                ($0.name ?? "").hasPrefix(Self.jobNamePrefix(job)) && !Self.isFinal($0.job_state ?? "")
            }
            for leftover in leftovers { try await client.cancel(leftover.job_id) }
            return leftovers.count
        } catch {
            logger.error("cannot reclaim a job's Slurm leftovers", metadata: ["job": "\(job)", "error": "\(error)"])
            return 0
        }
    }

    /// Follows the Slurm job of a launch made before this control plane (re)started: the job of the launch's
    /// name that Slurm still knows, running or ended — its end is then reported as if it had been followed
    /// all along. Nothing is adopted when Slurm has no such job or cannot be asked.
    public func adopt(_ launch: JobLaunch, reporter: any JobReporter) async -> Bool {
        let name = Self.jobNamePrefix(launch.key.job) + String(launch.key.attempt)
        let found: SlurmJob?
        do {
            try await inherit()
            found = try await client.jobs().last { $0.name == name }
            if let found, found.isHeld {
                // Recorded as started, but the replica that started it stopped before releasing it.
                guard let node = state.withLock({ $0.served[launch.node] }) else { return false }
                try writePlacement(launch)
                try await client.release(found.job_id, nodelist: node.name, gres: Self.gres(launch.gpus))
            }
            if found != nil { _ = state.withLock { $0.inherited?.removeValue(forKey: launch.key) } }
        } catch {
            logger.error(
                "cannot ask Slurm for a job to adopt", metadata: ["job": "\(launch.key)", "error": "\(error)"])
            return false
        }
        guard let found else { return false }
        let taken = state.withLock { state -> Bool in
            guard state.launches[launch.key] == nil else { return false }
            state.launches[launch.key] = Tracked(launch: launch, reporter: reporter, slurmID: found.job_id)
            return true
        }
        if taken {
            logger.notice(
                "following a Slurm job launched before this control plane started",
                metadata: ["job": "\(launch.key)", "slurm": "\(found.job_id)", "state": "\(found.job_state ?? "?")"])
        }
        return taken
    }

    // MARK: Submitting

    static func jobNamePrefix(_ job: JobID) -> String { "caduceus-\(job.rawValue)-" }

    func logPath(_ job: JobID, stderr: Bool) -> String {
        settings.spool + "/logs/\(job.rawValue)/" + (stderr ? "stderr.log" : "stdout.log")
    }

    private func submit(_ key: LaunchKey) async {
        guard let (launch, reporter) = state.withLock({ state in state.launches[key].map { ($0.launch, $0.reporter) } })
        else { return }
        let (node, refusal) = state.withLock { ($0.served[launch.node], $0.refusals[launch.tenant]) }
        guard let node else {
            await end(key, succeeded: false, "did not start: node \(launch.node) is not a Slurm node Caduceus knows")
            return
        }
        if let refusal {
            await end(key, succeeded: false, "did not start: \(refusal)")
            return
        }
        guard await reporter.starting(launch) else {
            if let held = state.withLock({ $0.launches.removeValue(forKey: key)?.held }) { await withdraw(key, held) }
            return
        }
        await send(key, to: node)
    }

    /// Hands a started launch to Slurm. When slurmrestd cannot be reached the launch waits and is sent again
    /// from the poll loop; before sending again, a job of the same name already in Slurm (a submission whose
    /// answer was lost) is taken as this launch's, so that nothing runs twice.
    private func send(_ key: LaunchKey, to node: FleetNode) async {
        guard let launch = state.withLock({ $0.launches[key]?.launch }) else { return }
        guard state.withLock({ $0.launches[key]?.stop == nil }) else {
            await end(key, succeeded: false, "stopped before Slurm was asked to run it")
            return
        }
        let name = Self.jobNamePrefix(key.job) + String(key.attempt)
        do {
            try await inherit()
            let (resent, held) = state.withLock { state in
                let held =
                    state.launches[key]?.held
                    ?? state.inherited?.removeValue(forKey: key).map { id in
                        Task { Holding.held(id) }
                    }
                state.launches[key]?.held = nil
                return (state.launches[key]?.awaitingSlurm == true, held)
            }
            var holding = await held?.value
            if resent || holding == .uncertain {
                // A submission whose answer was lost may be in Slurm: held, or already released.
                let named = try await client.jobs().filter { $0.name == name }
                let earlier = named.first { !Self.isFinal($0.job_state ?? "") } ?? named.first
                holding = earlier.map { $0.isHeld ? .held($0.job_id) : .submitted($0.job_id) } ?? .refused
            }
            try writePlacement(launch)
            let id: Int
            switch holding {
            case .submitted(let earlier):
                id = earlier
            case .held(let waiting):
                id = try await releaseOrResubmit(waiting, launch, node: node)
            case .refused, .uncertain, nil:
                id = try await client.submit(
                    try makeSubmission(
                        launch.waitingRun, partition: try partition(of: node), on: node, gpus: launch.gpus))
            }
            let stopped = state.withLock { state -> Bool in
                state.launches[key]?.slurmID = id
                state.launches[key]?.awaitingSlurm = false
                return state.launches[key]?.stop != nil
            }
            logger.info("submitted to Slurm", metadata: ["job": "\(key)", "slurm": "\(id)", "node": "\(node.name)"])
            if stopped { try await client.cancel(id) }
        } catch let error as CaduceusError where error.code == "slurm.unavailable" {
            state.withLock { $0.launches[key]?.awaitingSlurm = true }
            logger.warning(
                "slurmrestd is unavailable; the job waits", metadata: ["job": "\(key)", "error": "\(error)"])
        } catch {
            await end(key, succeeded: false, "did not start: Slurm refused it: \(error)")
        }
    }

    // MARK: Following Slurm

    /// Slurm's final states; anything else is still on its way.
    static func isFinal(_ state: String) -> Bool {
        [
            "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED",
        ].contains(state)
    }

    private func poll() async {
        let waiting = state.withLock { state in
            state.launches.filter { $0.value.awaitingSlurm }.compactMap { key, tracked in
                state.served[tracked.launch.node].map { (key, $0) }
            }
        }
        for (key, node) in waiting { await send(key, to: node) }
        let submitted = state.withLock { $0.launches.compactMap { key, tracked in tracked.slurmID.map { (key, $0) } } }
        if !submitted.isEmpty {
            do {
                let jobs = try await followed(submitted.map { $0.1 })
                // Each job's end is recorded (and its logs sealed) on its own, so that a wave of jobs ending
                // together frees its GPUs together.
                await withTaskGroup(of: Void.self) { group in
                    for (key, id) in submitted { group.addTask { await self.follow(key, id, jobs[id]) } }
                }
            } catch {
                // Nothing is decided while slurmrestd is away: the jobs are followed again once it answers.
                logger.warning("cannot poll slurmrestd", metadata: ["error": "\(error)"])
            }
        }
        await collectScrubs()
    }

    /// The Slurm jobs with `ids` that slurmctld still knows. A few are asked for one by one: slurmrestd
    /// renders the whole job list (every job, held and recently ended ones too) in tens of milliseconds while
    /// slurmctld's job table stays locked against submissions, and the runner asks four times a second.
    private func followed(_ ids: [Int]) async throws -> [Int: SlurmJob] {
        guard ids.count <= Self.followedOneByOne else {
            return Dictionary(try await client.jobs().map { ($0.job_id, $0) }, uniquingKeysWith: { $1 })
        }
        return try await withThrowingTaskGroup(of: SlurmJob?.self) { group in
            for id in ids { group.addTask { try await self.client.job(id) } }
            var found: [Int: SlurmJob] = [:]
            for try await job in group { if let job { found[job.job_id] = job } }
            return found
        }
    }

    /// Up to this many followed jobs are asked for one by one.
    static let followedOneByOne = 32

    private func follow(_ key: LaunchKey, _ id: Int, _ job: SlurmJob?) async {
        guard let job else {
            let lost = state.withLock { state -> Bool in
                state.launches[key]?.missingPolls += 1
                return (state.launches[key]?.missingPolls ?? 0) >= settings.missingPollsBeforeLost
            }
            if lost { await end(key, succeeded: false, "Slurm lost it: job \(id) is no longer known to slurmctld") }
            return
        }
        state.withLock { $0.launches[key]?.missingPolls = 0 }
        let slurmState = job.job_state ?? "UNKNOWN"
        guard Self.isFinal(slurmState) else { return }
        let stop = state.withLock { $0.launches[key]?.stop }
        let reason = [job.state_reason, job.state_description].compactMap { $0 }.filter {
            !$0.isEmpty && $0 != "None"
        }
        let because = reason.isEmpty ? "" : " (\(reason.joined(separator: ": ")))"
        switch slurmState {
        case "COMPLETED":
            await end(key, succeeded: true, "exited with status 0 in Slurm job \(id)")
        case "CANCELLED" where stop != nil:
            await end(
                key, succeeded: false, "\(stop == .preempted ? "preempted" : "cancelled"): Slurm job \(id) cancelled")
        case "FAILED":
            await end(
                key, succeeded: false,
                "exited with status \(Self.exitStatus(job.exit_code)) in Slurm job \(id)\(because)")
        default:
            await end(key, succeeded: false, "Slurm ended job \(id) as \(slurmState)\(because)")
        }
    }

    /// Slurm reports the wait status; the program's exit status is its high byte.
    static func exitStatus(_ code: Int?) -> Int {
        guard let code else { return -1 }
        return code > 255 ? code >> 8 : code
    }

    private func end(_ key: LaunchKey, succeeded: Bool, _ description: String) async {
        guard
            let tracked = state.withLock({ state in
                state.launches.removeValue(forKey: key).map { tracked in
                    state.ending.insert(key)
                    return tracked
                }
            })
        else { return }
        defer { _ = state.withLock { $0.ending.remove(key) } }
        try? FileManager.default.removeItem(atPath: placementPath(key))
        if let held = tracked.held { await withdraw(key, held) }
        let bytes = [false, true].reduce(0) { total, stderr in
            let size = (try? FileManager.default.attributesOfItem(atPath: logPath(key.job, stderr: stderr))[.size])
            return total + ((size as? Int) ?? 0)
        }
        try? FileManager.default.removeItem(atPath: settings.spool + "/scratch/\(key.job.rawValue)")
        await tracked.reporter.ended(
            tracked.launch,
            JobOutcome(
                succeeded: succeeded, description: description, outputBytes: bytes, logsTruncated: false,
                leftoversKilled: 0))
    }

    // MARK: Nodes, partitions and health

    /// Matches Caduceus's nodes to Slurm's by name and checks each tenant's partition.
    func refresh() async {
        do {
            let release = try await client.ping()
            let slurmNodes = Set(try await client.nodes().map(\.name))
            let partitions = try await client.partitions()
            let fleetNodes = try await fleet()
            let served = fleetNodes.filter { slurmNodes.contains($0.name) }
            let refusals = Self.partitionRefusals(
                served: served, allFleet: fleetNodes, partitions: partitions, partitionFor: partition(for:))
            let reporter = state.withLock { state -> (any JobReporter)? in
                let before = state.served
                state.served = Dictionary(served.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
                state.refusals = refusals
                let names = Dictionary(served.compactMap { n in n.tenant.map { ($0, n.tenantName ?? "") } }) { $1 }
                state.health = Health(
                    reachable: true, release: release, problem: nil, nodes: served.map(\.name).sorted(),
                    refusedTenants: Dictionary(refusals.map { (names[$0.key] ?? $0.key.rawValue, $0.value) }) { $1 })
                return before == state.served ? nil : state.reporter
            }
            // Nodes Slurm now serves (or no longer serves): the control plane reconciles their work.
            reporter?.changed()
        } catch {
            logger.warning("cannot refresh the Slurm cluster's view", metadata: ["error": "\(error)"])
            state.withLock { state in
                state.health.reachable = false
                state.health.problem = "\(error)"
            }
        }
    }

    /// Why each tenant's jobs must not run: its partition is missing, or holds a node the tenant does not.
    static func partitionRefusals(
        served: [FleetNode], allFleet: [FleetNode], partitions: [SlurmPartition],
        partitionFor: (String) -> String
    ) -> [TenantID: String] {
        var refusals: [TenantID: String] = [:]
        let byName = Dictionary(allFleet.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        var tenants: [TenantID: String] = [:]
        for node in served { if let tenant = node.tenant { tenants[tenant] = node.tenantName ?? tenant.rawValue } }
        for (tenant, name) in tenants {
            let wanted = partitionFor(name)
            guard let partition = partitions.first(where: { $0.name == wanted }) else {
                refusals[tenant] = "Slurm has no partition \(wanted) for tenant \(name)"
                continue
            }
            for nodeName in partition.nodes where byName[nodeName]?.tenant != tenant {
                let holder = byName[nodeName]?.tenantName.map { "tenant \($0)" } ?? "no tenant of Caduceus"
                refusals[tenant] =
                    "Slurm partition \(wanted) holds node \(nodeName) of \(holder): a tenant's partition must "
                    + "hold only its own nodes"
                break
            }
        }
        return refusals
    }
}
