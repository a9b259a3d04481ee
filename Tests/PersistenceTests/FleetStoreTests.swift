import CaduceusCore
import CaduceusTesting
import Identity
import Persistence
import Scheduling
import Testing

struct FleetStoreTests {
    let now = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)
    let us = Residency(rawValue: "US")!

    struct Fixture {
        var store: SQLFleetStore
        var tenant: TenantID
        var project: ProjectID
        var region: RegionRecord
        var site: SiteRecord
        var fabric: FabricRecord
    }

    /// A database with one tenant, one project, and one region, site and fabric.
    func withFleet(_ engine: StoreEngine, _ body: (Fixture) async throws -> Void) async throws {
        try await TestDatabase.with(engine) { database in
            let tenant = TenantRecord(id: .generate(), name: "st-marys", createdAt: now)
            let project = ProjectRecord(id: .generate(), tenant: tenant.id, name: "radiology", createdAt: now)
            try await database.identity.insertTenant(tenant)
            try await database.identity.insertProject(project)
            let region = RegionRecord(id: .generate(), name: "us-east", residency: us, createdAt: now)
            let site = SiteRecord(id: .generate(), name: "dc1", region: region.id, createdAt: now)
            let fabric = FabricRecord(id: .generate(), name: "ib0", site: site.id, createdAt: now)
            try await database.fleet.insertRegion(region)
            try await database.fleet.insertSite(site)
            try await database.fleet.insertFabric(fabric)
            try await body(
                Fixture(
                    store: database.fleet, tenant: tenant.id, project: project.id, region: region, site: site,
                    fabric: fabric))
        }
    }

    func node(_ name: String, _ f: Fixture, gpus: Int = 8) -> NodeRecord {
        let id = NodeID.generate()
        return NodeRecord(
            id: id, name: name, site: f.site.id, fabric: f.fabric.id,
            gpus: (0..<gpus).map { GPUDevice(index: $0, model: "H200", memoryMiB: 143_771, uuid: "GPU-\(name)-\($0)") },
            lifecycle: NodeLifecycle(node: id), createdAt: now)
    }

    @Test("regions, sites and fabrics round-trip; names are unique where they must be", arguments: TestDatabase.engines)
    func topology(engine: StoreEngine) async throws {
        try await withFleet(engine) { f in
            #expect(try await f.store.region(id: f.region.id) == f.region)
            #expect(try await f.store.site(id: f.site.id) == f.site)
            #expect(try await f.store.fabric(id: f.fabric.id) == f.fabric)
            await #expect(throws: CaduceusError.self) {
                try await f.store.insertRegion(
                    RegionRecord(id: .generate(), name: "us-east", residency: us, createdAt: now))
            }
            await #expect(throws: CaduceusError.self) {
                try await f.store.insertSite(
                    SiteRecord(id: .generate(), name: "dc1", region: f.region.id, createdAt: now))
            }
            let other = RegionRecord(id: .generate(), name: "us-west", residency: us, createdAt: now)
            try await f.store.insertRegion(other)
            // The same site name in another region is fine.
            try await f.store.insertSite(SiteRecord(id: .generate(), name: "dc1", region: other.id, createdAt: now))
            #expect(try await f.store.regions(after: nil, limit: 10).items.count == 2)
            #expect(try await f.store.sites(in: f.region.id, after: nil, limit: 10).items == [f.site])
            #expect(try await f.store.sites(in: nil, after: nil, limit: 10).items.count == 2)
            #expect(try await f.store.fabrics(in: f.site.id, after: nil, limit: 10).items == [f.fabric])
        }
    }

    @Test(
        "nodes keep their GPUs and lifecycle; lists filter by tenant, including a tenant a node moves to",
        arguments: TestDatabase.engines)
    func nodes(engine: StoreEngine) async throws {
        try await withFleet(engine) { f in
            var first = node("gpu-01", f)
            try await f.store.insertNode(first)
            #expect(try await f.store.node(id: first.id) == first)
            await #expect(throws: CaduceusError.self) { try await f.store.insertNode(node("gpu-01", f)) }
            _ = try first.lifecycle.handle(.assign(f.tenant), jobsOnNode: 0)
            _ = try first.lifecycle.handle(.activate, jobsOnNode: 0)
            _ = try first.lifecycle.handle(.workPlaced, jobsOnNode: 1)
            try await f.store.updateNode(first)
            #expect(try await f.store.node(id: first.id) == first)
            #expect(try await f.store.nodes(of: f.tenant, after: nil, limit: 10).items == [first])
            var retired = node("gpu-02", f, gpus: 4)
            _ = try retired.lifecycle.handle(.retire, jobsOnNode: 0)
            try await f.store.insertNode(retired)
            #expect(try await f.store.nodes(of: nil, after: nil, limit: 10).items.count == 2)
            let active = try await f.store.activeNodes()
            #expect(active.map(\.node) == [first])
            #expect(active.map(\.residency) == [us])
        }
    }

    @Test(
        "agent records keep the pending join token and the current certificate; nodes keep being unreachable",
        arguments: TestDatabase.engines)
    func agents(engine: StoreEngine) async throws {
        try await withFleet(engine) { f in
            var gpu = node("gpu-01", f)
            try await f.store.insertNode(gpu)
            let pending = AgentRecord(
                node: gpu.id, joinTokenHash: "ab12", joinTokenExpiresAt: now.adding(milliseconds: 60_000))
            try await f.store.saveAgent(pending)
            #expect(try await f.store.agent(node: gpu.id) == pending)
            #expect(try await f.store.agent(joinTokenHash: "ab12") == pending)
            #expect(try await f.store.agent(joinTokenHash: "cd34") == nil)
            #expect(try await f.store.enrolledAgents().isEmpty, "a token alone is no enrolment")
            var enrolled = pending
            enrolled.joinTokenHash = nil
            enrolled.joinTokenExpiresAt = nil
            enrolled.certificateSerial = "0a0b"
            enrolled.certificateExpiresAt = now.adding(milliseconds: 86_400_000)
            enrolled.enrolledAt = now
            enrolled.hostName = "gpu-01"
            try await f.store.saveAgent(enrolled)
            #expect(try await f.store.agent(joinTokenHash: "ab12") == nil, "a token is used once")
            #expect(try await f.store.enrolledAgents() == [enrolled])
            gpu.unreachableSince = now
            gpu.gpus[0].uuid = "GPU-found-0"
            try await f.store.updateNode(gpu)
            #expect(try await f.store.node(id: gpu.id) == gpu)
            #expect(try await f.store.node(id: gpu.id)?.schedulable == false)
        }
    }

    @Test("a quota is set, replaced and listed per tenant", arguments: TestDatabase.engines)
    func quotas(engine: StoreEngine) async throws {
        try await withFleet(engine) { f in
            let quota = QuotaRecord(
                tenant: f.tenant, project: f.project, quota: ProjectQuota(guaranteedGPUs: 8, maximumGPUs: 16),
                updatedAt: now, updatedBy: nil)
            try await f.store.setQuota(quota)
            var changed = quota
            changed.quota = ProjectQuota(guaranteedGPUs: 4, maximumGPUs: 4)
            try await f.store.setQuota(changed)
            #expect(try await f.store.quota(project: f.project) == changed)
            #expect(try await f.store.quotas(of: f.tenant, after: nil, limit: 10).items == [changed])
            #expect(try await f.store.allQuotas() == [changed])
        }
    }

    @Test(
        "jobs round-trip, filter by tenant, project and state, and page without gaps", arguments: TestDatabase.engines)
    func jobs(engine: StoreEngine) async throws {
        try await withFleet(engine) { f in
            let spec = JobSpec(
                tenant: f.tenant, project: f.project, jobClass: .training, gpusPerNode: 8, nodeCount: 2,
                allowedModels: ["H200"], residency: us, command: "train", arguments: ["--epochs", "3"],
                environment: ["SEED": "1"], preemptible: true)
            var ids: [JobID] = []
            for n in 0..<5 {
                let job = JobRecord(
                    id: .generate(), spec: spec, state: n < 3 ? .pending : .cancelled, submittedBy: .generate(),
                    submittedAt: now.adding(milliseconds: Int64(n)))
                try await f.store.insertJob(job)
                ids.append(job.id)
            }
            var job = try #require(try await f.store.job(id: ids[0]))
            #expect(job.spec == spec)
            job.state = .placed
            job.assignments = [GPUAssignment(node: .generate(), gpus: [0, 1])]
            job.startedAt = now
            job.preemptions = 2
            job.reason = "requeued"
            try await f.store.updateJob(job)
            #expect(try await f.store.job(id: job.id) == job)

            var seen: [JobID] = []
            var cursor: String?
            repeat {
                let page = try await f.store.jobs(matching: JobFilter(project: f.project), after: cursor, limit: 2)
                seen += page.items.map(\.id)
                cursor = page.next
            } while cursor != nil
            #expect(seen == ids.sorted())
            #expect(
                try await f.store.jobs(matching: JobFilter(state: .cancelled), after: nil, limit: 10).items.count == 2)
            #expect(
                try await f.store.jobs(matching: JobFilter(tenant: .generate()), after: nil, limit: 10).items.isEmpty)
            #expect(Set(try await f.store.unfinishedJobs().map(\.id)) == Set(ids.prefix(3)))
        }
    }

    @Test("a failed transaction writes nothing", arguments: TestDatabase.engines)
    func rollback(engine: StoreEngine) async throws {
        try await withFleet(engine) { f in
            let region = RegionRecord(
                id: .generate(), name: "eu-west", residency: Residency(rawValue: "EU")!, createdAt: now)
            await #expect(throws: CaduceusError.self) {
                try await f.store.transaction { tx in
                    try await tx.insertRegion(region)
                    throw CaduceusError(code: "test", message: "undo")
                }
            }
            let found = try await f.store.region(id: region.id)
            #expect(found == nil)
        }
    }
}
