import CaduceusCore

extension Scheduler {
    // MARK: Pools and buckets

    mutating func attachToPool(_ node: Int32) {
        let slot = nodes[Int(node)]
        guard slot.schedulable, slot.tenant >= 0, !slot.removed else { return }
        let key = PoolKey(tenant: slot.tenant, model: slot.model, fabric: slot.fabric)
        let pool: Int32
        if let known = poolIndex[key] {
            pool = known
        } else {
            pool = Int32(pools.count)
            pools.append(
                Pool(
                    tenant: slot.tenant, model: slot.model, fabric: slot.fabric,
                    site: interned.fabricSite[Int(slot.fabric)], residency: interned.fabricResidency[Int(slot.fabric)]))
            poolIndex[key] = pool
            tenants[Int(slot.tenant)].pools.append(pool)
            candidateCache.removeAll(keepingCapacity: true)
        }
        let free = slot.freeGPUs
        nodes[Int(node)].pool = pool
        nodes[Int(node)].bucketPosition = pools[Int(pool)].add(node, free: free)
        pools[Int(pool)].nodeCount += 1
        pools[Int(pool)].totalGPUs += slot.gpuCount
        pools[Int(pool)].freeGPUs += free
        if free == slot.gpuCount { pools[Int(pool)].freeOnEmptyNodes += free }
        pools[Int(pool)].largestNode = max(pools[Int(pool)].largestNode, slot.gpuCount)
        tenants[Int(slot.tenant)].freeGPUs += free
    }

    mutating func detachFromPool(_ node: Int32) {
        let slot = nodes[Int(node)]
        guard slot.pool >= 0 else { return }
        let free = slot.freeGPUs
        removeFromBucket(node, free: free)
        pools[Int(slot.pool)].nodeCount -= 1
        pools[Int(slot.pool)].totalGPUs -= slot.gpuCount
        pools[Int(slot.pool)].freeGPUs -= free
        if free == slot.gpuCount { pools[Int(slot.pool)].freeOnEmptyNodes -= free }
        tenants[Int(slot.tenant)].freeGPUs -= free
        nodes[Int(node)].pool = -1
    }

    mutating func addToTenant(_ node: Int32) {
        let tenant = nodes[Int(node)].tenant
        guard tenant >= 0 else { return }
        tenants[Int(tenant)].nodes.append(node)
    }

    mutating func removeFromTenant(_ node: Int32) {
        let tenant = nodes[Int(node)].tenant
        guard tenant >= 0, let position = tenants[Int(tenant)].nodes.firstIndex(of: node) else { return }
        tenants[Int(tenant)].nodes.remove(at: position)
    }

    private mutating func removeFromBucket(_ node: Int32, free: Int) {
        let pool = Int(nodes[Int(node)].pool)
        let position = Int(nodes[Int(node)].bucketPosition)
        if let moved = pools[pool].remove(at: position, free: free) {
            nodes[Int(moved)].bucketPosition = Int32(position)
        }
    }

    /// Changes a node's free mask, moving it between buckets and keeping the counters.
    private mutating func setFreeMask(_ node: Int32, _ mask: UInt64) {
        let old = nodes[Int(node)].freeGPUs
        let new = mask.nonzeroBitCount
        let pool = nodes[Int(node)].pool
        if pool >= 0 && old != new {
            removeFromBucket(node, free: old)
            nodes[Int(node)].bucketPosition = pools[Int(pool)].add(node, free: new)
            pools[Int(pool)].freeGPUs += new - old
            let size = nodes[Int(node)].gpuCount
            pools[Int(pool)].freeOnEmptyNodes += (new == size ? size : 0) - (old == size ? size : 0)
            tenants[Int(nodes[Int(node)].tenant)].freeGPUs += new - old
        }
        nodes[Int(node)].freeMask = mask
    }

    // MARK: Allocation

    /// Reserves one allocation place per GPU of a new node; returns where they start.
    mutating func reserveAllocations(_ gpus: Int) -> Int32 {
        let base = Int32(allocationTable.count)
        allocationTable.append(
            contentsOf: repeatElement(
                NodeAllocation(
                    slot: -1, gpus: 0, totalGPUs: 0, priority: 0, project: -1, preemptibleFrom: 0, startedAt: 0),
                count: gpus))
        return base
    }

    /// The jobs holding GPUs on a node.
    func allocations(of node: Int32) -> ArraySlice<NodeAllocation> {
        let base = Int(nodes[Int(node)].allocationBase)
        return allocationTable[base..<base + Int(nodes[Int(node)].allocationCount)]
    }

    /// Gives a job the GPUs in `parts`.
    mutating func allocate(_ slot: Int32, parts: [(Int32, UInt64)], at now: Timestamp) {
        let preemptibleFrom =
            jobs[Int(slot)].job.preemptible
            ? now.millisecondsSinceEpoch + jobs[Int(slot)].job.minRuntimeMilliseconds : Int64.max
        for (node, mask) in parts {
            setFreeMask(node, nodes[Int(node)].freeMask & ~mask)
            let place = Int(nodes[Int(node)].allocationBase + nodes[Int(node)].allocationCount)
            nodes[Int(node)].allocationCount += 1
            allocationTable[place] = NodeAllocation(
                slot: slot, gpus: Int32(mask.nonzeroBitCount), totalGPUs: Int32(jobs[Int(slot)].job.totalGPUs),
                priority: Int8(jobs[Int(slot)].job.jobClass.priority), project: jobs[Int(slot)].project,
                preemptibleFrom: preemptibleFrom, startedAt: now.millisecondsSinceEpoch)
        }
        jobs[Int(slot)].parts = parts.map { (node: $0.0, mask: $0.1) }
        jobs[Int(slot)].startedAt = now
        jobs[Int(slot)].preemptibleFrom = preemptibleFrom
        jobs[Int(slot)].reason = nil
        let gpus = jobs[Int(slot)].job.totalGPUs
        let project = Int(jobs[Int(slot)].project)
        updateUsage(project, to: now.millisecondsSinceEpoch)
        projects[project].inUse += gpus
        runningCount += 1
        changeEpoch += 1
    }

    /// Takes a job's GPUs back.
    mutating func release(_ slot: Int32, at now: Timestamp) {
        for part in jobs[Int(slot)].parts {
            setFreeMask(part.node, nodes[Int(part.node)].freeMask | part.mask)
            let base = Int(nodes[Int(part.node)].allocationBase)
            let last = base + Int(nodes[Int(part.node)].allocationCount) - 1
            if let position = (base...last).first(where: { allocationTable[$0].slot == slot }) {
                allocationTable[position] = allocationTable[last]
                nodes[Int(part.node)].allocationCount -= 1
            }
        }
        jobs[Int(slot)].parts = []
        let project = Int(jobs[Int(slot)].project)
        updateUsage(project, to: now.millisecondsSinceEpoch)
        projects[project].inUse -= jobs[Int(slot)].job.totalGPUs
        runningCount -= 1
        releaseEpoch += 1
        changeEpoch += 1
    }

    /// The lowest `count` free GPUs of a node.
    func lowestFree(_ node: Int32, _ count: Int) -> UInt64 {
        var mask = nodes[Int(node)].freeMask
        var taken: UInt64 = 0
        for _ in 0..<count {
            let bit = mask & (~mask &+ 1)
            taken |= bit
            mask &= mask - 1
        }
        return taken
    }

    // MARK: Finding nodes

    /// The pools a job may use: its tenant's, with an allowed model and the required residency.
    mutating func candidatePools(_ job: JobSlot) -> [Int32] {
        let key = CandidateKey(tenant: job.tenant, models: job.models, residency: job.residency)
        if let cached = candidateCache[key] { return cached }
        let result = tenants[Int(job.tenant)].pools.filter { index in
            let pool = pools[Int(index)]
            return interned.allows(job.models, model: pool.model)
                && (job.residency < 0 || pool.residency == job.residency)
        }
        candidateCache[key] = result
        return result
    }

    /// Nodes for the job now, without preemption, or nil.
    mutating func findNodes(_ job: JobSlot) -> [Int32]? {
        switch policy.search {
        case .indexed: indexedFit(job)
        case .firstFitScan: scanFit(job)
        }
    }

    private mutating func indexedFit(_ job: JobSlot) -> [Int32]? {
        let need = job.job.gpusPerNode
        let count = job.job.nodeCount
        let candidates = candidatePools(job)
        if count == 1 {
            var best: (free: Int, pool: Int32)?
            for pool in candidates {
                guard let free = pools[Int(pool)].smallestFree(atLeast: need) else { continue }
                if best == nil || free < best!.free { best = (free, pool) }
                if free == need { break }
            }
            guard let best, let node = pools[Int(best.pool)].buckets[best.free].last else { return nil }
            return [node]
        }
        // A gang: count fitting nodes per pool, then prefer one fabric, then one site, then anywhere.
        var fitting: [(pool: Int32, nodes: Int)] = []
        var total = 0
        for pool in candidates {
            let largest = pools[Int(pool)].largestNode
            guard need <= largest else { continue }
            var nodesFitting = 0
            for free in need...largest { nodesFitting += pools[Int(pool)].buckets[free].count }
            if nodesFitting > 0 {
                fitting.append((pool, nodesFitting))
                total += nodesFitting
            }
        }
        guard total >= count else { return nil }
        let domain =
            bestDomain(fitting, count: count, of: { pools[Int($0)].fabric })
            ?? bestDomain(fitting, count: count, of: { pools[Int($0)].site }) ?? fitting.map(\.pool)
        var chosen: [Int32] = []
        chosen.reserveCapacity(count)
        var free = need
        while chosen.count < count && free <= 64 {
            for pool in domain where free <= pools[Int(pool)].largestNode {
                for node in pools[Int(pool)].buckets[free].reversed() {
                    chosen.append(node)
                    if chosen.count == count { return chosen }
                }
            }
            free += 1
        }
        return chosen.count == count ? chosen : nil
    }

    /// The pools of the smallest domain (fabric or site) with enough fitting nodes, or nil.
    private func bestDomain(
        _ fitting: [(pool: Int32, nodes: Int)], count: Int, of domain: (Int32) -> Int32
    ) -> [Int32]? {
        var totals: [Int32: Int] = [:]
        for entry in fitting { totals[domain(entry.pool), default: 0] += entry.nodes }
        let best = totals.filter { $0.value >= count }.min { ($0.value, $0.key) < ($1.value, $1.key) }
        guard let best else { return nil }
        return fitting.filter { domain($0.pool) == best.key }.map(\.pool)
    }

    /// The naive reference: first fit, scanning every node of the cluster.
    private func scanFit(_ job: JobSlot) -> [Int32]? {
        let need = job.job.gpusPerNode
        let count = job.job.nodeCount
        var byFabric: [Int32: [Int32]] = [:]
        var fabricOrder: [Int32] = []
        var all: [Int32] = []
        for index in nodes.indices {
            let node = nodes[index]
            guard node.tenant == job.tenant, node.schedulable, !node.removed, node.freeGPUs >= need,
                interned.allows(job.models, model: node.model),
                job.residency < 0 || interned.fabricResidency[Int(node.fabric)] == job.residency
            else { continue }
            if count == 1 { return [Int32(index)] }
            if byFabric[node.fabric] == nil { fabricOrder.append(node.fabric) }
            byFabric[node.fabric, default: []].append(Int32(index))
            all.append(Int32(index))
        }
        guard all.count >= count else { return nil }
        for fabric in fabricOrder where byFabric[fabric]!.count >= count {
            return Array(byFabric[fabric]!.prefix(count))
        }
        var bySite: [Int32: [Int32]] = [:]
        for node in all { bySite[interned.fabricSite[Int(nodes[Int(node)].fabric)], default: []].append(node) }
        for node in all {
            let site = interned.fabricSite[Int(nodes[Int(node)].fabric)]
            if let members = bySite[site], members.count >= count { return Array(members.prefix(count)) }
        }
        return Array(all.prefix(count))
    }

    /// The capacity picture of a job's matching nodes, for its pending reason.
    mutating func shortfall(_ job: JobSlot, preemption: CapacityShortfall.PreemptionOutcome?) -> CapacityShortfall {
        var schedulable = 0
        var fittingNodes = 0
        var free = 0
        var largest = 0
        for pool in candidatePools(job) {
            let entry = pools[Int(pool)]
            schedulable += entry.nodeCount
            free += entry.freeGPUs
            largest = max(largest, entry.largestFree)
            if job.job.gpusPerNode <= entry.largestNode {
                for size in job.job.gpusPerNode...entry.largestNode { fittingNodes += entry.buckets[size].count }
            }
        }
        return CapacityShortfall(
            gpusPerNode: job.job.gpusPerNode, nodeCount: job.job.nodeCount, schedulableNodes: schedulable,
            fittingNodes: fittingNodes, freeGPUs: free, largestFreeBlock: largest, preemption: preemption)
    }
}
