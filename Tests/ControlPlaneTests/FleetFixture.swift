import CaduceusCore
import CaduceusTesting
import ControlPlane
import Identity
import Scheduling

/// A tenant with two projects, a tenant admin, a researcher in the first project, and one region, site
/// and fabric (residency US) for nodes.
struct FleetFixture {
    let h: Harness
    let admin: RequestInfo
    let tenant: TenantView
    let project: ProjectView
    let otherProject: ProjectView
    let tenantAdmin: RequestInfo
    let researcher: RequestInfo
    let region: RegionView
    let site: SiteView
    let fabric: FabricView

    static func make(_ h: Harness) async throws -> FleetFixture {
        let admin = try await h.adminRequest()
        let tenant = try await h.plane.createTenant(admin, CreateTenantRequest(name: "st-marys"))
        let project = try await h.plane.createProject(admin, CreateProjectRequest(tenant: tenant.id, name: "radiology"))
        let other = try await h.plane.createProject(admin, CreateProjectRequest(tenant: tenant.id, name: "oncology"))
        let tenantAdmin = try await h.userRequest("tara", role: .tenantAdmin, scope: .tenant(tenant.id), admin: admin)
        let researcher = try await h.userRequest(
            "rita", role: .researcher, scope: .project(tenant.id, project.id), admin: admin)
        let region = try await h.plane.createRegion(
            admin, CreateRegionRequest(name: "us-east", residency: Residency(rawValue: "US")!))
        let site = try await h.plane.createSite(admin, CreateSiteRequest(name: "dc1", region: region.id))
        let fabric = try await h.plane.createFabric(admin, CreateFabricRequest(name: "ib0", site: site.id))
        return FleetFixture(
            h: h, admin: admin, tenant: tenant, project: project, otherProject: other, tenantAdmin: tenantAdmin,
            researcher: researcher, region: region, site: site, fabric: fabric)
    }

    /// A new request by the same caller (a request is audited once; tests that reuse one see only the first).
    static func again(_ request: RequestInfo) -> RequestInfo {
        RequestInfo(principal: request.principal, sourceAddress: request.sourceAddress)
    }

    static func gpus(_ count: Int, model: String = "H200", node: String) -> [GPUDevice] {
        (0..<count).map { GPUDevice(index: $0, model: model, memoryMiB: 143_771, uuid: "GPU-\(node)-\($0)") }
    }

    /// A node of the fixture's tenant, registered, assigned and activated.
    func node(_ name: String, gpus: Int = 8, model: String = "H200", tenant: TenantID? = nil) async throws -> NodeView {
        let node = try await h.plane.createNode(
            admin, CreateNodeRequest(name: name, fabric: fabric.id, gpus: Self.gpus(gpus, model: model, node: name)))
        _ = try await h.plane.assignNode(admin, node.id, AssignNodeRequest(tenant: tenant ?? self.tenant.id))
        return try await h.plane.activateNode(admin, node.id)
    }

    /// Submits a job as the researcher (or `as` someone else) in the first project unless told otherwise.
    func submit(
        _ jobClass: JobClass = .training, gpus: Int = 8, nodes: Int = 1, models: [String]? = nil,
        residency: String? = nil, project: ProjectID? = nil, as caller: RequestInfo? = nil
    ) async throws -> JobView {
        try await h.plane.submitJob(
            caller ?? researcher,
            SubmitJobRequest(
                project: project ?? self.project.id, jobClass: jobClass, gpusPerNode: gpus, nodeCount: nodes,
                allowedModels: models, residency: residency.flatMap(Residency.init(rawValue:)), command: "python",
                arguments: ["train.py"], environment: ["WANDB_API_KEY": "secret-value"]))
    }
}
