import CaduceusCore
import Scheduling

/// Builds clusters and jobs for scheduler tests with short names.
struct Fixture {
    var scheduler: Scheduler
    var now = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)
    var submitted = 0

    init(search: PlacementSearch = .indexed) {
        scheduler = Scheduler(policy: SchedulingPolicy(search: search))
    }

    static func tenant(_ n: Int) -> TenantID { TenantID(unchecked: "tnt-\(n)") }
    static func project(_ n: Int) -> ProjectID { ProjectID(unchecked: "prj-\(n)") }
    static let us = Residency(rawValue: "US")!
    static let eu = Residency(rawValue: "EU")!

    mutating func node(
        _ n: Int, tenant: Int?, gpus: Int = 8, model: String = "H200", fabric: Int = 0, site: Int = 0,
        residency: Residency = Fixture.us, schedulable: Bool = true
    ) throws {
        try scheduler.upsert(
            NodeInfo(
                id: NodeID(unchecked: "node-\(n)"), tenant: tenant.map(Fixture.tenant), residency: residency,
                site: SiteID(unchecked: "site-\(site)"), fabric: FabricID(unchecked: "fab-\(fabric)"), gpuModel: model,
                gpuCount: gpus, schedulable: schedulable))
    }

    mutating func job(
        tenant: Int, project: Int = 1, _ jobClass: JobClass = .training, gpus: Int = 1, nodes: Int = 1,
        models: [String] = [], residency: Residency? = nil, preemptible: Bool = true, minRuntime: Int = 0
    ) -> QueuedJob {
        submitted += 1
        let spec = JobSpec(
            tenant: Fixture.tenant(tenant), project: Fixture.project(project), jobClass: jobClass, gpusPerNode: gpus,
            nodeCount: nodes, allowedModels: models, residency: residency, command: "train",
            minRuntimeSeconds: minRuntime, preemptible: preemptible)
        return QueuedJob(
            id: JobID(unchecked: "job-\(String(submitted + 100000))"), spec: spec,
            submittedAt: now.adding(milliseconds: Int64(submitted)))
    }

    @discardableResult
    mutating func submit(_ job: QueuedJob) throws -> JobID {
        try scheduler.submit(job)
        return job.id
    }

    mutating func pass(advancing seconds: Int64 = 1) -> [Decision] {
        now = now.adding(milliseconds: seconds * 1000)
        return scheduler.schedule(at: now)
    }
}

extension Decision {
    var placement: [GPUAssignment]? {
        if case .place(_, let assignments) = self { return assignments }
        return nil
    }

    var victims: [Victim]? {
        if case .preempt(_, let victims) = self { return victims }
        return nil
    }

    var reason: PendingReason? {
        if case .pending(_, let reason) = self { return reason }
        return nil
    }
}

extension Array where Element == Decision {
    func placement(of job: JobID) -> [GPUAssignment]? {
        for decision in self where decision.job == job {
            if let placement = decision.placement { return placement }
        }
        return nil
    }

    func reason(of job: JobID) -> PendingReason? {
        first { $0.job == job }?.reason
    }
}
