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

                        let (path, scope, body): (String, Scope, String?) =
                            switch (route.method, route.path) {
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
                        // The role-grant route also needs the caller to cover the scope being granted.
                        let expected: Bool
                        if route.path == "/v1/role-bindings" && route.method == .post {
                            expected =
                                AccessPolicy.decide(
                                    caller.principal, permission, in: .tenant(tenant.id), at: h.clock.now()
                                )
                                .allowed
                        } else {
                            expected =
                                AccessPolicy.decide(caller.principal, permission, in: scope, at: h.clock.now()).allowed
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
}
