import AuditLog
import CaduceusCore
import Identity
import Logging

extension ControlPlane {
    /// Creates a tenant.
    public func createTenant(_ request: RequestInfo, _ input: CreateTenantRequest) async throws -> TenantView {
        let record = TenantRecord(id: .generate(), name: input.name, createdAt: now)
        let subject = AuditRecorder.Subject(
            action: "tenant.create", resourceType: "tenant", resourceID: record.id.rawValue, tenant: record.id)
        let decision = try await authorize(request, .tenantCreate, in: .platform, subject)
        return try await change(request, subject, decision: decision) { tx in
            try Names.check(input.name, "a tenant name")
            do {
                try await tx.insertTenant(record)
            } catch let error as CaduceusError where error.code == "store.conflict" {
                throw Failure.conflict("the tenant name '\(input.name)' is taken")
            }
            return TenantView(record)
        }
    }

    /// Lists tenants.
    public func listTenants(
        _ request: RequestInfo, after cursor: String?, limit: Int
    ) async throws -> ListResponse<TenantView> {
        try await list(
            request, AuditRecorder.Subject(action: "tenant.list", resourceType: "tenant", resourceID: "all"),
            .tenantRead, in: .platform, fetch: { try await $0.tenants(after: cursor, limit: limit) },
            view: TenantView.init)
    }

    /// Shows a tenant.
    public func showTenant(_ request: RequestInfo, _ id: TenantID) async throws -> TenantView {
        let subject = AuditRecorder.Subject(
            action: "tenant.show", resourceType: "tenant", resourceID: id.rawValue, tenant: id)
        let decision = try await authorize(request, .tenantRead, in: .tenant(id), subject)
        return try await read(request, subject, decision: decision) { store in
            guard let tenant = try await store.tenant(id: id) else { throw Failure.notFound("tenant \(id)") }
            return TenantView(tenant)
        }
    }

    /// Creates a project in a tenant.
    public func createProject(_ request: RequestInfo, _ input: CreateProjectRequest) async throws -> ProjectView {
        let record = ProjectRecord(id: .generate(), tenant: input.tenant, name: input.name, createdAt: now)
        let subject = AuditRecorder.Subject(
            action: "project.create", resourceType: "project", resourceID: record.id.rawValue, tenant: input.tenant)
        let decision = try await authorize(request, .projectCreate, in: .tenant(input.tenant), subject)
        return try await change(request, subject, decision: decision) { tx in
            try Names.check(input.name, "a project name")
            guard try await tx.tenant(id: input.tenant) != nil else { throw Failure.notFound("tenant \(input.tenant)") }
            do {
                try await tx.insertProject(record)
            } catch let error as CaduceusError where error.code == "store.conflict" {
                throw Failure.conflict("the tenant already has a project named '\(input.name)'")
            }
            return ProjectView(record)
        }
    }

    /// Lists projects, of one tenant or of all (the latter needs platform-wide `project.read`).
    public func listProjects(
        _ request: RequestInfo, tenant: TenantID?, after cursor: String?, limit: Int
    ) async throws -> ListResponse<ProjectView> {
        try await list(
            request,
            AuditRecorder.Subject(action: "project.list", resourceType: "project", resourceID: "all", tenant: tenant),
            .projectRead, in: tenant.map { .tenant($0) } ?? .platform,
            fetch: { try await $0.projects(of: tenant, after: cursor, limit: limit) }, view: ProjectView.init)
    }

    /// Shows a project.
    public func showProject(_ request: RequestInfo, _ id: ProjectID) async throws -> ProjectView {
        guard let project = try await store.project(id: id) else {
            let subject = AuditRecorder.Subject(
                action: "project.show", resourceType: "project", resourceID: id.rawValue)
            _ = try await authorize(request, .projectRead, in: .platform, subject)
            try await auditFailure(request, subject, Failure.notFound("project"))
            throw Failure.notFound("project \(id)")
        }
        let subject = AuditRecorder.Subject(
            action: "project.show", resourceType: "project", resourceID: id.rawValue, tenant: project.tenant)
        let decision = try await authorize(request, .projectRead, in: .project(project.tenant, id), subject)
        return try await read(request, subject, decision: decision) { _ in ProjectView(project) }
    }
}

extension ControlPlane {
    /// Creates an API token for a service account, scoped and expiring; the token is returned this once.
    public func createToken(_ request: RequestInfo, _ input: CreateTokenRequest) async throws -> CreateTokenResponse {
        let token = OpaqueToken.generate(.api)
        let days = input.days ?? 90
        let record = APITokenRecord(
            id: .generate(), user: input.user, name: input.name, tokenDigest: token.digest, scope: input.scope,
            createdAt: now, expiresAt: now.adding(milliseconds: Int64(days) * 86_400_000))
        let subject = AuditRecorder.Subject(
            action: "token.create", resourceType: "token", resourceID: record.id.rawValue, tenant: input.scope.tenant)
        let decision = try await authorize(request, .tokenManage, in: input.scope, subject)
        let view = try await change(request, subject, decision: decision) { tx in
            try Names.check(input.name, "a token name")
            guard (1...365).contains(days) else { throw Failure.invalid("a token lasts 1 to 365 days") }
            guard let user = try await tx.user(id: input.user) else { throw Failure.notFound("user \(input.user)") }
            guard user.kind == .service, !user.disabled else {
                throw Failure.invalid("API tokens are for enabled service accounts only")
            }
            try await Self.checkScopeExists(input.scope, in: tx)
            try await tx.insertToken(record)
            return TokenView(record)
        }
        return CreateTokenResponse(token: token.text, details: view)
    }

    /// Lists API tokens (never the tokens themselves).
    public func listTokens(
        _ request: RequestInfo, after cursor: String?, limit: Int
    ) async throws -> ListResponse<TokenView> {
        try await list(
            request, AuditRecorder.Subject(action: "token.list", resourceType: "token", resourceID: "all"),
            .tokenManage, in: .platform, fetch: { try await $0.tokens(after: cursor, limit: limit) },
            view: TokenView.init)
    }

    /// Revokes an API token at once.
    public func revokeToken(_ request: RequestInfo, _ id: TokenID) async throws {
        let record = try await store.token(id: id)
        let subject = AuditRecorder.Subject(
            action: "token.revoke", resourceType: "token", resourceID: id.rawValue, tenant: record?.scope.tenant)
        let decision = try await authorize(request, .tokenManage, in: record?.scope ?? .platform, subject)
        try await change(request, subject, decision: decision) { [self] tx in
            guard let record else { throw Failure.notFound("token \(id)") }
            try await tx.revokeToken(id, at: now)
            try await tx.recordSessionChange(of: record.user, at: now)
        }
        if let record { sessions.remove(user: record.user) }
    }
}
