import CaduceusCore

/// The jobs to preempt for a job, and the nodes it then gets.
struct PreemptionPlan {
    var victims: [Int32]
    var nodes: [Int32]
}

extension Scheduler {
    /// The cheapest preemption that makes room for a job: whole jobs only, the fewest of them, then the
    /// fewest GPUs lost. Victims are of the same tenant, preemptible and past their minimum run time, and
    /// either of a lower class or (when the job reclaims its project's guarantee) borrowing in another
    /// project and not of a higher class.
    mutating func preemptionPlan(for slot: Int32, reclaim: Bool, at now: Timestamp) -> PreemptionPlan? {
        let job = jobs[Int(slot)]
        let need = job.job.gpusPerNode
        let count = job.job.nodeCount
        var options: [NodeOption] = []
        var best: NodeOption?
        var scratch: [(slot: Int32, gpus: Int)] = []
        func consider(_ node: Int32) {
            guard let option = nodeOption(node, for: job, reclaim: reclaim, at: now, scratch: &scratch) else { return }
            if count == 1 {
                if best == nil || option.isBetter(than: best!) { best = option }
            } else {
                options.append(option)
            }
        }
        switch policy.search {
        case .indexed:
            scan: for pool in candidatePools(job) where need <= pools[Int(pool)].largestNode {
                let sizes = count == 1 ? 0..<need : 0..<(pools[Int(pool)].largestNode + 1)
                for bucket in pools[Int(pool)].buckets[sizes] {
                    for node in bucket {
                        consider(node)
                        if let best, best.victims.count == 1, best.waste == 0 { break scan }
                    }
                }
            }
        case .firstFitScan:
            for index in nodes.indices {
                let node = nodes[index]
                guard node.tenant == job.tenant, node.schedulable, !node.removed, node.gpuCount >= need,
                    interned.allows(job.models, model: node.model),
                    job.residency < 0 || interned.fabricResidency[Int(node.fabric)] == job.residency
                else { continue }
                consider(Int32(index))
            }
        }
        if count == 1 {
            guard let best, !best.victims.isEmpty else { return nil }
            return PreemptionPlan(victims: best.victims, nodes: [best.node])
        }
        guard options.count >= count else { return nil }
        options.sort { $0.isBetter(than: $1) }
        let chosen = options.prefix(count)
        let victims = Set(chosen.flatMap(\.victims)).sorted()
        guard !victims.isEmpty else { return nil }
        return PreemptionPlan(victims: victims, nodes: chosen.map(\.node))
    }

    /// What it takes to free `gpusPerNode` GPUs on one node, or nil when its eligible jobs cannot.
    private func nodeOption(
        _ node: Int32, for job: JobSlot, reclaim: Bool, at now: Timestamp, scratch: inout [(slot: Int32, gpus: Int)]
    ) -> NodeOption? {
        let free = nodes[Int(node)].freeGPUs
        let need = job.job.gpusPerNode
        if free >= need { return NodeOption(node: node, victims: [], waste: 0) }
        scratch.removeAll(keepingCapacity: true)
        var available = free
        for victim in nodes[Int(node)].allocations where isEligibleVictim(victim, for: job, reclaim: reclaim, at: now) {
            let gpusHere = jobs[Int(victim)].parts.first { $0.node == node }.map { $0.mask.nonzeroBitCount } ?? 0
            scratch.append((victim, gpusHere))
            available += gpusHere
        }
        guard available >= need else { return nil }
        scratch.sort { a, b in
            if a.gpus != b.gpus { return a.gpus > b.gpus }
            let x = jobs[Int(a.slot)]
            let y = jobs[Int(b.slot)]
            if x.job.jobClass != y.job.jobClass { return x.job.jobClass < y.job.jobClass }
            if x.startedAt != y.startedAt { return x.startedAt > y.startedAt }
            return x.job.id < y.job.id
        }
        var victims: [Int32] = []
        var freed = free
        var lost = 0
        for candidate in scratch where freed < need {
            victims.append(candidate.slot)
            freed += candidate.gpus
            lost += jobs[Int(candidate.slot)].job.totalGPUs
        }
        return NodeOption(node: node, victims: victims, waste: lost - (need - free))
    }

    private func isEligibleVictim(_ victim: Int32, for job: JobSlot, reclaim: Bool, at now: Timestamp) -> Bool {
        let other = jobs[Int(victim)]
        guard other.job.preemptible, other.tenant == job.tenant,
            now.millisecondsSinceEpoch >= other.startedAt.millisecondsSinceEpoch + other.job.minRuntimeMilliseconds
        else { return false }
        if other.job.jobClass < job.job.jobClass { return true }
        guard reclaim, other.project != job.project, other.job.jobClass <= job.job.jobClass else { return false }
        let owner = projects[Int(other.project)]
        return owner.inUse > owner.quota.guaranteedGPUs
    }
}

/// One node's price of making room: which jobs to preempt there and how many GPUs beyond the need they free.
struct NodeOption {
    var node: Int32
    var victims: [Int32]
    var waste: Int

    func isBetter(than other: NodeOption) -> Bool {
        if victims.count != other.victims.count { return victims.count < other.victims.count }
        if waste != other.waste { return waste < other.waste }
        return node < other.node
    }
}
