import AuditLog
import CaduceusCore
import Logging
import Scheduling
import Synchronization

/// Holds the one `Scheduler` of the control plane and keeps it and the fleet store in step.
///
/// Every change that involves the scheduler runs through `update`: one at a time, on a working copy of the
/// scheduler and inside one store transaction. The copy replaces the live scheduler only when the
/// transaction (and the audit events appended in it) committed, so a failed change leaves both untouched.
/// The scheduler is rebuilt from the store on first use: nodes, quotas, waiting jobs, and jobs holding GPUs
/// exactly where they were.
public final class SchedulingService: Sendable {
    let store: any FleetStore
    let audit: AuditRecorder
    let clock: any WallClock
    let logger: Logger
    private let lock = AsyncLock()
    private let live = Mutex<Scheduler?>(nil)
    private let onCommit = Mutex<(@Sendable () -> Void)?>(nil)

    /// The actor of the audit events the scheduler's own decisions write.
    static let actor = (id: "scheduler", type: "system")

    init(store: any FleetStore, audit: AuditRecorder, clock: any WallClock, logger: Logger) {
        self.store = store
        self.audit = audit
        self.clock = clock
        self.logger = logger
    }

    /// Runs `body` with the scheduler and a store transaction, alone; keeps the scheduler's changes only if
    /// the transaction commits.
    func update<T: Sendable>(
        _ body: @escaping @Sendable (inout Scheduler, any FleetStore) async throws -> T
    ) async throws -> T {
        try await lock.withLock {
            let current = try await loaded()
            let (result, next) = try await store.transaction { tx in
                var working = current
                let result = try await body(&working, tx)
                return (result, working)
            }
            live.withLock { $0 = next }
            onCommit.withLock { $0 }?()
            return result
        }
    }

    /// Calls `action` after every committed change (the execution service reconciles then).
    func whenCommitted(_ action: @escaping @Sendable () -> Void) {
        onCommit.withLock { $0 = action }
    }

    /// The scheduler as of the last committed change.
    func snapshot() async throws -> Scheduler {
        if let scheduler = live.withLock({ $0 }) { return scheduler }
        return try await lock.withLock { try await loaded() }
    }

    /// One scheduling pass: places, preempts and requeues, persisting and auditing each decision that
    /// changes a job. `request` is the request that prompted it, for tracing.
    @discardableResult
    func pass(after request: RequestID? = nil) async throws -> [Decision] {
        try await update { [self] scheduler, tx in
            let now = clock.now()
            let decisions = scheduler.schedule(at: now)
            for decision in decisions {
                try await apply(decision, scheduler: &scheduler, tx, at: now, request: request)
            }
            return decisions
        }
    }

    /// Builds the scheduler from the store if it is not built yet. Call with the lock held.
    private func loaded() async throws -> Scheduler {
        if let scheduler = live.withLock({ $0 }) { return scheduler }
        var scheduler = Scheduler()
        for (node, residency) in try await store.activeNodes() {
            try scheduler.upsert(Self.info(node, residency: residency))
        }
        for quota in try await store.allQuotas() {
            scheduler.setQuota(quota.quota, tenant: quota.tenant, project: quota.project)
        }
        for job in try await store.unfinishedJobs() {
            if job.state.holdsGPUs {
                try scheduler.restore(job.queued, on: job.assignments, since: job.startedAt ?? job.submittedAt)
            } else {
                try scheduler.submit(job.queued)
            }
        }
        logger.info(
            "scheduler restored",
            metadata: ["queued": "\(scheduler.queuedCount)", "running": "\(scheduler.runningCount)"])
        live.withLock { $0 = scheduler }
        return scheduler
    }

    /// The scheduler's view of a node.
    static func info(_ node: NodeRecord, residency: Residency) -> NodeInfo {
        NodeInfo(
            id: node.id, tenant: node.lifecycle.tenant, residency: residency, site: node.site, fabric: node.fabric,
            gpuModel: node.gpuModel, gpuCount: node.gpus.count, schedulable: node.schedulable)
    }

    /// Tells the scheduler about a node's current record (removing it when retired).
    static func sync(_ node: NodeRecord, in tx: any FleetStore, into scheduler: inout Scheduler) async throws {
        if node.lifecycle.state == .retired {
            try scheduler.remove(node: node.id)
            return
        }
        guard let site = try await tx.site(id: node.site), let region = try await tx.region(id: site.region) else {
            throw CaduceusError(code: "store.corrupt", message: "node \(node.id) lies in no known region")
        }
        try scheduler.upsert(info(node, residency: region.residency))
    }

    /// Appends an audit event for something the scheduler did.
    func record(
        _ action: String, job: JobRecord, request: RequestID?, outcome: AuditEvent.Outcome = .success
    ) async throws {
        try await audit.record(
            RequestInfo(requestID: request ?? .generate()),
            AuditRecorder.Subject(
                action: action, resourceType: "job", resourceID: job.id.rawValue, tenant: job.spec.tenant),
            outcome: outcome, actorOverride: Self.actor)
    }
}
