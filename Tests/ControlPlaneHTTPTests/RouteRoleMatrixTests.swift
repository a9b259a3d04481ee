import CaduceusCore
import CaduceusTesting
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import Logging
import NIOCore
import Persistence
import Scheduling
import Sealing
import Testing

@testable import ControlPlaneHTTP

/// Walks every permission-guarded route with a caller of every role and checks the answer against the
/// permission table: 403 exactly when the table (through `AccessPolicy`) denies.
struct RouteRoleMatrixTests {
    struct Caller {
        var role: Role
        var token: String
        var principal: Principal
    }

    @Test("every route × every role matches the permission table")
    func matrix() async throws {
        try await Harness.with { h in
            let admin = try await h.adminRequest()
            let tenant = try await h.plane.createTenant(admin, CreateTenantRequest(name: "st-marys"))
            let project = try await h.plane.createProject(
                admin, CreateProjectRequest(tenant: tenant.id, name: "radiology"))
            let projectScope = Scope.project(tenant.id, project.id)

            var callers: [Caller] = []
            for role in Role.allCases {
                let scope: Scope =
                    switch role {
                    case .platformAdmin, .securityOfficer, .auditor: .platform
                    case .tenantAdmin: .tenant(tenant.id)
                    case .researcher, .service: projectScope
                    }
                let name = "as-" + role.rawValue
                let token: String
                if role == .service {
                    let account = try await h.plane.createUser(admin, CreateUserRequest(name: name, kind: .service))
                    _ = try await h.plane.grantRole(
                        admin, GrantRoleRequest(user: account.user.id, role: role, scope: scope))
                    token = try await h.plane.createToken(
                        admin, CreateTokenRequest(user: account.user.id, name: "matrix", scope: scope)
                    ).token
                } else {
                    let account = try await h.plane.createUser(admin, CreateUserRequest(name: name))
                    _ = try await h.plane.grantRole(
                        admin, GrantRoleRequest(user: account.user.id, role: role, scope: scope))
                    let password = try #require(account.initialPassword)
                    let (first, session) = try await h.login(name, password, secret: try #require(account.otpauthURI))
                    try await h.plane.changePassword(
                        first, ChangePasswordRequest(currentPassword: password, newPassword: "matrix password!"))
                    token = session
                }
                callers.append(Caller(role: role, token: token, principal: try await h.plane.authenticate(token)))
            }

            // The fleet: one node of the tenant in service, and a job of the project on it.
            let region = try await h.plane.createRegion(
                admin, CreateRegionRequest(name: "us-east", residency: Residency(rawValue: "US")!))
            let site = try await h.plane.createSite(admin, CreateSiteRequest(name: "dc1", region: region.id))
            let fabric = try await h.plane.createFabric(admin, CreateFabricRequest(name: "ib0", site: site.id))
            @Sendable func gpus(_ name: String) -> [GPUDevice] {
                (0..<8).map { GPUDevice(index: $0, model: "H200", memoryMiB: 143_771, uuid: "GPU-\(name)-\($0)") }
            }
            let node = try await h.plane.createNode(
                admin, CreateNodeRequest(name: "gpu-01", fabric: fabric.id, gpus: gpus("gpu-01")))
            _ = try await h.plane.assignNode(admin, node.id, AssignNodeRequest(tenant: tenant.id))
            _ = try await h.plane.activateNode(admin, node.id)
            let researcher = try #require(callers.first { $0.role == .researcher })
            let job = try await h.plane.submitJob(
                RequestInfo(principal: researcher.principal),
                SubmitJobRequest(project: project.id, jobClass: .batch, gpusPerNode: 1, command: "true"))

            // Another project of the tenant, which its tenant admin grants the dataset to.
            let tenantAdmin = RequestInfo(principal: try #require(callers.first { $0.role == .tenantAdmin }).principal)
            let other = try await h.plane.createProject(
                admin, CreateProjectRequest(tenant: tenant.id, name: "oncology"))
            // A dataset of the project with one object.
            let researcherInfo = RequestInfo(principal: researcher.principal)
            let dataset = try await h.plane.createDataset(
                researcherInfo,
                CreateDatasetRequest(
                    project: project.id, name: "scans", classification: .phi, residency: Residency(rawValue: "US")!,
                    retentionYears: 1))
            _ = try await h.plane.uploadObject(
                researcherInfo, dataset: dataset.id, name: "scan-1", length: 5, sha256: nil, patients: ["MRN-1"],
                body: AsyncThrowingStream<[UInt8], any Error> { continuation in
                    continuation.yield(Array("hello".utf8))
                    continuation.finish()
                })
            let app = Application(router: try CaduceusServer.makeRouter(plane: h.plane, logger: Logger(label: "test")))
            let everyone = callers
            let checked = try await app.test(.router) { client in
                var counter = 0
                var checked = 0
                for route in APIRoutes.all {
                    guard case .permission(let permission) = route.access else { continue }
                    for caller in everyone {
                        counter += 1
                        // Fresh fixtures, so an allowed call never leaves the next caller a 404 instead of a 403.
                        let target = try await h.plane.createUser(admin, CreateUserRequest(name: "target-\(counter)"))
                        let service = try await h.plane.createUser(
                            admin, CreateUserRequest(name: "svc-\(counter)", kind: .service))
                        let binding = try await h.plane.grantRole(
                            admin, GrantRoleRequest(user: target.user.id, role: .researcher, scope: projectScope))
                        let apiToken = try await h.plane.createToken(
                            admin, CreateTokenRequest(user: service.user.id, name: "t\(counter)", scope: projectScope))
                        let grant = BreakGlassGrant(
                            id: .generate(), user: target.user.id, tenant: tenant.id,
                            reason: "fixture grant for the matrix",
                            openedAt: h.clock.now(), expiresAt: h.clock.now().adding(milliseconds: 60_000))
                        try await h.database.identity.insertGrant(grant)

                        let datasetGrant = try await h.plane.createGrant(
                            tenantAdmin, dataset.id, CreateGrantRequest(project: other.id, purpose: "TREAT"))
                        let spare = try await h.plane.createNode(
                            admin,
                            CreateNodeRequest(name: "spare-\(counter)", fabric: fabric.id, gpus: gpus("s\(counter)")))
                        let fleetRequest =
                            Self.fleetRequest(
                                route, counter: counter, tenant: tenant.id, project: project.id, region: region.id,
                                site: site.id, fabric: fabric.id, node: node.id, spare: spare.id, job: job.id)
                            ?? Self.datasetRequest(
                                route, counter: counter, tenant: tenant.id, project: project.id, dataset: dataset.id,
                                other: other.id, grant: datasetGrant.id)
                        let (path, scope, body): (String, Scope, String?) =
                            switch (route.method, route.path) {
                            case _ where fleetRequest != nil: fleetRequest ?? ("", .platform, nil)
                            case (.get, "/v1/users"), (.get, "/v1/role-bindings"), (.get, "/v1/tokens"),
                                (.get, "/v1/tenants"),
                                (.get, "/v1/projects"):
                                (route.path, .platform, nil)
                            case (.post, "/v1/users"): (route.path, .platform, #"{"name":"new-\#(counter)"}"#)
                            case (.get, "/v1/users/{id}"): ("/v1/users/\(target.user.id)", .platform, nil)
                            case (.post, "/v1/users/{id}/disable"):
                                ("/v1/users/\(target.user.id)/disable", .platform, nil)
                            case (.post, "/v1/users/{id}/enable"):
                                ("/v1/users/\(target.user.id)/enable", .platform, nil)
                            case (.post, "/v1/role-bindings"):
                                (
                                    route.path, projectScope,
                                    #"{"user":"\#(target.user.id)","role":"auditor","scope":"\#(Scope.tenant(tenant.id))"}"#
                                )
                            case (.delete, "/v1/role-bindings/{id}"):
                                ("/v1/role-bindings/\(binding.id)", projectScope, nil)
                            case (.post, "/v1/tokens"):
                                (
                                    route.path, projectScope,
                                    #"{"user":"\#(service.user.id)","name":"n\#(counter)","scope":"\#(projectScope)"}"#
                                )
                            case (.delete, "/v1/tokens/{id}"): ("/v1/tokens/\(apiToken.details.id)", projectScope, nil)
                            case (.post, "/v1/tenants"): (route.path, .platform, #"{"name":"tenant-\#(counter)"}"#)
                            case (.get, "/v1/tenants/{id}"): ("/v1/tenants/\(tenant.id)", .tenant(tenant.id), nil)
                            case (.post, "/v1/projects"):
                                (route.path, .tenant(tenant.id), #"{"tenant":"\#(tenant.id)","name":"p\#(counter)"}"#)
                            case (.get, "/v1/projects/{id}"): ("/v1/projects/\(project.id)", projectScope, nil)
                            case (.post, "/v1/break-glass"):
                                (
                                    route.path, .tenant(tenant.id),
                                    #"{"tenant":"\#(tenant.id)","reason":"matrix check of emergency access","minutes":5}"#
                                )
                            case (.post, "/v1/break-glass/{id}/review"):
                                ("/v1/break-glass/\(grant.id)/review", .platform, #"{"note":"reviewed in the matrix"}"#)
                            default:
                                ("", .platform, nil)
                            }
                        #expect(!path.isEmpty, "no request for \(route.method) \(route.path): add one to this test")
                        guard !path.isEmpty else { continue }
                        // As the caller is now: an emergency grant opened by an earlier route counts.
                        let principal = try await h.plane.authenticate(caller.token)
                        // The role-grant route also needs the caller to cover the scope being granted.
                        let expected: Bool
                        if route.path == "/v1/role-bindings" && route.method == .post {
                            expected =
                                AccessPolicy.decide(
                                    principal, permission, in: .tenant(tenant.id), at: h.clock.now()
                                )
                                .allowed
                        } else {
                            expected =
                                AccessPolicy.decide(principal, permission, in: scope, at: h.clock.now()).allowed
                        }
                        var headers: HTTPFields = [.authorization: "Bearer \(caller.token)"]
                        if body != nil { headers[.contentType] = "application/json" }
                        let response = try await client.execute(
                            uri: path, method: route.method, headers: headers, body: body.map { ByteBuffer(string: $0) }
                        )
                        let denied = response.status == .forbidden
                        #expect(
                            denied == !expected,
                            "\(caller.role.rawValue) \(route.method) \(route.path): got \(response.status.code), table says \(expected ? "allow" : "deny")"
                        )
                        #expect(
                            response.status.code < 500,
                            "\(caller.role.rawValue) \(route.method) \(route.path): \(response.status)")
                        checked += 1
                    }
                }
                return checked
            }
            #expect(
                checked == APIRoutes.all.filter { if case .permission = $0.access { true } else { false } }.count
                    * Role.allCases.count)
        }
    }

    /// The request for a dataset, key or report route, and the scope its use case authorises in.
    static func datasetRequest(
        _ route: RouteSpec, counter: Int, tenant: TenantID, project: ProjectID, dataset: DatasetID, other: ProjectID,
        grant: DatasetGrantID
    ) -> (String, Scope, String?)? {
        let projectScope = Scope.project(tenant, project)
        switch (route.method, route.path) {
        case (.post, "/v1/datasets"):
            return (
                route.path, projectScope,
                #"{"project":"\#(project)","name":"d\#(counter)","classification":"phi","residency":"US","retentionYears":1}"#
            )
        case (.get, "/v1/datasets"): return ("/v1/datasets?project=\(project)", projectScope, nil)
        case (.get, "/v1/datasets/{id}"): return ("/v1/datasets/\(dataset)", projectScope, nil)
        case (.get, "/v1/datasets/{id}/objects"): return ("/v1/datasets/\(dataset)/objects", projectScope, nil)
        case (.put, "/v1/datasets/{id}/objects/{name}"):
            return ("/v1/datasets/\(dataset)/objects/o\(counter)", projectScope, "hello")
        case (.get, "/v1/datasets/{id}/objects/{name}"):
            return ("/v1/datasets/\(dataset)/objects/scan-1", projectScope, nil)
        case (.post, "/v1/datasets/{id}/grants"):
            return ("/v1/datasets/\(dataset)/grants", .tenant(tenant), #"{"project":"\#(other)","purpose":"HRESCH"}"#)
        case (.get, "/v1/datasets/{id}/grants"): return ("/v1/datasets/\(dataset)/grants", projectScope, nil)
        case (.post, "/v1/dataset-grants/{id}/revoke"):
            return ("/v1/dataset-grants/\(grant)/revoke", .tenant(tenant), nil)
        case (.delete, "/v1/datasets/{id}/objects/{name}"):
            return ("/v1/datasets/\(dataset)/objects/scan-1", projectScope, nil)
        case (.post, "/v1/datasets/{id}/hold"):
            return ("/v1/datasets/\(dataset)/hold", .tenant(tenant), #"{"hold":false}"#)
        case (.post, "/v1/datasets/{id}/shred"): return ("/v1/datasets/\(dataset)/shred", .tenant(tenant), nil)
        case (.get, "/v1/datasets/{id}/shredding-certificate"):
            return ("/v1/datasets/\(dataset)/shredding-certificate", projectScope, nil)
        case (.get, "/v1/datasets/{id}/lifecycle"): return ("/v1/datasets/\(dataset)/lifecycle", .tenant(tenant), nil)
        case (.post, "/v1/datasets/{id}/lifecycle/apply"):
            return ("/v1/datasets/\(dataset)/lifecycle/apply", .tenant(tenant), nil)
        case (.get, "/v1/keys"): return ("/v1/keys?tenant=\(tenant)", .tenant(tenant), nil)
        case (.post, "/v1/keys/{id}/rotate"): return ("/v1/keys/\(tenant)/rotate", .tenant(tenant), nil)
        case (.post, "/v1/reports/phi-access"):
            return (route.path, .tenant(tenant), #"{"tenant":"\#(tenant)","patient":"MRN-1"}"#)
        default: return nil
        }
    }

    /// The request for a fleet, quota or job route, and the scope its use case authorises in.
    static func fleetRequest(
        _ route: RouteSpec, counter: Int, tenant: TenantID, project: ProjectID, region: RegionID, site: SiteID,
        fabric: FabricID, node: NodeID, spare: NodeID, job: JobID
    ) -> (String, Scope, String?)? {
        let projectScope = Scope.project(tenant, project)
        let gpu = #"{"index":0,"model":"H200","memoryMiB":1000,"uuid":"GPU-m\#(counter)"}"#
        switch (route.method, route.path) {
        case (.get, "/v1/regions"), (.get, "/v1/sites"), (.get, "/v1/fabrics"), (.get, "/v1/cluster"):
            return (route.path, .platform, nil)
        case (.post, "/v1/regions"): return (route.path, .platform, #"{"name":"r\#(counter)","residency":"US"}"#)
        case (.get, "/v1/regions/{id}"): return ("/v1/regions/\(region)", .platform, nil)
        case (.post, "/v1/sites"): return (route.path, .platform, #"{"name":"s\#(counter)","region":"\#(region)"}"#)
        case (.get, "/v1/sites/{id}"): return ("/v1/sites/\(site)", .platform, nil)
        case (.post, "/v1/fabrics"): return (route.path, .platform, #"{"name":"f\#(counter)","site":"\#(site)"}"#)
        case (.get, "/v1/fabrics/{id}"): return ("/v1/fabrics/\(fabric)", .platform, nil)
        case (.post, "/v1/nodes"):
            return (route.path, .platform, #"{"name":"n\#(counter)","fabric":"\#(fabric)","gpus":[\#(gpu)]}"#)
        case (.get, "/v1/nodes"): return ("/v1/nodes?tenant=\(tenant)", .tenant(tenant), nil)
        case (.get, "/v1/nodes/{id}"): return ("/v1/nodes/\(node)", .tenant(tenant), nil)
        case (.get, "/v1/nodes/{id}/sanitization-records"):
            return ("/v1/nodes/\(node)/sanitization-records", .tenant(tenant), nil)
        case (.post, "/v1/nodes/{id}/assign"):
            return ("/v1/nodes/\(spare)/assign", .platform, #"{"tenant":"\#(tenant)"}"#)
        case (.post, "/v1/nodes/{id}/join-token"):
            return ("/v1/nodes/\(spare)/join-token", .platform, #"{"expiresInMinutes":5}"#)
        case (.post, let path) where path.hasPrefix("/v1/nodes/{id}/"):
            return (path.replacingOccurrences(of: "{id}", with: spare.rawValue), .platform, nil)
        case (.get, "/v1/quotas"): return ("/v1/quotas?tenant=\(tenant)", .tenant(tenant), nil)
        case (.get, "/v1/quotas/{id}"): return ("/v1/quotas/\(project)", projectScope, nil)
        case (.put, "/v1/quotas/{id}"):
            return ("/v1/quotas/\(project)", projectScope, #"{"guaranteedGPUs":0,"maximumGPUs":64}"#)
        case (.post, "/v1/jobs"):
            return (
                route.path, projectScope, #"{"project":"\#(project)","class":"batch","gpusPerNode":1,"command":"true"}"#
            )
        case (.get, "/v1/jobs"): return ("/v1/jobs?project=\(project)", projectScope, nil)
        case (.get, "/v1/jobs/{id}"), (.post, "/v1/jobs/{id}/cancel"), (.get, "/v1/jobs/{id}/why"),
            (.get, "/v1/jobs/{id}/logs"):
            return (route.path.replacingOccurrences(of: "{id}", with: job.rawValue), projectScope, nil)
        default: return nil
        }
    }
}
