import CaduceusCore

/// The GPUs of this node as the agent keeps them: which may be offered to work, which a job holds, and
/// which wait for a scrub; it scrubs them after every job and on every tenant change.
///
/// A GPU goes back to the pool only after a scrub of it passes. A failed scrub cordons the node: nothing is
/// offered until a later `sanitize` passes on every GPU, and the outcome carries an alert for the control
/// plane to raise (and to cordon the node in its own records). GPUs start out waiting for a scrub, since
/// nothing is known of what they held before the agent started.
public actor NodeGPUs {
    /// The node.
    public nonisolated let node: NodeID
    /// What discovery found last.
    public private(set) var inventory: GPUInventory
    /// Why the node is cordoned, if a scrub failed.
    public private(set) var cordon: GPUAlert?

    private var states: [String: GPUState] = [:]
    private var lastScrubs: [String: GPUScrubRecord] = [:]
    private let discoverGPUs: @Sendable () -> GPUInventory
    private let scrubGPUs: @Sendable ([GPUInfo], GPUScrubReason, JobID?) async -> [GPUScrubRecord]
    private let clock: any WallClock

    /// Discovers the GPUs of `backend`; every GPU found waits for a first scrub.
    public init<Backend: GPUBackend>(
        node: NodeID, backend: Backend, options: GPUScrubOptions = GPUScrubOptions(),
        clock: any WallClock = SystemWallClock()
    ) {
        let scrubber = GPUScrubber(backend: backend, options: options, clock: clock)
        self.node = node
        self.clock = clock
        self.discoverGPUs = { backend.discover() }
        self.scrubGPUs = { gpus, reason, job in await scrubber.scrub(gpus, node: node, reason: reason, job: job) }
        self.inventory = backend.discover()
        for gpu in inventory.gpus { states[gpu.uuid] = .awaitingScrub }
    }

    /// Discovers the GPUs again; a GPU not seen before waits for a scrub, one that vanished is forgotten.
    @discardableResult
    public func refresh() -> GPUInventory {
        inventory = discoverGPUs()
        var next: [String: GPUState] = [:]
        for gpu in inventory.gpus { next[gpu.uuid] = states[gpu.uuid] ?? .awaitingScrub }
        states = next
        return inventory
    }

    /// The GPUs that may be given to a job now: allowed by their modes, clean, and the node not cordoned.
    public func offerable() -> [GPUInfo] {
        guard cordon == nil else { return [] }
        return inventory.gpus.filter { $0.isOfferable && states[$0.uuid] == .clean }
    }

    /// Every GPU with its state and last scrub.
    public func status() -> [GPUStatus] {
        inventory.gpus.map {
            GPUStatus(
                gpu: $0, state: states[$0.uuid] ?? .awaitingScrub, lastScrub: lastScrubs[$0.uuid],
                offerable: cordon == nil && $0.isOfferable && states[$0.uuid] == .clean)
        }
    }

    /// Gives the GPUs with `uuids` to `job`; refuses, changing nothing, unless every one is offerable.
    public func claim(_ uuids: [String], for job: JobID) throws(CaduceusError) {
        let free = Set(offerable().map(\.uuid))
        for uuid in uuids where !free.contains(uuid) {
            let why =
                cordon.map { "the node is cordoned: \($0.message)" }
                ?? inventory.gpus.first { $0.uuid == uuid }.map { gpu in
                    gpu.refusal ?? "it is \(states[uuid]?.description ?? "unknown")"
                } ?? "no such GPU on this node"
            throw CaduceusError(code: "gpu.unavailable", message: "GPU \(uuid) cannot be given to \(job): \(why)")
        }
        for uuid in uuids { states[uuid] = .inUse(job) }
    }

    /// Scrubs the GPUs `job` held, now that it has ended; each returns to the pool if its scrub passes.
    public func jobEnded(_ job: JobID) async -> GPUScrubOutcome {
        let held = inventory.gpus.filter { states[$0.uuid] == .inUse(job) }
        return await scrub(held, reason: .jobEnded, job: job)
    }

    /// Scrubs every GPU of the node (on a tenant change, at start-up, or to retry after a failure); refuses
    /// while a job holds a GPU or a scrub runs. A pass on every GPU lifts a cordon.
    public func sanitize(reason: GPUScrubReason) async throws(CaduceusError) -> GPUScrubOutcome {
        for gpu in inventory.gpus {
            switch states[gpu.uuid] {
            case .inUse(let job):
                throw CaduceusError(
                    code: "gpu.busy", message: "GPU \(gpu.uuid) is held by \(job); drain the node first")
            case .scrubbing:
                throw CaduceusError(code: "gpu.busy", message: "GPU \(gpu.uuid) is being scrubbed already")
            default:
                continue
            }
        }
        let outcome = await scrub(inventory.gpus, reason: reason, job: nil)
        if outcome.alert == nil { cordon = nil }
        return outcome
    }

    private func scrub(_ gpus: [GPUInfo], reason: GPUScrubReason, job: JobID?) async -> GPUScrubOutcome {
        guard !gpus.isEmpty else { return GPUScrubOutcome(records: [], alert: nil) }
        for gpu in gpus { states[gpu.uuid] = .scrubbing }
        let records = await scrubGPUs(gpus, reason, job)
        for record in records {
            lastScrubs[record.gpuUUID] = record
            if states[record.gpuUUID] != nil {
                states[record.gpuUUID] = record.failure.map { .failed($0) } ?? .clean
            }
        }
        let failed = records.filter { !$0.passed }
        guard !failed.isEmpty else { return GPUScrubOutcome(records: records, alert: nil) }
        let alert = GPUAlert(
            node: node, gpuUUIDs: failed.map(\.gpuUUID), raisedAt: clock.now(),
            message: "GPU memory scrub failed on \(failed.count) of \(records.count) GPU(s); node cordoned: "
                + failed.compactMap { $0.failure?.message }.joined(separator: "; "))
        cordon = alert
        return GPUScrubOutcome(records: records, alert: alert)
    }
}

/// Where a GPU stands on its node.
public enum GPUState: Hashable, Sendable, CustomStringConvertible {
    /// Scrubbed; may be given to work.
    case clean
    /// Held by a job.
    case inUse(JobID)
    /// Its memory is being scrubbed.
    case scrubbing
    /// Not scrubbed since the agent started.
    case awaitingScrub
    /// Its last scrub failed; it stays out of the pool until a scrub passes.
    case failed(GPUScrubFailure)

    public var description: String {
        switch self {
        case .clean: "clean"
        case .inUse(let job): "in use by \(job)"
        case .scrubbing: "being scrubbed"
        case .awaitingScrub: "waiting for a scrub"
        case .failed(let failure): "failed its last scrub (\(failure.code))"
        }
    }
}

/// A GPU, its state and its last scrub, as `caduceus node show` lists them.
public struct GPUStatus: Hashable, Sendable {
    /// The GPU.
    public var gpu: GPUInfo
    /// Where it stands.
    public var state: GPUState
    /// Its last scrub, if any since the agent started.
    public var lastScrub: GPUScrubRecord?
    /// Whether it may be given to work now.
    public var offerable: Bool
}

/// What a round of scrubbing produced: one record per GPU, and an alert when any failed.
public struct GPUScrubOutcome: Hashable, Sendable {
    /// One record per GPU scrubbed, for the audit trail.
    public var records: [GPUScrubRecord]
    /// Set when a scrub failed: the node must be cordoned and the alert raised.
    public var alert: GPUAlert?

    /// Whether the GPUs went back to the pool.
    public var returnsToPool: Bool { alert == nil }
}

/// A failed scrub, for the operators: the node is cordoned until a scrub passes.
public struct GPUAlert: Hashable, Sendable, Codable {
    /// The node, now cordoned.
    public var node: NodeID
    /// The GPUs whose scrub failed.
    public var gpuUUIDs: [String]
    /// When the failure was found.
    public var raisedAt: Timestamp
    /// What failed, for people.
    public var message: String
    /// A stable code for the alert.
    public var code: String { "gpu.scrub.failed" }
}
