import CaduceusCore

/// The synthetic scenarios of `caduceus bench scheduler`, each run the same way for every search strategy
/// so that the product's scheduler is compared with the naive reference on identical inputs.
public struct SchedulerBenchmark {
    /// Monotonic nanoseconds.
    let clock: () -> UInt64

    /// Creates a benchmark timing with `clock`.
    public init(clock: @escaping () -> UInt64) {
        self.clock = clock
    }

    /// Figures of one scenario run.
    public struct Result: Codable, Sendable {
        public var search: String
        public var nodes: Int
        public var gpus: Int
        public var jobs: Int
        public var passes: Int
        public var decisions: Int
        public var placements: Int
        public var preemptions: Int
        public var decisionsPerSecond: Double
        public var decisionLatencyMicroseconds: LatencySummary
        public var allocationRatio: Double
        public var fragmentation: Double
        public var seconds: Double
    }

    /// A large queue on a large cluster: `nodes` nodes of 8 GPUs in 4 tenants, `jobs` queued jobs of mixed
    /// classes, sizes and gangs, one pass over all of them, then `churnPasses` passes each after a tenth of
    /// the running jobs ended.
    public func largeQueue(
        nodes nodeCount: Int, jobs jobCount: Int, churnPasses: Int, search: PlacementSearch
    ) throws(CaduceusError) -> Result {
        var random = SeededRandom(seed: 42)
        var scheduler = Scheduler(policy: SchedulingPolicy(search: search))
        let start = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)
        for index in 0..<nodeCount {
            try scheduler.upsert(Self.node(index, tenants: 4, fabricSize: 32))
        }
        for tenant in 0..<4 {
            for project in 0..<4 {
                let share = nodeCount / 4 * 8
                scheduler.setQuota(
                    ProjectQuota(guaranteedGPUs: share / 5, maximumGPUs: share * 3 / 5), tenant: Self.tenant(tenant),
                    project: Self.project(project))
            }
        }
        for index in 0..<jobCount {
            try scheduler.submit(Self.mixedJob(index, tenants: 4, random: &random, at: start))
        }
        var run = Run(clock: clock)
        var now = start
        run.pass(&scheduler, at: now)
        for _ in 0..<churnPasses {
            now = now.adding(milliseconds: 60_000)
            for job in run.running.sorted() where random.next() % 10 == 0 {
                scheduler.remove(job: job, at: now)
                run.running.remove(job)
            }
            run.pass(&scheduler, at: now)
        }
        return run.result(
            scheduler, search: search, nodes: nodeCount, gpus: nodeCount * 8, jobs: jobCount, passes: churnPasses + 1)
    }

    /// The latency of an inference job's preemption decision on a full tenant: `nodes` nodes of 8 GPUs, each
    /// holding four jobs (4, 2, 1 and 1 GPUs) of lower classes, some protected; `trials` inference jobs of
    /// 1–8 GPUs arrive one at a time, each timed from the start of its pass to its placement.
    public func preemption(nodes nodeCount: Int, trials: Int, search: PlacementSearch) throws(CaduceusError) -> Result {
        var random = SeededRandom(seed: 7)
        var scheduler = Scheduler(policy: SchedulingPolicy(search: search))
        var now = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)
        for index in 0..<nodeCount {
            try scheduler.upsert(Self.node(index, tenants: 1, fabricSize: 32))
        }
        var serial = 0
        func filler(_ gpus: Int) -> QueuedJob {
            serial += 1
            let classes: [JobClass] = [.training, .training, .training, .batch, .interactive]
            let jobClass = classes[Int(random.next() % UInt64(classes.count))]
            let spec = JobSpec(
                tenant: Self.tenant(0), project: Self.project(Int(random.next() % 4)), jobClass: jobClass,
                gpusPerNode: gpus, command: "fill", minRuntimeSeconds: random.next() % 5 == 0 ? 86_400 : 0,
                preemptible: jobClass != .interactive)
            return QueuedJob(id: JobID(unchecked: "job-f\(serial)"), spec: spec, submittedAt: now)
        }
        for _ in 0..<nodeCount {
            for gpus in [4, 2, 1, 1] { try scheduler.submit(filler(gpus)) }
        }
        var run = Run(clock: clock)
        _ = scheduler.schedule(at: now)
        let running = scheduler.runningCount
        for trial in 0..<trials {
            now = now.adding(milliseconds: 1000)
            let spec = JobSpec(
                tenant: Self.tenant(0), project: Self.project(trial % 4), jobClass: .inference,
                gpusPerNode: Int(1 + random.next() % 8), command: "serve", preemptible: false)
            let inference = QueuedJob(id: JobID(unchecked: "job-i\(trial)"), spec: spec, submittedAt: now)
            try scheduler.submit(inference)
            let begin = clock()
            var placedAfter: UInt64?
            let decisions = scheduler.schedule(at: now) { decision in
                if case .place(let job, _) = decision, job == inference.id, placedAfter == nil {
                    placedAfter = clock() - begin
                }
            }
            run.seconds += Double(clock() - begin) / 1e9
            run.decisions += 1
            if let placedAfter { run.latency.record(placedAfter) }
            // Put the tenant back as it was: the inference job and its victims leave, fillers take their GPUs.
            for decision in decisions {
                switch decision {
                case .preempt(_, let victims):
                    run.preemptions += victims.count
                    for victim in victims { scheduler.remove(job: victim.job, at: now) }
                case .place:
                    run.placements += 1
                case .pending:
                    break
                }
            }
            scheduler.remove(job: inference.id, at: now)
            var sizes = [4, 2, 1]
            while let size = sizes.first, scheduler.gpuTotals.allocated < scheduler.gpuTotals.schedulable {
                let job = filler(size)
                try scheduler.submit(job)
                if case .pending = scheduler.schedule(at: now).last {
                    scheduler.remove(job: job.id, at: now)
                    sizes.removeFirst()
                }
            }
        }
        return run.result(
            scheduler, search: search, nodes: nodeCount, gpus: nodeCount * 8, jobs: running, passes: trials)
    }

    // MARK: Inputs

    static func tenant(_ index: Int) -> TenantID { TenantID(unchecked: "tnt-b\(index)") }
    static func project(_ index: Int) -> ProjectID { ProjectID(unchecked: "prj-b\(index)") }

    static func node(_ index: Int, tenants: Int, fabricSize: Int) -> NodeInfo {
        NodeInfo(
            id: NodeID(unchecked: "node-b\(index)"), tenant: tenant(index % tenants),
            residency: Residency(rawValue: index % 8 < 6 ? "US" : "EU")!,
            site: SiteID(unchecked: "site-b\(index / 512)"),
            fabric: FabricID(unchecked: "fab-b\(index / fabricSize)"), gpuModel: index % 3 == 0 ? "A100" : "H200",
            gpuCount: 8, schedulable: true)
    }

    static func mixedJob(_ index: Int, tenants: Int, random: inout SeededRandom, at time: Timestamp) -> QueuedJob {
        let roll = random.next() % 100
        let jobClass: JobClass = roll < 10 ? .inference : roll < 20 ? .interactive : roll < 80 ? .training : .batch
        let gang = jobClass == .training && random.next() % 5 == 0
        let gpus = gang ? 8 : [1, 1, 2, 4, 8][Int(random.next() % 5)]
        let nodes = gang ? [2, 4, 8, 16][Int(random.next() % 4)] : 1
        let models: [String] = random.next() % 4 == 0 ? ["H200"] : []
        let spec = JobSpec(
            tenant: tenant(Int(random.next() % UInt64(tenants))), project: project(Int(random.next() % 4)),
            jobClass: jobClass, gpusPerNode: gpus, nodeCount: nodes, allowedModels: models,
            residency: random.next() % 10 == 0 ? Residency(rawValue: "EU") : nil, command: "work",
            preemptible: jobClass == .training || jobClass == .batch)
        return QueuedJob(
            id: JobID(unchecked: "job-b\(index)"), spec: spec, submittedAt: time.adding(milliseconds: Int64(index)))
    }
}

/// Counters of one benchmark run.
private struct Run {
    let clock: () -> UInt64
    var latency = LatencyHistogram()
    var decisions = 0
    var placements = 0
    var preemptions = 0
    var seconds = 0.0
    var running = Set<JobID>()

    mutating func pass(_ scheduler: inout Scheduler, at now: Timestamp) {
        var gaps: [UInt64] = []
        gaps.reserveCapacity(scheduler.queuedCount)
        let start = clock()
        var last = start
        let decisions = scheduler.schedule(at: now) { _ in
            let tick = clock()
            gaps.append(tick - last)
            last = tick
        }
        seconds += Double(clock() - start) / 1e9
        for gap in gaps { latency.record(gap) }
        self.decisions += decisions.count
        for decision in decisions {
            switch decision {
            case .place(let job, _):
                placements += 1
                running.insert(job)
            case .preempt(_, let victims):
                preemptions += victims.count
                for victim in victims { running.remove(victim.job) }
            case .pending:
                break
            }
        }
    }

    func result(
        _ scheduler: Scheduler, search: PlacementSearch, nodes: Int, gpus: Int, jobs: Int, passes: Int
    )
        -> SchedulerBenchmark.Result
    {
        let totals = scheduler.gpuTotals
        return SchedulerBenchmark.Result(
            search: search.rawValue, nodes: nodes, gpus: gpus, jobs: jobs, passes: passes, decisions: decisions,
            placements: placements, preemptions: preemptions,
            decisionsPerSecond: seconds > 0 ? Double(decisions) / seconds : 0,
            decisionLatencyMicroseconds: LatencySummary(latency),
            allocationRatio: totals.schedulable > 0 ? Double(totals.allocated) / Double(totals.schedulable) : 0,
            fragmentation: scheduler.fragmentation, seconds: seconds)
    }
}

/// SplitMix64: a small, seeded, deterministic random source for simulations and benchmarks.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Starts the sequence at `seed`.
    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
