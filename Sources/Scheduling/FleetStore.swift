import CaduceusCore

/// Where regions, sites, fabrics, nodes, quotas and jobs are kept.
///
/// Implemented in `Persistence` over SQL (SQLite embedded, PostgreSQL distributed), on the same connection
/// and lock as the identity store. Methods that write throw `CaduceusError` with code `store.conflict` when
/// a unique name is taken. Tenants and projects live in the identity store; they are never deleted, so a
/// use case may check that one exists before it opens a fleet transaction.
public protocol FleetStore: Sendable {
    /// Runs `body` atomically: everything it writes commits together, or nothing does.
    func transaction<T: Sendable>(_ body: @Sendable (any FleetStore) async throws -> T) async throws -> T

    // Regions, sites and fabrics
    func insertRegion(_ region: RegionRecord) async throws
    func region(id: RegionID) async throws -> RegionRecord?
    func regions(after cursor: String?, limit: Int) async throws -> Page<RegionRecord>
    func insertSite(_ site: SiteRecord) async throws
    func site(id: SiteID) async throws -> SiteRecord?
    func sites(in region: RegionID?, after cursor: String?, limit: Int) async throws -> Page<SiteRecord>
    func insertFabric(_ fabric: FabricRecord) async throws
    func fabric(id: FabricID) async throws -> FabricRecord?
    func fabrics(in site: SiteID?, after cursor: String?, limit: Int) async throws -> Page<FabricRecord>

    // Nodes
    func insertNode(_ node: NodeRecord) async throws
    /// Writes a node's lifecycle fields (state, tenant, next tenant, held work, last sanitisation), its GPUs
    /// and since when it has been unreachable.
    func updateNode(_ node: NodeRecord) async throws
    func node(id: NodeID) async throws -> NodeRecord?
    /// Nodes assigned to `tenant` (or being moved to it), or all nodes when nil.
    func nodes(of tenant: TenantID?, after cursor: String?, limit: Int) async throws -> Page<NodeRecord>
    /// Every node that is not retired, with the residency of its region (for the scheduler at start).
    func activeNodes() async throws -> [(node: NodeRecord, residency: Residency)]

    /// Keeps a node's sanitisation.
    func insertSanitization(_ entry: SanitizationEntry) async throws
    /// A node's sanitisations.
    func sanitizations(of node: NodeID, after cursor: String?, limit: Int) async throws -> Page<SanitizationEntry>

    // Remote node agents
    /// Creates or replaces a node's agent record.
    func saveAgent(_ agent: AgentRecord) async throws
    func agent(node: NodeID) async throws -> AgentRecord?
    /// The agent whose unused join token hashes to `hash`.
    func agent(joinTokenHash hash: String) async throws -> AgentRecord?
    /// Every agent that has enrolled (holds a certificate).
    func enrolledAgents() async throws -> [AgentRecord]

    // Quotas
    func setQuota(_ quota: QuotaRecord) async throws
    func quota(project: ProjectID) async throws -> QuotaRecord?
    func quotas(of tenant: TenantID?, after cursor: String?, limit: Int) async throws -> Page<QuotaRecord>
    /// Every quota (for the scheduler at start).
    func allQuotas() async throws -> [QuotaRecord]

    // Jobs
    func insertJob(_ job: JobRecord) async throws
    /// Writes a job's state, assignments, times, preemptions and reason (the spec never changes).
    func updateJob(_ job: JobRecord) async throws
    func job(id: JobID) async throws -> JobRecord?
    func jobs(matching filter: JobFilter, after cursor: String?, limit: Int) async throws -> Page<JobRecord>
    /// Every job not in a final state, oldest submission first (for the scheduler at start).
    func unfinishedJobs() async throws -> [JobRecord]
}
