import CaduceusCore

extension Scheduler {
    /// One scheduling pass at `now`: every queued job is considered once, most important class first and,
    /// within a class and tenant, the project with the smallest fair share first. Placements and
    /// preemptions take effect in the scheduler at once; the decisions say what the caller must carry out.
    ///
    /// - Parameter observe: called with each decision as it is made (benchmarks time the gaps).
    public mutating func schedule(at now: Timestamp, observe: (Decision) -> Void = { _ in }) -> [Decision] {
        var decisions: [Decision] = []
        var pass = PassState()
        for project in projects.indices { updateUsage(project, to: now.millisecondsSinceEpoch) }
        for tenant in tenants.indices { pass.reserved[Int32(tenant)] = reservedGuarantees(Int32(tenant)) }
        for rank in stride(from: 3, through: 0, by: -1) {
            for tenant in tenants.indices {
                var heap = ShareHeap()
                for project in tenants[tenant].projects where !projects[Int(project)].queues[rank].isEmpty {
                    heap.push(share(project), project)
                    pass.cursor[project] = 0
                }
                while let (_, project) = heap.pop() {
                    let queue = projects[Int(project)].queues[rank]
                    var cursor = pass.cursor[project] ?? 0
                    while cursor < queue.count && !isWaiting(queue[cursor]) { cursor += 1 }
                    guard cursor < queue.count else { continue }
                    let slot = queue[cursor]
                    pass.cursor[project] = cursor + 1
                    let before = decisions.count
                    decide(slot, at: now, pass: &pass, into: &decisions)
                    for decision in decisions[before...] { observe(decision) }
                    if cursor + 1 < queue.count { heap.push(share(project), project) }
                }
            }
            compactQueues(rank: rank)
        }
        for slot in pass.requeued {
            jobs[Int(slot)].awaitingRequeue = false
            enqueue(slot)
        }
        freeJobSlots.append(contentsOf: retiredSlots)
        retiredSlots.removeAll()
        return decisions
    }

    /// Decides one queued job.
    private mutating func decide(
        _ slot: Int32, at now: Timestamp, pass: inout PassState, into decisions: inout [Decision]
    ) {
        let job = jobs[Int(slot)]
        let project = projects[Int(job.project)]
        let need = job.job.totalGPUs
        if project.inUse + need > project.quota.maximumGPUs {
            return wait(
                slot,
                .quotaMaximum(
                    project: project.id, inUse: project.inUse, maximum: project.quota.maximumGPUs, requested: need),
                into: &decisions)
        }
        let withinGuarantee = project.inUse + need <= project.quota.guaranteedGPUs
        if !withinGuarantee {
            let reservedForOthers = pass.reserved[job.tenant, default: 0] - ownReservation(job.project)
            let borrowable = max(0, tenants[Int(job.tenant)].freeGPUs - reservedForOthers)
            if need > borrowable && reservedForOthers > 0 {
                return wait(
                    slot,
                    .borrowingReserved(
                        project: project.id, inUse: project.inUse, guaranteed: project.quota.guaranteedGPUs,
                        requested: need, borrowable: borrowable, reservedFor: reservationHolders(job)),
                    into: &decisions)
            }
        }
        let shape = ShapeKey(
            tenant: job.tenant, models: job.models, residency: job.residency, gpusPerNode: job.job.gpusPerNode,
            nodeCount: job.job.nodeCount)
        let remembers = policy.search == .indexed
        if !remembers || pass.failedFits[shape] != releaseEpoch, let nodes = findNodes(job) {
            place(slot, on: nodes, at: now, pass: &pass, into: &decisions)
            return
        }
        pass.failedFits[shape] = releaseEpoch
        let canPreempt = job.job.jobClass.priority > 0 || withinGuarantee
        guard canPreempt else {
            return wait(slot, .capacity(shortfall(job, shape, preemption: nil, pass: &pass)), into: &decisions)
        }
        // A failed preemption stays failed until GPUs are released — placements in this pass are of this class
        // or lower, so they add no victims — except when reclaiming, where jobs of the same class count.
        let preemptKey = PreemptionKey(shape: shape, rank: job.job.jobClass.priority, reclaim: withinGuarantee)
        let epoch = withinGuarantee ? changeEpoch : releaseEpoch
        if !remembers || pass.failedPreemptions[preemptKey] != epoch,
            let plan = preemptionPlan(for: slot, reclaim: withinGuarantee, at: now)
        {
            var victims: [Victim] = []
            for victim in plan.victims {
                let requeue = jobs[Int(victim)].job.jobClass == .training
                victims.append(Victim(job: jobs[Int(victim)].job.id, requeued: requeue))
                release(victim, at: now)
                if requeue {
                    jobs[Int(victim)].reason = nil
                    jobs[Int(victim)].awaitingRequeue = true
                    pass.requeued.append(victim)
                } else {
                    jobIndex[jobs[Int(victim)].job.id] = nil
                    jobs[Int(victim)].live = false
                    freeJobSlots.append(victim)
                }
            }
            decisions.append(.preempt(job.job.id, victims: victims))
            place(slot, on: plan.nodes, at: now, pass: &pass, into: &decisions)
            return
        }
        pass.failedPreemptions[preemptKey] = epoch
        wait(slot, .capacity(shortfall(job, shape, preemption: .noEligibleVictims, pass: &pass)), into: &decisions)
    }

    private mutating func place(
        _ slot: Int32, on chosen: [Int32], at now: Timestamp, pass: inout PassState, into decisions: inout [Decision]
    ) {
        let job = jobs[Int(slot)]
        let before = ownReservation(job.project)
        let parts = chosen.map { ($0, lowestFree($0, job.job.gpusPerNode)) }
        projects[Int(job.project)].queuedGPUs -= job.job.totalGPUs
        allocate(slot, parts: parts, at: now)
        pass.reserved[job.tenant, default: 0] += ownReservation(job.project) - before
        decisions.append(.place(job.job.id, assignments(jobs[Int(slot)].parts)))
    }

    private mutating func wait(_ slot: Int32, _ reason: PendingReason, into decisions: inout [Decision]) {
        jobs[Int(slot)].reason = reason
        decisions.append(.pending(jobs[Int(slot)].job.id, reason))
    }

    /// Drops placed and removed jobs from the queues of one class.
    private mutating func compactQueues(rank: Int) {
        for project in projects.indices where !projects[project].queues[rank].isEmpty {
            let queue = projects[project].queues[rank]
            if queue.contains(where: { !isWaiting($0) }) {
                projects[project].queues[rank] = queue.filter { isWaiting($0) }
            }
        }
    }

    /// The capacity picture for a shape, computed once per change of the cluster within a pass.
    private mutating func shortfall(
        _ job: JobSlot, _ shape: ShapeKey, preemption: CapacityShortfall.PreemptionOutcome?, pass: inout PassState
    ) -> CapacityShortfall {
        var result: CapacityShortfall
        if policy.search == .indexed, let cached = pass.shortfalls[shape], cached.epoch == changeEpoch {
            result = cached.shortfall
        } else {
            result = shortfall(job, preemption: nil)
            pass.shortfalls[shape] = (changeEpoch, result)
        }
        result.preemption = preemption
        return result
    }

    /// Whether a queue entry still stands for a waiting job.
    private func isWaiting(_ slot: Int32) -> Bool {
        let job = jobs[Int(slot)]
        return job.live && !job.isRunning && !job.awaitingRequeue
    }

    // MARK: Quotas and fair share

    /// GPUs a project's guarantee keeps back from borrowers: its unused guarantee, as far as it has work
    /// waiting for it.
    func ownReservation(_ project: Int32) -> Int {
        let slot = projects[Int(project)]
        return min(slot.unusedGuarantee, slot.queuedGPUs)
    }

    private func reservedGuarantees(_ tenant: Int32) -> Int {
        tenants[Int(tenant)].projects.reduce(0) { $0 + ownReservation($1) }
    }

    private func reservationHolders(_ job: JobSlot) -> [ProjectID] {
        tenants[Int(job.tenant)].projects.filter { $0 != job.project && ownReservation($0) > 0 }
            .map { projects[Int($0)].id }.sorted()
    }

    /// Brings a project's decayed usage up to `now`: usage halves every half-life, and the GPUs held since
    /// the last update are added, integrated exactly.
    mutating func updateUsage(_ project: Int, to now: Int64) {
        guard let last = projects[project].usageUpdatedAt else {
            projects[project].usageUpdatedAt = now
            return
        }
        let elapsed = Double(now - last)
        guard elapsed > 0 else { return }
        let halfLife = Double(policy.usageHalfLifeMilliseconds)
        let decay = Self.exp2(-elapsed / halfLife)
        let held = Double(projects[project].inUse)
        // ∫₀ᵗ held · 2^(−(t−s)/h) ds = held · h / ln 2 · (1 − 2^(−t/h))
        projects[project].decayedUsage =
            projects[project].decayedUsage * decay + held * halfLife / 0.693_147_180_559_945_3 * (1 - decay)
        projects[project].usageUpdatedAt = now
    }

    /// A project's share: GPUs it holds plus its decayed past usage in GPU equivalents, per guaranteed GPU.
    func share(_ project: Int32) -> Double {
        let slot = projects[Int(project)]
        let past = slot.decayedUsage * 0.693_147_180_559_945_3 / Double(policy.usageHalfLifeMilliseconds)
        return (Double(slot.inUse) + past) / Double(max(1, slot.quota.guaranteedGPUs))
    }

    /// 2^x without Foundation.
    static func exp2(_ x: Double) -> Double {
        guard x > -1074 else { return 0 }
        let whole = x.rounded(.down)
        let fraction = x - whole
        // 2^f = e^(f ln 2), by its series; f is in [0, 1).
        let y = fraction * 0.693_147_180_559_945_3
        var term = 1.0
        var sum = 1.0
        for n in 1...20 {
            term *= y / Double(n)
            sum += term
        }
        return sum * Double(sign: .plus, exponent: Int(whole), significand: 1)
    }
}

/// What one pass remembers.
struct PassState {
    var cursor: [Int32: Int] = [:]
    var reserved: [Int32: Int] = [:]
    var failedFits: [ShapeKey: Int] = [:]
    var failedPreemptions: [PreemptionKey: Int] = [:]
    var shortfalls: [ShapeKey: (epoch: Int, shortfall: CapacityShortfall)] = [:]
    var requeued: [Int32] = []
}

struct ShapeKey: Hashable {
    var tenant: Int32
    var models: Int32
    var residency: Int32
    var gpusPerNode: Int
    var nodeCount: Int
}

struct PreemptionKey: Hashable {
    var shape: ShapeKey
    var rank: Int
    var reclaim: Bool
}

/// A binary min-heap of projects by share (ties: lower project slot first), for deterministic fair share.
struct ShareHeap {
    private var items: [(Double, Int32)] = []

    mutating func push(_ share: Double, _ project: Int32) {
        items.append((share, project))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (Double, Int32)? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < items.count && less(items[left], items[smallest]) { smallest = left }
                if right < items.count && less(items[right], items[smallest]) { smallest = right }
                guard smallest != parent else { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }

    private func less(_ a: (Double, Int32), _ b: (Double, Int32)) -> Bool {
        a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
    }
}
