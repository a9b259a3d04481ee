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
        var search = VictimSearch(
            need: need, priority: Int8(job.job.jobClass.priority), time: now.millisecondsSinceEpoch, reclaim: reclaim,
            project: job.project)
        var options: [NodeOption] = []
        var best: NodeOption?
        var candidates: [Int32] = []
        switch policy.search {
        case .indexed:
            for pool in candidatePools(job) where need <= pools[Int(pool)].largestNode {
                let sizes = count == 1 ? 0..<need : 0..<(pools[Int(pool)].largestNode + 1)
                for free in sizes { candidates.append(contentsOf: pools[Int(pool)].buckets[free]) }
            }
        case .firstFitScan:
            for index in nodes.indices {
                let node = nodes[index]
                guard node.tenant == job.tenant, node.schedulable, !node.removed, node.gpuCount >= need,
                    interned.allows(job.models, model: node.model),
                    job.residency < 0 || interned.fabricResidency[Int(node.fabric)] == job.residency
                else { continue }
                candidates.append(Int32(index))
            }
        }
        let borrowing = projects.map { $0.inUse > $0.quota.guaranteedGPUs }
        return allocationTable.withUnsafeBufferPointer { table in
            nodes.withUnsafeBufferPointer { nodes in
                var noVictims: [Int32]?
                for node in candidates {
                    // The common case inline, touching no array but the two tables: is there a single job whose
                    // preemption makes room? Only when there is none are several victims weighed.
                    let free = nodes[Int(node)].freeMask.nonzeroBitCount
                    let deficit = need - free
                    var single = -1
                    var available = 0
                    if deficit > 0 {
                        let base = Int(nodes[Int(node)].allocationBase)
                        for index in base..<base + Int(nodes[Int(node)].allocationCount) {
                            guard search.isEligible(table[index], borrowing: borrowing) else { continue }
                            available += Int(table[index].gpus)
                            if Int(table[index].gpus) >= deficit,
                                single < 0 || table[index].wastes(less: table[single])
                            {
                                single = index
                            }
                        }
                        if single < 0 && (available < deficit || (count == 1 && best?.victims == 1)) { continue }
                    }
                    let option: NodeOption
                    if deficit <= 0 {
                        option = NodeOption(node: node, victims: 0, waste: 0)
                    } else if single >= 0 {
                        option = NodeOption(node: node, victims: 1, waste: Int(table[single].totalGPUs) - deficit)
                    } else {
                        guard
                            let several = search.evaluate(
                                node, nodes: nodes, allocations: table, borrowing: borrowing,
                                notWorseThan: count == 1 ? best : nil, victims: &noVictims)
                        else { continue }
                        option = several
                    }
                    if count > 1 {
                        options.append(option)
                    } else if best == nil || option.isBetter(than: best!) {
                        best = option
                        if option.victims == 1 && option.waste == 0 { break }
                    }
                }
                let chosen =
                    count == 1 ? best.map { [$0] } ?? [] : Array(options.sorted { $0.isBetter(than: $1) }.prefix(count))
                guard chosen.count == count, chosen.contains(where: { $0.victims > 0 }) else { return nil }
                var victims = Set<Int32>()
                for option in chosen {
                    var found: [Int32]? = []
                    _ = search.evaluate(
                        option.node, nodes: nodes, allocations: table, borrowing: borrowing, notWorseThan: nil,
                        victims: &found)
                    victims.formUnion(found ?? [])
                }
                return PreemptionPlan(victims: victims.sorted(), nodes: chosen.map(\.node))
            }
        }
    }

}

/// The search for victims on one node at a time, for one preemptor.
struct VictimSearch {
    let need: Int
    let priority: Int8
    let time: Int64
    let reclaim: Bool
    let project: Int32
    var scratch: [VictimCandidate] = []

    init(need: Int, priority: Int8, time: Int64, reclaim: Bool, project: Int32) {
        self.need = need
        self.priority = priority
        self.time = time
        self.reclaim = reclaim
        self.project = project
    }

    /// Whether a job holding GPUs may be preempted for this preemptor: preemptible, past its minimum run
    /// time, and of a lower class — or, when reclaiming, borrowed work of the same class in another project.
    @inline(__always)
    func isEligible(_ allocation: NodeAllocation, borrowing: [Bool]) -> Bool {
        guard allocation.preemptibleFrom <= time else { return false }
        if allocation.priority < priority { return true }
        return reclaim && allocation.priority == priority && allocation.project != project
            && borrowing[Int(allocation.project)]
    }

    /// What it takes to free `need` GPUs on `node`: a single victim that covers the shortfall with the fewest
    /// GPUs lost if there is one, else the largest eligible jobs first. Nil when the node's eligible jobs
    /// cannot make room, or when the result would not beat `bound`. When `victims` is not nil, the chosen
    /// victims are appended to it (only the winners need them: the scan itself allocates nothing).
    mutating func evaluate(
        _ node: Int32, nodes: UnsafeBufferPointer<NodeSlot>, allocations: UnsafeBufferPointer<NodeAllocation>,
        borrowing: [Bool], notWorseThan bound: NodeOption?, victims: inout [Int32]?
    ) -> NodeOption? {
        let free = nodes[Int(node)].freeMask.nonzeroBitCount
        if free >= need { return NodeOption(node: node, victims: 0, waste: 0) }
        let deficit = need - free
        let collect = bound == nil || bound!.victims > 1
        scratch.removeAll(keepingCapacity: true)
        var available = 0
        var single: VictimCandidate?
        let base = Int(nodes[Int(node)].allocationBase)
        for index in base..<base + Int(nodes[Int(node)].allocationCount) {
            let allocation = allocations[index]
            guard isEligible(allocation, borrowing: borrowing) else { continue }
            let candidate = VictimCandidate(
                slot: allocation.slot, gpusHere: allocation.gpus, totalGPUs: allocation.totalGPUs,
                priority: allocation.priority, startedAt: allocation.startedAt)
            if Int(allocation.gpus) >= deficit, single == nil || candidate.wastes(less: single!) {
                single = candidate
            }
            available += Int(allocation.gpus)
            if collect { scratch.append(candidate) }
        }
        if let single {
            let option = NodeOption(node: node, victims: 1, waste: Int(single.totalGPUs) - deficit)
            if let bound, !option.isBetter(than: bound) { return nil }
            victims?.append(single.slot)
            return option
        }
        guard available >= deficit, collect else { return nil }
        // Largest first (fewest victims), then lowest class, then the most recently started; at most a few.
        for i in 1..<max(1, scratch.count) {
            var j = i
            while j > 0 && scratch[j].orders(before: scratch[j - 1]) {
                scratch.swapAt(j, j - 1)
                j -= 1
            }
        }
        var count = 0
        var freed = 0
        var lost = 0
        for candidate in scratch where freed < deficit {
            count += 1
            freed += Int(candidate.gpusHere)
            lost += Int(candidate.totalGPUs)
        }
        let option = NodeOption(node: node, victims: count, waste: lost - deficit)
        if let bound, !option.isBetter(than: bound) { return nil }
        victims?.append(contentsOf: scratch.prefix(count).map(\.slot))
        return option
    }
}

extension NodeAllocation {
    /// As `VictimCandidate.wastes(less:)`.
    @inline(__always)
    func wastes(less other: NodeAllocation) -> Bool {
        if totalGPUs != other.totalGPUs { return totalGPUs < other.totalGPUs }
        if gpus != other.gpus { return gpus > other.gpus }
        if priority != other.priority { return priority < other.priority }
        if startedAt != other.startedAt { return startedAt > other.startedAt }
        return slot < other.slot
    }
}

/// A job that could be preempted on one node, with what orders it.
struct VictimCandidate {
    var slot: Int32
    var gpusHere: Int32
    var totalGPUs: Int32
    var priority: Int8
    var startedAt: Int64

    /// Of two victims that each cover a shortfall alone: fewer GPUs lost, then as `orders(before:)`.
    func wastes(less other: VictimCandidate) -> Bool {
        if totalGPUs != other.totalGPUs { return totalGPUs < other.totalGPUs }
        return orders(before: other)
    }

    func orders(before other: VictimCandidate) -> Bool {
        if gpusHere != other.gpusHere { return gpusHere > other.gpusHere }
        if priority != other.priority { return priority < other.priority }
        if startedAt != other.startedAt { return startedAt > other.startedAt }
        return slot < other.slot
    }
}

/// One node's price of making room: how many jobs to preempt there and how many GPUs they hold beyond the
/// need.
struct NodeOption {
    var node: Int32
    var victims: Int
    var waste: Int

    func isBetter(than other: NodeOption) -> Bool {
        if victims != other.victims { return victims < other.victims }
        if waste != other.waste { return waste < other.waste }
        return node < other.node
    }
}
