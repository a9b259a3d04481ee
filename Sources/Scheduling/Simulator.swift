import CaduceusCore

/// Replays a GPU-cluster trace through the real scheduler in simulated time.
///
/// Nodes are dealt to `tenants` tenants in turn; each pod goes to the tenant given by a stable hash of its
/// name, with LS pods as inference, Burstable as interactive and BE as preemptible training. A pod arrives at
/// its creation time, and once placed runs for its trace run time (deletion − creation); a preempted
/// training pod goes back to the queue and starts over. Pods that can never run on their tenant's nodes are
/// refused on arrival, as the API would refuse them.
public struct Simulator {
    let trace: AlibabaTrace
    let tenants: Int
    let policy: SchedulingPolicy
    let arrivalScale: Double
    let clock: () -> UInt64

    /// - Parameters:
    ///   - arrivalScale: multiplies every arrival time (1: as in the trace; 0.01: arrivals 100 times denser,
    ///     for a loaded cluster); run times stay as they are.
    ///   - clock: monotonic nanoseconds, used only to time the scheduler's decisions.
    public init(
        trace: AlibabaTrace, tenants: Int, policy: SchedulingPolicy, arrivalScale: Double = 1,
        clock: @escaping () -> UInt64
    ) throws(CaduceusError) {
        guard (1...1000).contains(tenants) else {
            throw CaduceusError(code: "sim.invalid", message: "--tenants must be 1 to 1000")
        }
        guard arrivalScale > 0, arrivalScale <= 1000 else {
            throw CaduceusError(code: "sim.invalid", message: "--arrival-scale must be above 0 and at most 1000")
        }
        self.arrivalScale = arrivalScale
        guard !trace.nodes.isEmpty else {
            throw CaduceusError(code: "sim.invalid", message: "the node list has no GPU nodes")
        }
        self.trace = trace
        self.tenants = tenants
        self.policy = policy
        self.clock = clock
    }

    /// The tenant of a pod: FNV-1a of its name, modulo the number of tenants.
    public static func tenant(ofPod name: String, tenants: Int) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return Int(hash % UInt64(tenants))
    }

    /// Runs the whole trace and reports what happened.
    public func run() throws(CaduceusError) -> SimulationReport {
        var state = SimulationState(scheduler: Scheduler(policy: policy), pods: trace.pods.count)
        let residency = Residency(rawValue: "US")!
        for (index, node) in trace.nodes.enumerated() {
            try state.scheduler.upsert(
                NodeInfo(
                    id: NodeID(unchecked: "node-\(index)"), tenant: Self.tenantID(index % tenants),
                    residency: residency, site: SiteID(unchecked: "site-\(index / 256)"),
                    fabric: FabricID(unchecked: "fab-\(index / 32)"), gpuModel: node.model, gpuCount: node.gpus,
                    schedulable: true))
        }
        let arrivalTimes = trace.pods.map { Int64((Double($0.creationTime) * arrivalScale).rounded()) }
        state.arrivalTimes = arrivalTimes
        let arrivals = trace.pods.indices.sorted { (arrivalTimes[$0], $0) < (arrivalTimes[$1], $1) }
        var next = 0
        var lastTime: Int64?
        while next < arrivals.count || !state.completions.isEmpty {
            let arrivalTime = next < arrivals.count ? arrivalTimes[arrivals[next]] : Int64.max
            let time = min(arrivalTime, state.completions.peek?.time ?? Int64.max)
            if let lastTime { state.accumulate(until: time, from: lastTime) }
            lastTime = time
            let now = Timestamp(millisecondsSinceEpoch: time * 1000)
            while let done = state.completions.peek, done.time == time {
                state.completions.pop()
                guard state.generation[done.pod] == done.generation else { continue }
                state.scheduler.remove(job: Self.jobID(done.pod), at: now)
            }
            while next < arrivals.count, arrivalTimes[arrivals[next]] == time {
                try submit(arrivals[next], at: now, into: &state)
                next += 1
            }
            pass(at: now, time: time, &state)
        }
        // Whatever still waits was never placed; its verdicts stay in the decision count.
        return state.report(trace: trace, tenants: tenants, search: policy.search, arrivalScale: arrivalScale)
    }

    private func submit(_ pod: Int, at now: Timestamp, into state: inout SimulationState) throws(CaduceusError) {
        let entry = trace.pods[pod]
        let spec = JobSpec(
            tenant: Self.tenantID(Self.tenant(ofPod: entry.name, tenants: tenants)),
            project: ProjectID(unchecked: "prj-trace"), jobClass: entry.jobClass, gpusPerNode: entry.gpus,
            allowedModels: entry.allowedModels, command: "trace", preemptible: entry.jobClass == .training)
        let job = QueuedJob(id: Self.jobID(pod), spec: spec, submittedAt: now)
        if state.scheduler.infeasibility(of: job) != nil {
            state.refused += 1
            return
        }
        try state.scheduler.submit(job)
    }

    private func pass(at now: Timestamp, time: Int64, _ state: inout SimulationState) {
        var gaps: [UInt64] = []
        gaps.reserveCapacity(state.scheduler.queuedCount)
        let start = clock()
        var last = start
        let decisions = state.scheduler.schedule(at: now) { _ in
            let tick = clock()
            gaps.append(tick - last)
            last = tick
        }
        state.schedulingNanoseconds += clock() - start
        for gap in gaps { state.latency.record(gap) }
        state.decisions += decisions.count
        for decision in decisions {
            switch decision {
            case .place(let job, _):
                let pod = Self.podIndex(job)
                if state.firstPlaced[pod] == nil {
                    state.firstPlaced[pod] = time
                    state.queueing[trace.pods[pod].jobClass, default: (0, 0)].total += time - state.arrivalTimes[pod]
                    state.queueing[trace.pods[pod].jobClass, default: (0, 0)].count += 1
                }
                state.generation[pod] += 1
                state.completions.push(time + max(1, trace.pods[pod].runtime), pod, state.generation[pod])
            case .preempt(_, let victims):
                state.preemptions += victims.count
                for victim in victims { state.generation[Self.podIndex(victim.job)] += 1 }
            case .pending:
                break
            }
        }
    }

    static func tenantID(_ index: Int) -> TenantID { TenantID(unchecked: "tnt-\(index)") }
    static func jobID(_ pod: Int) -> JobID { JobID(unchecked: "job-\(pod)") }
    static func podIndex(_ job: JobID) -> Int { Int(job.rawValue.dropFirst(4)) ?? 0 }
}

/// What a simulation reports.
public struct SimulationReport: Codable, Sendable {
    public var search: String
    public var tenants: Int
    /// The factor arrival times were multiplied by.
    public var arrivalScale: Double
    public var nodes: Int
    public var gpus: Int
    /// Pods in the trace that need GPUs.
    public var pods: Int
    /// Pods left out because they need no GPU.
    public var podsWithoutGPUs: Int
    /// Pods placed at least once.
    public var podsPlaced: Int
    /// Pods never placed: refused as impossible on their tenant's nodes, or still waiting at the end.
    public var podsNeverPlaced: Int
    /// Of those, refused on arrival.
    public var podsRefused: Int
    /// Jobs preempted.
    public var preemptions: Int
    /// Allocated over schedulable GPUs, averaged over simulated time.
    public var meanGPUAllocationRatio: Double
    /// Mean wait from arrival to first placement, in seconds, per class.
    public var meanQueueingDelaySeconds: [String: Double]
    /// Share of free GPUs on partly used nodes, averaged over simulated time.
    public var fragmentation: Double
    /// Decisions made (placements, preemptions and pending verdicts).
    public var decisions: Int
    /// Decisions per second of scheduler time.
    public var decisionsPerSecond: Double
    /// Time per decision.
    public var decisionLatencyMicroseconds: LatencySummary
    /// Simulated time covered, in seconds.
    public var simulatedSeconds: Int64
}

/// The running state of a simulation.
struct SimulationState {
    var scheduler: Scheduler
    var completions = CompletionHeap()
    var arrivalTimes: [Int64] = []
    var generation: [Int]
    var firstPlaced: [Int64?]
    var queueing: [JobClass: (total: Int64, count: Int)] = [:]
    var refused = 0
    var preemptions = 0
    var decisions = 0
    var latency = LatencyHistogram()
    var schedulingNanoseconds: UInt64 = 0
    var allocationIntegral = 0.0
    var fragmentationIntegral = 0.0
    var span: Int64 = 0

    init(scheduler: Scheduler, pods: Int) {
        self.scheduler = scheduler
        generation = Array(repeating: 0, count: pods)
        firstPlaced = Array(repeating: nil, count: pods)
    }

    /// Adds the interval [from, until) to the time-weighted averages.
    mutating func accumulate(until: Int64, from: Int64) {
        let width = Double(until - from)
        guard width > 0 else { return }
        let totals = scheduler.gpuTotals
        if totals.schedulable > 0 {
            allocationIntegral += width * Double(totals.allocated) / Double(totals.schedulable)
        }
        fragmentationIntegral += width * scheduler.fragmentation
        span += until - from
    }

    func report(trace: AlibabaTrace, tenants: Int, search: PlacementSearch, arrivalScale: Double) -> SimulationReport {
        let placed = firstPlaced.lazy.filter { $0 != nil }.count
        var delays: [String: Double] = [:]
        for (jobClass, entry) in queueing where entry.count > 0 {
            delays[jobClass.rawValue] = Double(entry.total) / Double(entry.count)
        }
        let seconds = Double(schedulingNanoseconds) / 1e9
        return SimulationReport(
            search: search.rawValue, tenants: tenants, arrivalScale: arrivalScale, nodes: trace.nodes.count,
            gpus: trace.nodes.reduce(0) { $0 + $1.gpus }, pods: trace.pods.count,
            podsWithoutGPUs: trace.podsWithoutGPUs, podsPlaced: placed, podsNeverPlaced: trace.pods.count - placed,
            podsRefused: refused, preemptions: preemptions,
            meanGPUAllocationRatio: span > 0 ? allocationIntegral / Double(span) : 0, meanQueueingDelaySeconds: delays,
            fragmentation: span > 0 ? fragmentationIntegral / Double(span) : 0, decisions: decisions,
            decisionsPerSecond: seconds > 0 ? Double(decisions) / seconds : 0,
            decisionLatencyMicroseconds: LatencySummary(latency), simulatedSeconds: span)
    }
}

/// Pending completions, earliest first (ties: lower pod first).
struct CompletionHeap {
    struct Entry {
        var time: Int64
        var pod: Int
        var generation: Int
    }

    private var items: [Entry] = []

    var isEmpty: Bool { items.isEmpty }
    var peek: Entry? { items.first }

    mutating func push(_ time: Int64, _ pod: Int, _ generation: Int) {
        items.append(Entry(time: time, pod: pod, generation: generation))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() {
        let last = items.removeLast()
        guard !items.isEmpty else { return }
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            var smallest = parent
            if left < items.count && less(items[left], items[smallest]) { smallest = left }
            if left + 1 < items.count && less(items[left + 1], items[smallest]) { smallest = left + 1 }
            guard smallest != parent else { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }

    private func less(_ a: Entry, _ b: Entry) -> Bool { (a.time, a.pod) < (b.time, b.pod) }
}
