import CaduceusCore
import Scheduling
import Testing

/// Random clusters and queues, driven through passes while every invariant is checked after each one.
struct RandomWorld {
    var fixture: Fixture
    var random: SeededRandom
    var nodeTenant: [NodeID: TenantID] = [:]
    var nodeModel: [NodeID: String] = [:]
    var nodeResidency: [NodeID: Residency] = [:]
    var nodeGPUs: [NodeID: Int] = [:]
    var jobs: [JobID: QueuedJob] = [:]
    var running: [JobID: (job: QueuedJob, since: Timestamp, assignments: [GPUAssignment])] = [:]
    var quotas: [ProjectQuota] = []
    let models = ["H200", "A100", "T4"]

    init(seed: UInt64, search: PlacementSearch) throws {
        fixture = Fixture(search: search)
        random = SeededRandom(seed: seed)
        let nodeCount = Int.random(in: 4...40, using: &random)
        for n in 0..<nodeCount {
            let tenant = Int.random(in: 0...3, using: &random)
            let gpus = [1, 2, 4, 8].randomElement(using: &random)!
            let model = models.randomElement(using: &random)!
            // A fabric lies in one site, and a site in one region: fabric f is in site f / 2, region f / 4.
            let fabric = Int.random(in: 0...7, using: &random)
            let residency = fabric < 4 ? Fixture.us : Fixture.eu
            try fixture.node(
                n, tenant: tenant, gpus: gpus, model: model, fabric: fabric, site: fabric / 2, residency: residency)
            let id = NodeID(unchecked: "node-\(n)")
            nodeTenant[id] = Fixture.tenant(tenant)
            nodeModel[id] = model
            nodeResidency[id] = residency
            nodeGPUs[id] = gpus
        }
        for tenant in 0...3 {
            for project in 1...3 where Bool.random(using: &random) {
                let guaranteed = Int.random(in: 0...12, using: &random)
                let quota = ProjectQuota(
                    guaranteedGPUs: guaranteed, maximumGPUs: guaranteed + Int.random(in: 0...24, using: &random))
                fixture.scheduler.setQuota(quota, tenant: Fixture.tenant(tenant), project: Fixture.project(project))
                quotas.append(quota)
            }
        }
    }

    mutating func submitRandomJobs() throws {
        for _ in 0..<Int.random(in: 0...12, using: &random) {
            let job = fixture.job(
                tenant: Int.random(in: 0...3, using: &random), project: Int.random(in: 1...3, using: &random),
                JobClass.allCases.randomElement(using: &random)!, gpus: [1, 1, 2, 4, 8].randomElement(using: &random)!,
                nodes: [1, 1, 1, 2, 3].randomElement(using: &random)!,
                models: Bool.random(using: &random) ? [] : [models.randomElement(using: &random)!],
                residency: Int.random(in: 0...3, using: &random) == 0 ? Fixture.eu : nil,
                preemptible: Int.random(in: 0...4, using: &random) > 0,
                minRuntime: Int.random(in: 0...3, using: &random))
            if fixture.scheduler.infeasibility(of: job) == nil {
                try fixture.submit(job)
                jobs[job.id] = job
            }
        }
    }

    mutating func finishSomeJobs() {
        for id in running.keys.sorted() where Int.random(in: 0...5, using: &random) == 0 {
            fixture.scheduler.remove(job: id, at: fixture.now)
            running[id] = nil
            jobs[id] = nil
        }
    }

    /// Runs one pass and checks every invariant against what the world knows.
    mutating func passAndCheck() -> [Decision] {
        let now = fixture.now.adding(milliseconds: 1000)
        let decisions = fixture.pass()
        var preempting: JobID?
        for decision in decisions {
            switch decision {
            case .place(let id, let assignments):
                let job = jobs[id]!
                #expect(running[id] == nil, "job placed twice")
                #expect(assignments.count == job.nodeCount, "gang not whole")
                #expect(Set(assignments.map(\.node)).count == job.nodeCount, "gang reuses a node")
                for part in assignments {
                    #expect(nodeTenant[part.node] == job.tenant, "tenant isolation broken")
                    #expect(part.gpus.count == job.gpusPerNode)
                    #expect(job.allowedModels.isEmpty || job.allowedModels.contains(nodeModel[part.node]!))
                    #expect(job.residency == nil || job.residency == nodeResidency[part.node])
                    #expect(part.gpus.allSatisfy { (0..<nodeGPUs[part.node]!).contains($0) })
                }
                if let preempting { #expect(preempting == id) }
                preempting = nil
                running[id] = (job, now, assignments)
            case .preempt(let id, let victims):
                let job = jobs[id]!
                preempting = id
                for victim in victims {
                    let held = running[victim.job]!
                    #expect(held.job.preemptible, "a non-preemptible job was preempted")
                    #expect(
                        now.millisecondsSinceEpoch >= held.since.millisecondsSinceEpoch
                            + held.job.minRuntimeMilliseconds, "a job was preempted before its minimum run time")
                    #expect(held.job.tenant == job.tenant)
                    #expect(held.job.jobClass <= job.jobClass, "a higher class was preempted")
                    #expect(victim.requeued == (held.job.jobClass == .training))
                    running[victim.job] = nil
                    if !victim.requeued { jobs[victim.job] = nil }
                }
            case .pending:
                break
            }
        }
        // No GPU is held twice.
        var held = Set<String>()
        for entry in running.values {
            for part in entry.assignments {
                for gpu in part.gpus { #expect(held.insert("\(part.node)/\(gpu)").inserted, "GPU held twice") }
            }
        }
        // The scheduler's running counters agree with a count from scratch.
        var heldOnNode: [NodeID: Int] = [:]
        for entry in running.values {
            for part in entry.assignments { heldOnNode[part.node, default: 0] += part.gpus.count }
        }
        let free = nodeGPUs.reduce(0) { $0 + $1.value - heldOnNode[$1.key, default: 0] }
        let onEmpty = nodeGPUs.filter { heldOnNode[$0.key] == nil }.reduce(0) { $0 + $1.value }
        let fragmentation = free == 0 ? 0 : Double(free - onEmpty) / Double(free)
        #expect(abs(fixture.scheduler.fragmentation - fragmentation) < 1e-9)
        #expect(fixture.scheduler.gpuTotals.allocated == nodeGPUs.values.reduce(0, +) - free)
        // Projects stay within their maximum.
        for tenant in 0...3 {
            for project in 1...3 {
                let usage = fixture.scheduler.usage(tenant: Fixture.tenant(tenant), project: Fixture.project(project))
                #expect(usage.inUse <= usage.quota.maximumGPUs, "project over its maximum")
                let counted = running.values.filter {
                    $0.job.tenant == Fixture.tenant(tenant) && $0.job.project == Fixture.project(project)
                }.reduce(0) { $0 + $1.job.totalGPUs }
                #expect(usage.inUse == counted)
            }
        }
        return decisions
    }
}

@Suite struct SchedulerPropertyTests {
    @Test(arguments: [PlacementSearch.indexed, .firstFitScan])
    func invariantsHoldOverRandomClustersAndQueues(search: PlacementSearch) throws {
        var counts: [String: Int] = [:]
        for seed in UInt64(1)...60 {
            var world = try RandomWorld(seed: seed, search: search)
            for _ in 0..<12 {
                try world.submitRandomJobs()
                for decision in world.passAndCheck() {
                    switch decision {
                    case .place(_, let parts): counts[parts.count > 1 ? "gang" : "place", default: 0] += 1
                    case .preempt: counts["preempt", default: 0] += 1
                    case .pending(_, let reason):
                        counts[String(describing: reason).prefix(12).description, default: 0] += 1
                    }
                }
                world.finishSomeJobs()
            }
        }
        // The worlds must exercise every path, or the checks above prove little.
        #expect(counts["place", default: 0] > 200 && counts["gang", default: 0] > 20, "\(counts)")
        #expect(counts["preempt", default: 0] > 10, "\(counts)")
        #expect(counts.count >= 5, "\(counts)")
    }

    @Test func sameInputsGiveTheSameDecisions() throws {
        for seed in UInt64(100)...120 {
            var first = try RandomWorld(seed: seed, search: .indexed)
            var second = try RandomWorld(seed: seed, search: .indexed)
            for _ in 0..<8 {
                try first.submitRandomJobs()
                try second.submitRandomJobs()
                #expect(first.passAndCheck() == second.passAndCheck())
                first.finishSomeJobs()
                second.finishSomeJobs()
            }
        }
    }
}
