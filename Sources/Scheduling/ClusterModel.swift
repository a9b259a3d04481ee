import CaduceusCore

/// A node as the scheduler sees it: whose it is, where it is, what GPUs it has, whether it takes work.
public struct NodeInfo: Hashable, Sendable {
    /// The node.
    public var id: NodeID
    /// Its tenant, if assigned.
    public var tenant: TenantID?
    /// The residency of its region.
    public var residency: Residency
    /// Its site.
    public var site: SiteID
    /// Its fabric.
    public var fabric: FabricID
    /// The model of its GPUs (a node's GPUs are all of one model).
    public var gpuModel: String
    /// How many GPUs it has (1–64).
    public var gpuCount: Int
    /// Whether new work may be placed on it (available, with a tenant).
    public var schedulable: Bool

    /// Creates a node description.
    public init(
        id: NodeID, tenant: TenantID?, residency: Residency, site: SiteID, fabric: FabricID, gpuModel: String,
        gpuCount: Int, schedulable: Bool
    ) {
        self.id = id
        self.tenant = tenant
        self.residency = residency
        self.site = site
        self.fabric = fabric
        self.gpuModel = gpuModel
        self.gpuCount = gpuCount
        self.schedulable = schedulable
    }
}

/// A job waiting for GPUs, with what the scheduler needs to know of it.
public struct QueuedJob: Hashable, Sendable {
    /// The job.
    public var id: JobID
    /// Its tenant.
    public var tenant: TenantID
    /// Its project.
    public var project: ProjectID
    /// Its class.
    public var jobClass: JobClass
    /// GPUs per node.
    public var gpusPerNode: Int
    /// Nodes at once.
    public var nodeCount: Int
    /// Allowed GPU models; empty: any.
    public var allowedModels: [String]
    /// Required residency, if any.
    public var residency: Residency?
    /// Whether it may be preempted.
    public var preemptible: Bool
    /// How long it must run before it may be preempted, in milliseconds.
    public var minRuntimeMilliseconds: Int64
    /// When it was submitted; it orders jobs of one project and class.
    public var submittedAt: Timestamp

    /// Creates a queued job from its spec.
    public init(id: JobID, spec: JobSpec, submittedAt: Timestamp) {
        self.id = id
        self.tenant = spec.tenant
        self.project = spec.project
        self.jobClass = spec.jobClass
        self.gpusPerNode = spec.gpusPerNode
        self.nodeCount = spec.nodeCount
        self.allowedModels = spec.allowedModels
        self.residency = spec.residency
        self.preemptible = spec.preemptible
        self.minRuntimeMilliseconds = Int64(spec.minRuntimeSeconds) * 1000
        self.submittedAt = submittedAt
    }

    /// GPUs in all.
    public var totalGPUs: Int { gpusPerNode * nodeCount }
}

/// The GPUs a job holds on one node.
public struct GPUAssignment: Hashable, Sendable, Codable {
    /// The node.
    public var node: NodeID
    /// GPU indexes on that node, ascending.
    public var gpus: [Int]

    /// Creates an assignment.
    public init(node: NodeID, gpus: [Int]) {
        self.node = node
        self.gpus = gpus
    }
}

/// A job that lost its GPUs to a more important one.
public struct Victim: Hashable, Sendable {
    /// The preempted job.
    public var job: JobID
    /// Whether it went back to the queue (training does); otherwise it ended as preempted.
    public var requeued: Bool

    /// Creates a victim.
    public init(job: JobID, requeued: Bool) {
        self.job = job
        self.requeued = requeued
    }
}

/// What the scheduler decided for one job in one pass.
public enum Decision: Hashable, Sendable {
    /// The job gets these GPUs now.
    case place(JobID, [GPUAssignment])
    /// These jobs were preempted for the job; a `place` for it follows in the same pass.
    case preempt(JobID, victims: [Victim])
    /// The job waits; the reason says why.
    case pending(JobID, PendingReason)

    /// The job the decision is about.
    public var job: JobID {
        switch self {
        case .place(let job, _), .preempt(let job, _), .pending(let job, _): job
        }
    }
}

/// How the scheduler searches for nodes.
public enum PlacementSearch: String, Sendable, Codable {
    /// Free-GPU buckets per pool, best fit: the product's scheduler.
    case indexed
    /// First fit by scanning every node: the naive reference the benchmark compares against.
    case firstFitScan = "first-fit-scan"
}

/// Settings of the scheduler.
public struct SchedulingPolicy: Hashable, Sendable {
    /// Half-life of past usage in fair share, in milliseconds (default one day).
    public var usageHalfLifeMilliseconds: Int64
    /// How nodes are searched.
    public var search: PlacementSearch

    /// Creates a policy.
    public init(usageHalfLifeMilliseconds: Int64 = 86_400_000, search: PlacementSearch = .indexed) {
        self.usageHalfLifeMilliseconds = max(1, usageHalfLifeMilliseconds)
        self.search = search
    }
}
