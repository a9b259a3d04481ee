import CaduceusCore

extension Scheduler {
    /// Why a job could never run as specified, or nil when it could (on the tenant's nodes as they are, in
    /// whatever state, and within its project's maximum). Jobs that fail this are refused at submission.
    public func infeasibility(of job: QueuedJob) -> Infeasibility? {
        guard let tenant = tenantIndex[job.tenant], !tenants[Int(tenant)].nodes.isEmpty else {
            return .tenantHasNoNodes(job.tenant)
        }
        let owned = tenants[Int(tenant)].nodes.map { nodes[Int($0)] }
        let allowed = Set(job.allowedModels)
        let byModel = owned.filter { allowed.isEmpty || allowed.contains(interned.modelNames[Int($0.model)]) }
        if byModel.isEmpty {
            let has = Set(owned.map { interned.modelNames[Int($0.model)] }).sorted()
            return .noAllowedModel(allowed: job.allowedModels.sorted(), tenantHas: has)
        }
        let matching = byModel.filter { node in
            job.residency.map { interned.residencyNames[Int(interned.fabricResidency[Int(node.fabric)])] == $0 }
                ?? true
        }
        if let residency = job.residency, matching.isEmpty {
            let has = Set(byModel.map { interned.residencyNames[Int(interned.fabricResidency[Int($0.fabric)])] })
            return .residencyUnavailable(residency, tenantHas: has.sorted())
        }
        let largeEnough = matching.filter { $0.gpuCount >= job.gpusPerNode }.count
        if largeEnough < job.nodeCount {
            return .tooFewNodes(
                gpusPerNode: job.gpusPerNode, nodeCount: job.nodeCount, matchingNodes: largeEnough,
                largestNode: matching.map(\.gpuCount).max() ?? 0)
        }
        let quota = usage(tenant: job.tenant, project: job.project).quota
        if job.totalGPUs > quota.maximumGPUs {
            return .overProjectMaximum(project: job.project, requested: job.totalGPUs, maximum: quota.maximumGPUs)
        }
        return nil
    }

    /// GPUs on nodes that take work, and how many of them are held.
    public var gpuTotals: (schedulable: Int, allocated: Int) {
        var schedulable = 0
        var allocated = 0
        for pool in pools {
            schedulable += pool.totalGPUs
            allocated += pool.totalGPUs - pool.freeGPUs
        }
        return (schedulable, allocated)
    }

    /// The share of free GPUs that sit on partly used nodes (0 when every free GPU is on an empty node):
    /// free GPUs that a whole-node gang cannot use.
    public var fragmentation: Double {
        var free = 0
        var onEmptyNodes = 0
        for pool in pools {
            free += pool.freeGPUs
            onEmptyNodes += pool.freeOnEmptyNodes
        }
        return free == 0 ? 0 : Double(free - onEmptyNodes) / Double(free)
    }
}
