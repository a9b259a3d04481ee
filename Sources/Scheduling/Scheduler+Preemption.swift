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
        var scratch: [VictimCandidate] = []
        func consider(_ node: Int32) {
            let bound = count == 1 ? best : nil
            guard
                let option = nodeOption(
                    node, for: job, reclaim: reclaim, at: now, scratch: &scratch, notWorseThan: bound)
            else { return }
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
        _ node: Int32, for job: JobSlot, reclaim: Bool, at now: Timestamp, scratch: inout [VictimCandidate],
        notWorseThan bound: NodeOption?
    ) -> NodeOption? {
        let free = nodes[Int(node)].freeGPUs
        let need = job.job.gpusPerNode
        if free >= need { return NodeOption(node: node, victims: [], waste: 0) }
        scratch.removeAll(keepingCapacity: true)
        var available = free
        let priority = Int8(job.job.jobClass.priority)
        let time = now.millisecondsSinceEpoch
        for allocation in nodes[Int(node)].allocations where allocation.preemptibleFrom <= time {
            if allocation.priority >= priority {
                guard reclaim, allocation.priority == priority, isBorrowing(allocation.project, not: job.project)
                else { continue }
            }
            scratch.append(
                VictimCandidate(
                    slot: allocation.slot, gpusHere: allocation.gpus, totalGPUs: allocation.totalGPUs,
                    priority: allocation.priority, startedAt: allocation.startedAt))
            available += Int(allocation.gpus)
        }
        guard available >= need else { return nil }
        // Largest first (fewest victims), then lowest class, then the most recently started; at most a few.
        for i in 1..<max(1, scratch.count) {
            var j = i
            while j > 0 && scratch[j].orders(before: scratch[j - 1]) {
                scratch.swapAt(j, j - 1)
                j -= 1
            }
        }
        var count = 0
        var freed = free
        var lost = 0
        for candidate in scratch where freed < need {
            count += 1
            freed += Int(candidate.gpusHere)
            lost += Int(candidate.totalGPUs)
        }
        let waste = lost - (need - free)
        if let bound, (count, waste) >= (bound.victims.count, bound.waste) { return nil }
        let victims = scratch.prefix(count).map(\.slot)
        return NodeOption(node: node, victims: victims, waste: lost - (need - free))
    }

    /// Whether `project` (not the preemptor's own) holds more than its guarantee.
    private func isBorrowing(_ project: Int32, not own: Int32) -> Bool {
        project != own && projects[Int(project)].inUse > projects[Int(project)].quota.guaranteedGPUs
    }
}

/// A job that could be preempted on one node, with what orders it.
struct VictimCandidate {
    var slot: Int32
    var gpusHere: Int32
    var totalGPUs: Int32
    var priority: Int8
    var startedAt: Int64

    func orders(before other: VictimCandidate) -> Bool {
        if gpusHere != other.gpusHere { return gpusHere > other.gpusHere }
        if priority != other.priority { return priority < other.priority }
        if startedAt != other.startedAt { return startedAt > other.startedAt }
        return slot < other.slot
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
