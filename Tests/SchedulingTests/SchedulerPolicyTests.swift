import CaduceusCore
import Scheduling
import Testing

@Suite struct SchedulerPolicyTests {
    @Test func inferencePreemptsTrainingWhichIsRequeued() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 8)
        let training = try f.submit(f.job(tenant: 1, .training, gpus: 8))
        #expect(f.pass().placement(of: training) != nil)
        let inference = try f.submit(f.job(tenant: 1, .inference, gpus: 2, preemptible: false))
        let decisions = f.pass()
        #expect(decisions.first?.victims == [Victim(job: training, requeued: true)])
        #expect(decisions.placement(of: inference)?.first?.gpus == [0, 1])
        #expect(f.scheduler.isQueued(training))
        // The requeued job waits, and cannot preempt the inference job that is not preemptible.
        let later = f.pass()
        #expect(later.reason(of: training) != nil && later.allSatisfy { $0.victims == nil })
    }

    @Test func batchVictimsEndAndProtectedJobsAreNeverPreempted() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 4)
        try f.node(2, tenant: 1, gpus: 4)
        let batch = try f.submit(f.job(tenant: 1, .batch, gpus: 4))
        let young = try f.submit(f.job(tenant: 1, .training, gpus: 4, minRuntime: 3600))
        _ = f.pass()
        let inference = try f.submit(f.job(tenant: 1, .inference, gpus: 4))
        let decisions = f.pass()
        #expect(decisions.first?.victims == [Victim(job: batch, requeued: false)])
        #expect(decisions.placement(of: inference) != nil)
        #expect(!f.scheduler.isQueued(batch) && f.scheduler.assignments(of: young) != nil)
        // Nothing else may be preempted: the training job is within its minimum run time.
        let blocked = try f.submit(f.job(tenant: 1, .inference, gpus: 4))
        guard case .capacity(let shortfall) = f.pass().reason(of: blocked) else {
            Issue.record("expected a capacity reason")
            return
        }
        #expect(shortfall.preemption == .noEligibleVictims)
        #expect(String(describing: PendingReason.capacity(shortfall)).contains("no running job of a lower class"))
    }

    @Test func fewestVictimsAndWholeGangs() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 4, fabric: 0)
        try f.node(2, tenant: 1, gpus: 4, fabric: 0)
        try f.node(3, tenant: 1, gpus: 4, fabric: 1)
        let gang = try f.submit(f.job(tenant: 1, .training, gpus: 4, nodes: 2))
        var small: [JobID] = []
        for _ in 0..<4 { small.append(try f.submit(f.job(tenant: 1, .training, gpus: 1))) }
        let decisions = f.pass()
        let gangNodes = Set(decisions.placement(of: gang)?.map(\.node) ?? [])
        #expect(
            gangNodes == [NodeID(unchecked: "node-1"), NodeID(unchecked: "node-2")], "the gang keeps to one fabric")
        #expect(small.allSatisfy { decisions.placement(of: $0)?.first?.node == NodeID(unchecked: "node-3") })
        // Four GPUs for inference: preempting the one gang (one victim, both its nodes freed) beats four jobs.
        let inference = try f.submit(f.job(tenant: 1, .inference, gpus: 4))
        let after = f.pass()
        #expect(after.first?.victims == [Victim(job: gang, requeued: true)])
        #expect(after.placement(of: inference) != nil)
        #expect(small.allSatisfy { f.scheduler.assignments(of: $0) != nil })
    }

    @Test func bestFitKeepsWholeNodesFree() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 8)
        try f.node(2, tenant: 1, gpus: 8)
        let first = try f.submit(f.job(tenant: 1, gpus: 4))
        _ = f.pass()
        let firstNode = f.scheduler.assignments(of: first)!.first!.node
        let second = try f.submit(f.job(tenant: 1, gpus: 2))
        #expect(f.pass().placement(of: second)?.first?.node == firstNode)
        let whole = try f.submit(f.job(tenant: 1, gpus: 8))
        #expect(f.pass().placement(of: whole) != nil)
        #expect(f.scheduler.fragmentation == 1.0)
    }

    @Test func inferenceNeverWaitsBehindTraining() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 2)
        var training: [JobID] = []
        for _ in 0..<10 { training.append(try f.submit(f.job(tenant: 1, .training, gpus: 1))) }
        let inference = try f.submit(f.job(tenant: 1, .inference, gpus: 2))
        let decisions = f.pass()
        #expect(decisions.first?.job == inference && decisions.placement(of: inference) != nil)
        #expect(training.allSatisfy { decisions.reason(of: $0) != nil })
    }

    @Test func tenantsNeverShareNodes() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 8)
        try f.node(2, tenant: 2, gpus: 8)
        let ours = try f.submit(f.job(tenant: 1, gpus: 8))
        let more = try f.submit(f.job(tenant: 1, gpus: 1))
        let decisions = f.pass()
        #expect(decisions.placement(of: ours)?.first?.node == NodeID(unchecked: "node-1"))
        #expect(decisions.reason(of: more) != nil, "tenant 2's idle node must stay out of reach")
    }

    @Test func quotaMaximumAndItsWords() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 8)
        f.scheduler.setQuota(
            .init(guaranteedGPUs: 2, maximumGPUs: 4), tenant: Fixture.tenant(1), project: Fixture.project(1))
        try f.submit(f.job(tenant: 1, gpus: 4))
        let over = try f.submit(f.job(tenant: 1, gpus: 1))
        let reason = f.pass().reason(of: over)
        #expect(reason == .quotaMaximum(project: Fixture.project(1), inUse: 4, maximum: 4, requested: 1))
        #expect(reason?.description.hasPrefix("project quota reached: 4 of 4 GPUs in use") == true)
    }

    @Test func borrowingIsReservedForWaitingOwnersAndReclaimed() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 8)
        let (owner, borrower) = (Fixture.project(1), Fixture.project(2))
        f.scheduler.setQuota(.init(guaranteedGPUs: 6, maximumGPUs: 8), tenant: Fixture.tenant(1), project: owner)
        f.scheduler.setQuota(.init(guaranteedGPUs: 2, maximumGPUs: 8), tenant: Fixture.tenant(1), project: borrower)
        // The owner is idle: the borrower may take its guaranteed GPUs.
        let borrowed = try f.submit(f.job(tenant: 1, project: 2, .training, gpus: 6))
        #expect(f.pass().placement(of: borrowed) != nil)
        // The owner needs them back: the borrower's job is preempted although it is of the same class.
        let owned = try f.submit(f.job(tenant: 1, project: 1, .training, gpus: 6))
        let decisions = f.pass()
        #expect(decisions.first?.victims == [Victim(job: borrowed, requeued: true)])
        #expect(decisions.placement(of: owned) != nil)
        // The owner may not borrow the borrower's own guarantee while the borrower waits for it…
        let beyond = try f.submit(f.job(tenant: 1, project: 1, .batch, gpus: 2))
        let later = f.pass()
        guard case .borrowingReserved(_, _, _, _, _, let holders) = later.reason(of: beyond) else {
            Issue.record("expected a borrowing reason")
            return
        }
        #expect(holders == [borrower])
        // …which the borrower gets within its guarantee.
        let within = try f.submit(f.job(tenant: 1, project: 2, .training, gpus: 2))
        #expect(f.pass().placement(of: within) != nil)
    }

    @Test func borrowingReasonNamesTheOwner() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 8)
        f.scheduler.setQuota(
            .init(guaranteedGPUs: 8, maximumGPUs: 8), tenant: Fixture.tenant(1), project: Fixture.project(1))
        f.scheduler.setQuota(
            .init(guaranteedGPUs: 0, maximumGPUs: 8), tenant: Fixture.tenant(1), project: Fixture.project(2))
        // The owner's waiting job is larger than the node can hold next to what it has, so it waits too.
        try f.submit(f.job(tenant: 1, project: 1, .training, gpus: 6))
        _ = f.pass()
        try f.submit(f.job(tenant: 1, project: 1, .training, gpus: 8))
        let borrower = try f.submit(f.job(tenant: 1, project: 2, .training, gpus: 2))
        let reason = f.pass().reason(of: borrower)
        guard case .borrowingReserved(_, _, _, _, let borrowable, let holders) = reason else {
            Issue.record("expected a borrowing reason, got \(String(describing: reason))")
            return
        }
        #expect(borrowable == 0 && holders == [Fixture.project(1)])
        #expect(reason!.description.contains("reserved for project prj-1"))
    }

    @Test func fairShareServesTheLighterProjectFirst() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 4)
        // Project 1 used the node for a while; then both ask for it.
        let heavy = try f.submit(f.job(tenant: 1, project: 1, gpus: 4))
        _ = f.pass()
        _ = f.pass(advancing: 3600)
        f.scheduler.remove(job: heavy, at: f.now)
        let again = try f.submit(f.job(tenant: 1, project: 1, gpus: 4))
        let light = try f.submit(f.job(tenant: 1, project: 2, gpus: 4))
        let decisions = f.pass()
        #expect(decisions.placement(of: light) != nil && decisions.reason(of: again) != nil)
    }

    @Test func constraintsOnModelAndResidency() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 8, model: "T4", fabric: 0, residency: Fixture.eu)
        try f.node(2, tenant: 1, gpus: 8, model: "H200", fabric: 1, residency: Fixture.us)
        let t4 = try f.submit(f.job(tenant: 1, gpus: 1, models: ["T4"]))
        let us = try f.submit(f.job(tenant: 1, gpus: 1, residency: Fixture.us))
        let decisions = f.pass()
        #expect(decisions.placement(of: t4)?.first?.node == NodeID(unchecked: "node-1"))
        #expect(decisions.placement(of: us)?.first?.node == NodeID(unchecked: "node-2"))
    }

    @Test func jobsThatCanNeverRunAreNamed() throws {
        var f = Fixture()
        #expect(f.scheduler.infeasibility(of: f.job(tenant: 1)) == .tenantHasNoNodes(Fixture.tenant(1)))
        try f.node(1, tenant: 1, gpus: 8, model: "T4", residency: Fixture.eu)
        try f.node(2, tenant: 1, gpus: 4, model: "T4", fabric: 1, residency: Fixture.eu, schedulable: false)
        #expect(
            f.scheduler.infeasibility(of: f.job(tenant: 1, models: ["H200"]))
                == .noAllowedModel(allowed: ["H200"], tenantHas: ["T4"]))
        #expect(
            f.scheduler.infeasibility(of: f.job(tenant: 1, residency: Fixture.us))
                == .residencyUnavailable(Fixture.us, tenantHas: [Fixture.eu]))
        let tooWide = f.scheduler.infeasibility(of: f.job(tenant: 1, gpus: 16))
        #expect(tooWide?.description == "the job needs 16 GPUs on one node; the tenant's largest matching node has 8")
        #expect(f.scheduler.infeasibility(of: f.job(tenant: 1, gpus: 8, nodes: 2)) != nil)
        // A cordoned node still counts: it may come back.
        #expect(f.scheduler.infeasibility(of: f.job(tenant: 1, gpus: 4, nodes: 2)) == nil)
        f.scheduler.setQuota(
            .init(guaranteedGPUs: 0, maximumGPUs: 2), tenant: Fixture.tenant(1), project: Fixture.project(1))
        #expect(
            f.scheduler.infeasibility(of: f.job(tenant: 1, gpus: 4))
                == .overProjectMaximum(project: Fixture.project(1), requested: 4, maximum: 2))
    }

    @Test func restoreRebuildsRunningJobsAndRefusesConflicts() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 4)
        let job = f.job(tenant: 1, gpus: 2)
        try f.scheduler.restore(
            job, on: [GPUAssignment(node: NodeID(unchecked: "node-1"), gpus: [1, 2])], since: f.now)
        #expect(f.scheduler.assignments(of: job.id)?.first?.gpus == [1, 2])
        let clash = f.job(tenant: 1, gpus: 1)
        #expect(throws: CaduceusError.self) {
            try f.scheduler.restore(
                clash, on: [GPUAssignment(node: NodeID(unchecked: "node-1"), gpus: [2])], since: f.now)
        }
        let next = try f.submit(f.job(tenant: 1, gpus: 2))
        #expect(f.pass().placement(of: next)?.first?.gpus == [0, 3])
    }
}

@Suite struct SchedulerEvictionTests {
    @Test func evictingANodeRequeuesTrainingAndEndsTheRest() throws {
        var f = Fixture()
        try f.node(1, tenant: 1, gpus: 8)
        let training = try f.submit(f.job(tenant: 1, .training, gpus: 4))
        let inference = try f.submit(f.job(tenant: 1, .inference, gpus: 4, preemptible: false))
        _ = f.pass()
        let victims = f.scheduler.evict(node: NodeID(unchecked: "node-1"), at: f.now)
        #expect(Set(victims) == [Victim(job: training, requeued: true), Victim(job: inference, requeued: false)])
        #expect(f.scheduler.isQueued(training) && f.scheduler.assignments(of: inference) == nil)
        #expect(!f.scheduler.isQueued(inference) && f.scheduler.gpuTotals.allocated == 0)
        // The requeued job is placed again by the next pass, once the node takes work.
        #expect(f.pass().placement(of: training) != nil)
    }
}
