import CaduceusCore

/// The scheduler: a pure, deterministic value that holds the cluster (nodes, running jobs, quotas) and the
/// queue, and decides where and when jobs run.
///
/// Nothing in it reads a clock, a file or a random source: the same calls in the same order give the same
/// decisions. Callers feed it node changes, submissions and job endings, call `schedule(at:)`, and act on the
/// decisions (persist, audit, start work).
public struct Scheduler: Sendable {
    /// Its settings.
    public let policy: SchedulingPolicy

    var nodes: [NodeSlot] = []
    var nodeIndex: [NodeID: Int32] = [:]
    var pools: [Pool] = []
    var poolIndex: [PoolKey: Int32] = [:]
    var tenants: [TenantSlot] = []
    var tenantIndex: [TenantID: Int32] = [:]
    var projects: [ProjectSlot] = []
    var projectIndex: [ProjectKey: Int32] = [:]
    var jobs: [JobSlot] = []
    var jobIndex: [JobID: Int32] = [:]
    var freeJobSlots: [Int32] = []
    var retiredSlots: [Int32] = []
    var interned = Interner()
    /// Jobs holding GPUs on each node, in a region per node (see `NodeSlot.allocationBase`): one flat table so
    /// that a search across thousands of nodes reads contiguous memory and touches no reference counts.
    var allocationTable: [NodeAllocation] = []
    var candidateCache: [CandidateKey: [Int32]] = [:]
    /// Bumped whenever GPUs are released: failures remembered in a pass are stale after it.
    var releaseEpoch = 0
    /// Bumped whenever GPUs are taken or released.
    var changeEpoch = 0

    /// An empty cluster with no queue.
    public init(policy: SchedulingPolicy = SchedulingPolicy()) {
        self.policy = policy
    }

    // MARK: Nodes

    /// Adds a node or updates one. A node that holds work may change only whether it takes new work.
    public mutating func upsert(_ info: NodeInfo) throws(CaduceusError) {
        guard (1...64).contains(info.gpuCount) else {
            throw CaduceusError(code: "node.invalid", message: "node \(info.id): a node has 1 to 64 GPUs")
        }
        let fabric = interned.fabric(info.fabric, site: info.site, residency: info.residency)
        let model = interned.model(info.gpuModel)
        let tenant = info.tenant.map { tenantSlot($0) } ?? -1
        if let index = nodeIndex[info.id] {
            let old = nodes[Int(index)]
            if old.allocationCount > 0
                && (old.tenant != tenant || old.model != model || old.fabric != fabric || old.gpuCount != info.gpuCount)
            {
                throw CaduceusError(
                    code: "node.busy", message: "node \(info.id) holds work; only its availability may change")
            }
            detachFromPool(index)
            removeFromTenant(index)
            nodes[Int(index)].tenant = tenant
            nodes[Int(index)].model = model
            nodes[Int(index)].fabric = fabric
            nodes[Int(index)].schedulable = info.schedulable
            if old.gpuCount != info.gpuCount {
                nodes[Int(index)].gpuCount = info.gpuCount
                nodes[Int(index)].freeMask = NodeSlot.fullMask(info.gpuCount)
                nodes[Int(index)].allocationBase = reserveAllocations(info.gpuCount)
            }
            addToTenant(index)
            attachToPool(index)
        } else {
            let index = Int32(nodes.count)
            var slot = NodeSlot(
                id: info.id, tenant: tenant, model: model, fabric: fabric, gpuCount: info.gpuCount,
                schedulable: info.schedulable)
            slot.allocationBase = reserveAllocations(info.gpuCount)
            nodes.append(slot)
            nodeIndex[info.id] = index
            addToTenant(index)
            attachToPool(index)
        }
        releaseEpoch += 1
        changeEpoch += 1
    }

    /// Removes a node that holds no work.
    public mutating func remove(node id: NodeID) throws(CaduceusError) {
        guard let index = nodeIndex[id] else { return }
        guard nodes[Int(index)].allocationCount == 0 else {
            throw CaduceusError(code: "node.busy", message: "node \(id) holds work")
        }
        detachFromPool(index)
        removeFromTenant(index)
        nodes[Int(index)].removed = true
        nodes[Int(index)].tenant = -1
        nodeIndex[id] = nil
    }

    /// The jobs holding GPUs on a node, in a stable order.
    public func jobs(on node: NodeID) -> [JobID] {
        guard let index = nodeIndex[node] else { return [] }
        return allocations(of: index).map { jobs[Int($0.slot)].job.id }.sorted()
    }

    // MARK: Quotas

    /// Sets a project's quota (a project without one has no guarantee and no limit).
    public mutating func setQuota(_ quota: ProjectQuota, tenant: TenantID, project: ProjectID) {
        let index = projectSlot(tenant: tenant, project: project)
        projects[Int(index)].quota = quota
    }

    /// A project's quota and the GPUs it holds now.
    public func usage(tenant: TenantID, project: ProjectID) -> (quota: ProjectQuota, inUse: Int) {
        guard let index = projectIndex[ProjectKey(tenant: tenant, project: project)] else { return (.unlimited, 0) }
        return (projects[Int(index)].quota, projects[Int(index)].inUse)
    }

    // MARK: Jobs

    /// Queues a job. Throws if a job of that ID is known already.
    public mutating func submit(_ job: QueuedJob) throws(CaduceusError) {
        guard jobIndex[job.id] == nil else {
            throw CaduceusError(code: "job.duplicate", message: "job \(job.id) is already known to the scheduler")
        }
        let slot = makeJobSlot(job)
        enqueue(slot)
    }

    /// Restores a job that holds GPUs (after a restart), exactly where it was.
    public mutating func restore(
        _ job: QueuedJob, on assignments: [GPUAssignment], since startedAt: Timestamp
    ) throws(CaduceusError) {
        guard jobIndex[job.id] == nil else {
            throw CaduceusError(code: "job.duplicate", message: "job \(job.id) is already known to the scheduler")
        }
        var parts: [(Int32, UInt64)] = []
        for assignment in assignments {
            guard let node = nodeIndex[assignment.node], nodes[Int(node)].tenant == tenantIndex[job.tenant] else {
                throw CaduceusError(
                    code: "job.restore", message: "job \(job.id): node \(assignment.node) is not its tenant's")
            }
            var mask: UInt64 = 0
            for gpu in assignment.gpus {
                guard (0..<nodes[Int(node)].gpuCount).contains(gpu) else {
                    throw CaduceusError(
                        code: "job.restore", message: "job \(job.id): no GPU \(gpu) on \(assignment.node)")
                }
                mask |= 1 << UInt64(gpu)
            }
            guard nodes[Int(node)].freeMask & mask == mask else {
                throw CaduceusError(
                    code: "job.restore", message: "job \(job.id): GPUs on \(assignment.node) are held by another job")
            }
            parts.append((node, mask))
        }
        let slot = makeJobSlot(job)
        allocate(slot, parts: parts, at: startedAt)
    }

    /// Removes a job: from the queue if it waits, releasing its GPUs if it holds some. Returns whether the
    /// scheduler knew it.
    @discardableResult
    public mutating func remove(job id: JobID, at now: Timestamp) -> Bool {
        guard let slot = jobIndex[id] else { return false }
        jobIndex[id] = nil
        jobs[Int(slot)].live = false
        if jobs[Int(slot)].isRunning {
            release(slot, at: now)
            freeJobSlots.append(slot)
        } else {
            // Still referenced from its project's queue until the next pass compacts it.
            let project = Int(jobs[Int(slot)].project)
            projects[project].queuedGPUs -= jobs[Int(slot)].job.totalGPUs
            retiredSlots.append(slot)
        }
        return true
    }

    /// Moves every job off a node (a drain, or a change of tenant): training goes back to the queue, other work
    /// ends. Returns the jobs in a stable order, as preemption victims.
    public mutating func evict(node id: NodeID, at now: Timestamp) -> [Victim] {
        guard let index = nodeIndex[id] else { return [] }
        let slots = allocations(of: index).map(\.slot).sorted { jobs[Int($0)].job.id < jobs[Int($1)].job.id }
        var victims: [Victim] = []
        for slot in slots {
            let requeue = jobs[Int(slot)].job.jobClass == .training
            victims.append(Victim(job: jobs[Int(slot)].job.id, requeued: requeue))
            release(slot, at: now)
            if requeue {
                jobs[Int(slot)].reason = nil
                enqueue(slot)
            } else {
                jobIndex[jobs[Int(slot)].job.id] = nil
                jobs[Int(slot)].live = false
                freeJobSlots.append(slot)
            }
        }
        return victims
    }

    /// The structured reason a queued job waits, from the last pass that considered it.
    public func pendingReason(_ id: JobID) -> PendingReason? {
        guard let slot = jobIndex[id], !jobs[Int(slot)].isRunning else { return nil }
        return jobs[Int(slot)].reason
    }

    /// The GPUs a job holds, if it holds any.
    public func assignments(of id: JobID) -> [GPUAssignment]? {
        guard let slot = jobIndex[id], jobs[Int(slot)].isRunning else { return nil }
        return assignments(jobs[Int(slot)].parts)
    }

    /// Whether the job waits in the queue.
    public func isQueued(_ id: JobID) -> Bool {
        guard let slot = jobIndex[id] else { return false }
        return !jobs[Int(slot)].isRunning
    }

    /// How many jobs wait.
    public var queuedCount: Int { jobIndex.count - runningCount }

    /// How many jobs hold GPUs.
    public internal(set) var runningCount = 0

    func assignments(_ parts: [(node: Int32, mask: UInt64)]) -> [GPUAssignment] {
        parts.map { part in
            var gpus: [Int] = []
            var mask = part.mask
            while mask != 0 {
                gpus.append(mask.trailingZeroBitCount)
                mask &= mask - 1
            }
            return GPUAssignment(node: nodes[Int(part.node)].id, gpus: gpus)
        }
    }

    // MARK: Slots

    mutating func tenantSlot(_ tenant: TenantID) -> Int32 {
        if let index = tenantIndex[tenant] { return index }
        let index = Int32(tenants.count)
        tenants.append(TenantSlot(id: tenant))
        tenantIndex[tenant] = index
        return index
    }

    mutating func projectSlot(tenant: TenantID, project: ProjectID) -> Int32 {
        let key = ProjectKey(tenant: tenant, project: project)
        if let index = projectIndex[key] { return index }
        let index = Int32(projects.count)
        let owner = tenantSlot(tenant)
        projects.append(ProjectSlot(tenant: owner, id: project))
        projectIndex[key] = index
        tenants[Int(owner)].projects.append(index)
        return index
    }

    private mutating func makeJobSlot(_ job: QueuedJob) -> Int32 {
        let project = projectSlot(tenant: job.tenant, project: job.project)
        let entry = JobSlot(
            job: job, tenant: projects[Int(project)].tenant, project: project,
            models: interned.modelSet(job.allowedModels), residency: job.residency.map { interned.residency($0) } ?? -1)
        let slot: Int32
        if let reused = freeJobSlots.popLast() {
            slot = reused
            jobs[Int(slot)] = entry
        } else {
            slot = Int32(jobs.count)
            jobs.append(entry)
        }
        jobIndex[job.id] = slot
        return slot
    }

    /// Puts a job in its project's queue for its class, in submission order.
    mutating func enqueue(_ slot: Int32) {
        let job = jobs[Int(slot)]
        let project = Int(job.project)
        let rank = job.job.jobClass.priority
        var queue = projects[project].queues[rank]
        projects[project].queues[rank] = []
        let key = (job.job.submittedAt, job.job.id)
        if let last = queue.last, (jobs[Int(last)].job.submittedAt, jobs[Int(last)].job.id) > key {
            var low = queue.startIndex
            var high = queue.endIndex
            while low < high {
                let mid = (low + high) / 2
                let other = jobs[Int(queue[mid])].job
                if (other.submittedAt, other.id) < key { low = mid + 1 } else { high = mid }
            }
            queue.insert(slot, at: low)
        } else {
            queue.append(slot)
        }
        projects[project].queues[rank] = queue
        projects[project].queuedGPUs += job.job.totalGPUs
    }
}
