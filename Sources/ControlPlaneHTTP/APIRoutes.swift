import AuditLog
import CaduceusCore
import ControlPlane
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Identity

/// One route of the API: what it is and what it needs. The OpenAPI document and the route × role test
/// are both built from this table, so a route cannot exist without an entry.
public struct RouteSpec: Sendable {
    /// Who may call it at all (finer checks happen in the use case).
    public enum Access: Sendable, Equatable {
        /// No authentication (health, log-in, the API description).
        case open
        /// Any authenticated caller, for their own account.
        case authenticated
        /// Callers holding this permission in the route's scope.
        case permission(Permission)
        /// A node agent presenting its node certificate (the agent listener, mutual TLS).
        case nodeCertificate
    }

    public var method: HTTPRequest.Method
    public var path: String
    public var summary: String
    public var access: Access
    /// The request body's type, for routes that take one.
    public var body: (any StrictDecodable.Type)?
    /// Query parameters that filter a list, beyond `after` and `limit`.
    public var filters: [String]

    init(
        method: HTTPRequest.Method, path: String, summary: String, access: Access,
        body: (any StrictDecodable.Type)? = nil, filters: [String] = []
    ) {
        self.method = method
        self.path = path
        self.summary = summary
        self.access = access
        self.body = body
        self.filters = filters
    }
}

/// The API's routes.
public enum APIRoutes {
    /// Every route: accounts and tenancy, then the fleet and jobs.
    public static let all: [RouteSpec] = identity + fleet + enrolment + datasets

    /// The routes every replica answers itself, followers too: accounts, sessions, roles, tokens, tenancy
    /// and emergency access, and reading jobs (a list, one job), which need only the shared database (and
    /// the audit outbox): so a job's state stays readable while the lead changes hands. The rest of the
    /// fleet and jobs, node agents and datasets need the scheduler, runners and object files the leader
    /// runs: followers forward those. So are the metrics, which are each process's own.
    public static let anyReplica: [RouteSpec] =
        identity.filter { $0.path != "/metrics" }
        + fleet.filter { $0.method == .get && ["/v1/jobs", "/v1/jobs/{id}"].contains($0.path) }

    static let identity: [RouteSpec] = [
        .init(method: .get, path: "/healthz", summary: "Liveness", access: .open),
        .init(method: .get, path: "/readyz", summary: "Readiness", access: .open),
        .init(method: .get, path: "/metrics", summary: "Prometheus metrics (loopback clients only)", access: .open),
        .init(method: .get, path: "/v1/openapi.json", summary: "This API's OpenAPI 3.1 document", access: .open),
        .init(
            method: .post, path: "/v1/sessions", summary: "Log in (user name, password, TOTP code)", access: .open,
            body: LoginRequest.self),
        .init(method: .delete, path: "/v1/sessions/current", summary: "Log out", access: .authenticated),
        .init(method: .get, path: "/v1/me", summary: "The caller's account, roles and grants", access: .authenticated),
        .init(
            method: .post, path: "/v1/me/password", summary: "Change the caller's password", access: .authenticated,
            body: ChangePasswordRequest.self),
        .init(
            method: .post, path: "/v1/me/mfa", summary: "Enrol a new authenticator", access: .authenticated,
            body: EnrollMFARequest.self),
        .init(method: .get, path: "/v1/users", summary: "List accounts", access: .permission(.userRead)),
        .init(
            method: .post, path: "/v1/users", summary: "Create an account", access: .permission(.userCreate),
            body: CreateUserRequest.self),
        .init(method: .get, path: "/v1/users/{id}", summary: "Show an account", access: .permission(.userRead)),
        .init(
            method: .post, path: "/v1/users/{id}/disable", summary: "Disable an account",
            access: .permission(.userUpdate)),
        .init(
            method: .post, path: "/v1/users/{id}/enable", summary: "Enable an account", access: .permission(.userUpdate)
        ),
        .init(method: .get, path: "/v1/role-bindings", summary: "List role bindings", access: .permission(.roleRead)),
        .init(
            method: .post, path: "/v1/role-bindings", summary: "Grant a role", access: .permission(.roleGrant),
            body: GrantRoleRequest.self),
        .init(
            method: .delete, path: "/v1/role-bindings/{id}", summary: "Revoke a role", access: .permission(.roleGrant)),
        .init(method: .get, path: "/v1/tokens", summary: "List API tokens", access: .permission(.tokenManage)),
        .init(
            method: .post, path: "/v1/tokens", summary: "Create an API token", access: .permission(.tokenManage),
            body: CreateTokenRequest.self),
        .init(
            method: .delete, path: "/v1/tokens/{id}", summary: "Revoke an API token", access: .permission(.tokenManage)),
        .init(method: .get, path: "/v1/tenants", summary: "List tenants", access: .permission(.tenantRead)),
        .init(
            method: .post, path: "/v1/tenants", summary: "Create a tenant", access: .permission(.tenantCreate),
            body: CreateTenantRequest.self),
        .init(method: .get, path: "/v1/tenants/{id}", summary: "Show a tenant", access: .permission(.tenantRead)),
        .init(
            method: .get, path: "/v1/projects", summary: "List projects", access: .permission(.projectRead),
            filters: ["tenant"]),
        .init(
            method: .post, path: "/v1/projects", summary: "Create a project", access: .permission(.projectCreate),
            body: CreateProjectRequest.self),
        .init(method: .get, path: "/v1/projects/{id}", summary: "Show a project", access: .permission(.projectRead)),
        .init(method: .get, path: "/v1/break-glass", summary: "List emergency-access grants", access: .authenticated),
        .init(
            method: .post, path: "/v1/break-glass", summary: "Open emergency access",
            access: .permission(.emergencyAccess), body: OpenBreakGlassRequest.self),
        .init(
            method: .post, path: "/v1/break-glass/{id}/review", summary: "Review an emergency-access grant",
            access: .permission(.breakGlassReview), body: ReviewBreakGlassRequest.self),
    ]
}

/// Registers the routes on a router: each decodes its input, calls its use case and encodes the output.
struct RouteHandlers {
    let plane: ControlPlane
    let openAPI: [UInt8]
    let metrics: ServerMetrics
    /// The internal CA's certificate, served to agents before they enrol.
    let caPEM: String
    /// What `cluster status` shows.
    let clusterStatus: CaduceusServer.ClusterStatusSource
    /// What `/readyz` checks.
    let readiness: CaduceusServer.Readiness

    /// `/readyz`'s answer: 200 and `ready` when every check passes, else 503 and `unready`; each check by name.
    static func readinessResponse(_ checks: [String: String?]) throws -> Response {
        let failing = checks.compactMapValues { $0 }
        var body = ["status": failing.isEmpty ? "ready" : "unready"]
        for (name, problem) in checks { body[name] = problem ?? "ok" }
        return try JSONBody.response(body, status: failing.isEmpty ? .ok : .serviceUnavailable)
    }

    /// Registers every route, or with `anyReplicaOnly` those of `APIRoutes.anyReplica` (a follower's).
    func register(on router: Router<APIContext>, limiter: RateLimiter, anyReplicaOnly: Bool = false) {
        router.get("/healthz") { _, _ in try JSONBody.response(["status": "ok"]) }
        router.get("/readyz") { [readiness] _, _ in try Self.readinessResponse(await readiness()) }
        router.get("/metrics") { [metrics] _, context in
            guard ServerMetrics.isLoopback(context.remoteAddress) else { throw Failure.notFound("route") }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: .init(bytes: metrics.render())))
        }
        let v1 = router.group("/v1")
        v1.get("/openapi.json") { [openAPI] _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: .init(bytes: openAPI)))
        }
        v1.group("/sessions").add(middleware: LoginThrottleMiddleware(limiter: limiter))
            .post { [plane] request, context in
                let input = try await JSONBody.decode(LoginRequest.self, from: request)
                return try JSONBody.response(try await plane.login(context.info, input), status: .created)
            }
        let authed = v1.group().add(middleware: AuthMiddleware(plane: plane, limiter: limiter))
        authed.delete("/sessions/current") { [plane] _, context in
            try await plane.logout(context.info, token: context.bearer ?? "")
            return Response(status: .noContent)
        }
        authed.get("/me") { [plane] _, context in try JSONBody.response(try await plane.me(context.info)) }
        authed.post("/me/password") { [plane] request, context in
            try await plane.changePassword(
                context.info, try await JSONBody.decode(ChangePasswordRequest.self, from: request))
            return Response(status: .noContent)
        }
        authed.post("/me/mfa") { [plane] request, context in
            try JSONBody.response(
                try await plane.enrollMFA(context.info, try await JSONBody.decode(EnrollMFARequest.self, from: request))
            )
        }
        registerAdministration(authed)
        registerJobReads(authed)
        guard !anyReplicaOnly else { return }
        registerFleet(authed)
        registerJobs(authed)
        registerEnrolment(v1, authed, limiter: limiter)
        registerDatasets(authed)
    }

    private func registerAdministration(_ authed: RouterGroup<APIContext>) {
        authed.get("/users") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(try await plane.listUsers(context.info, after: page.after, limit: page.limit))
        }
        post(authed, "/users") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createUser(
                    context.info, try await JSONBody.decode(CreateUserRequest.self, from: request)),
                status: .created)
        }
        authed.get("/users/:id") { [plane] _, context in
            try JSONBody.response(try await plane.showUser(context.info, try Self.id(UserID.self, context)))
        }
        for (verb, disabled) in [("disable", true), ("enable", false)] {
            post(authed, "/users/:id/\(verb)") { [plane] _, context in
                try JSONBody.reply(
                    try await plane.setUserDisabled(context.info, try Self.id(UserID.self, context), disabled: disabled)
                )
            }
        }
        authed.get("/role-bindings") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(try await plane.listRoles(context.info, after: page.after, limit: page.limit))
        }
        post(authed, "/role-bindings") { [plane] request, context in
            try JSONBody.reply(
                try await plane.grantRole(
                    context.info, try await JSONBody.decode(GrantRoleRequest.self, from: request)),
                status: .created)
        }
        authed.delete("/role-bindings/:id") { [plane] _, context in
            try await plane.revokeRole(context.info, try Self.id(RoleBindingID.self, context))
            return Response(status: .noContent)
        }
        authed.get("/tokens") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(try await plane.listTokens(context.info, after: page.after, limit: page.limit))
        }
        post(authed, "/tokens") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createToken(
                    context.info, try await JSONBody.decode(CreateTokenRequest.self, from: request)),
                status: .created)
        }
        authed.delete("/tokens/:id") { [plane] _, context in
            try await plane.revokeToken(context.info, try Self.id(TokenID.self, context))
            return Response(status: .noContent)
        }
        registerTenancy(authed)
    }

    private func registerTenancy(_ authed: RouterGroup<APIContext>) {
        authed.get("/tenants") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listTenants(context.info, after: page.after, limit: page.limit))
        }
        post(authed, "/tenants") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createTenant(
                    context.info, try await JSONBody.decode(CreateTenantRequest.self, from: request)),
                status: .created)
        }
        authed.get("/tenants/:id") { [plane] _, context in
            try JSONBody.response(try await plane.showTenant(context.info, try Self.id(TenantID.self, context)))
        }
        authed.get("/projects") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listProjects(
                    context.info, tenant: try Self.filter(TenantID.self, "tenant", request), after: page.after,
                    limit: page.limit))
        }
        post(authed, "/projects") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createProject(
                    context.info, try await JSONBody.decode(CreateProjectRequest.self, from: request)),
                status: .created)
        }
        authed.get("/projects/:id") { [plane] _, context in
            try JSONBody.response(try await plane.showProject(context.info, try Self.id(ProjectID.self, context)))
        }
        authed.get("/break-glass") { [plane] request, context in
            let page = try JSONBody.page(request)
            let pending = request.uri.queryParameters.get("pending") == "true"
            return try JSONBody.response(
                try await plane.listBreakGlass(context.info, pending: pending, after: page.after, limit: page.limit))
        }
        post(authed, "/break-glass") { [plane] request, context in
            try JSONBody.reply(
                try await plane.openBreakGlass(
                    context.info, try await JSONBody.decode(OpenBreakGlassRequest.self, from: request)),
                status: .created)
        }
        post(authed, "/break-glass/:id/review") { [plane] request, context in
            try JSONBody.reply(
                try await plane.reviewBreakGlass(
                    context.info, try Self.id(BreakGlassID.self, context),
                    try await JSONBody.decode(ReviewBreakGlassRequest.self, from: request)))
        }
    }

    /// A typed ID from the path, or a 404 (a malformed ID names nothing).
    static func id<T: TypedID>(_ type: T.Type, _ context: APIContext) throws -> T {
        guard let text = context.parameters.get("id"), let id = T(rawValue: text) else {
            throw Failure.notFound("\(T.prefix) \(context.parameters.get("id")?.prefix(64) ?? "")")
        }
        return id
    }

    /// A POST route that honours `Idempotency-Key`: a retry with the same key gets the first response back
    /// (with secrets shown once removed) instead of acting twice.
    func post(
        _ group: RouterGroup<APIContext>, _ path: RouterPath,
        _ handler: @escaping @Sendable (Request, APIContext) async throws -> JSONReply
    ) {
        group.post(path) { [plane] request, context in
            guard let key = request.headers[.idempotencyKey] else {
                return try await handler(request, context).response
            }
            guard (1...128).contains(key.utf8.count), key.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                throw Failure.invalid("Idempotency-Key must be 1 to 128 visible ASCII characters")
            }
            let principal = try context.info.requirePrincipal()
            let fingerprint = request.method.rawValue + " " + request.uri.path
            if let stored = try await plane.idempotentResponse(principal: principal.id, key: key) {
                guard stored.requestDigest == fingerprint else {
                    throw Failure.conflict("that Idempotency-Key was used for another request")
                }
                try await plane.recordUnhandled(
                    context.info, action: "http.replay", outcome: .success, resourceType: "route",
                    resourceID: RequestMiddleware.route(context))
                var reply = JSONReply(status: .init(code: stored.status), bytes: Array(stored.body.utf8))
                reply.replayed = true
                return reply.response
            }
            let reply = try await handler(request, context)
            try await plane.saveIdempotentResponse(
                principal: principal.id, key: key, requestDigest: fingerprint, status: reply.status.code,
                body: Self.redacted(reply.bytes))
            return reply.response
        }
    }

    /// The body without the secrets some responses show once.
    static func redacted(_ bytes: [UInt8]) -> String {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            return String(decoding: bytes, as: UTF8.self)
        }
        for key in ["initialPassword", "otpauthURI", "token"] where object[key] != nil { object[key] = "(shown once)" }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(bytes)
        return String(decoding: data, as: UTF8.self)
    }
}
