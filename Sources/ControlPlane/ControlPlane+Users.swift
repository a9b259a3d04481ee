import AuditLog
import CaduceusCore
import Crypto
import Identity
import Logging

extension ControlPlane {
    /// Creates an account. A person gets a one-time password (to be changed at first log-in) and a TOTP
    /// enrolment URI, both returned this once; a service account gets neither and uses API tokens.
    public func createUser(_ request: RequestInfo, _ input: CreateUserRequest) async throws -> CreateUserResponse {
        let subject = AuditRecorder.Subject(action: "user.create", resourceType: "user", resourceID: "new")
        let decision = try await authorize(request, .userCreate, in: .platform, subject)
        let kind = input.kind ?? .user
        let id = UserID.generate()
        let created = AuditRecorder.Subject(action: "user.create", resourceType: "user", resourceID: id.rawValue)
        do {
            try Names.check(input.name, "a user name")
        } catch {
            try await auditFailure(request, created, error)
            throw error
        }
        var record = UserRecord(id: id, name: input.name, kind: kind, createdAt: now, createdBy: request.principal?.id)
        var password: String?
        var uri: String?
        if kind == .user {
            let oneTime = Self.oneTimePassword()
            let secret = TOTP.generateSecret()
            record.passwordHash = try await hasher.hash(oneTime)
            record.sealedTOTPSecret = try totpBox.seal(secret, context: id.rawValue)
            record.mustChangePassword = true
            password = oneTime
            uri = TOTP(secret: secret).provisioningURI(issuer: settings.issuer, account: input.name)
        }
        let stored = record
        try await change(request, created, decision: decision) { tx in
            do {
                try await tx.insertUser(stored)
            } catch let error as CaduceusError where error.code == "store.conflict" {
                throw Failure.conflict("the user name '\(input.name)' is taken")
            }
        }
        return CreateUserResponse(user: UserView(stored), initialPassword: password, otpauthURI: uri)
    }

    /// 24 random characters from base64url: about 144 bits.
    static func oneTimePassword() -> String {
        String(Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }).prefix(24))
    }

    /// Lists accounts.
    public func listUsers(
        _ request: RequestInfo, after cursor: String?, limit: Int
    ) async throws -> ListResponse<UserView> {
        try await list(
            request, AuditRecorder.Subject(action: "user.list", resourceType: "user", resourceID: "all"),
            .userRead, in: .platform, fetch: { try await $0.users(after: cursor, limit: limit) }, view: UserView.init)
    }

    /// Shows one account.
    public func showUser(_ request: RequestInfo, _ id: UserID) async throws -> UserView {
        let subject = AuditRecorder.Subject(action: "user.show", resourceType: "user", resourceID: id.rawValue)
        let decision = try await authorize(request, .userRead, in: .platform, subject)
        return try await read(request, subject, decision: decision) { store in
            guard let user = try await store.user(id: id) else { throw Failure.notFound("user \(id)") }
            return UserView(user)
        }
    }

    /// Disables or enables an account. Disabling ends its sessions and revokes its tokens at once.
    public func setUserDisabled(_ request: RequestInfo, _ id: UserID, disabled: Bool) async throws -> UserView {
        let subject = AuditRecorder.Subject(
            action: disabled ? "user.disable" : "user.enable", resourceType: "user", resourceID: id.rawValue)
        let decision = try await authorize(request, .userUpdate, in: .platform, subject)
        if id == request.principal?.id && disabled {
            try await auditFailure(request, subject, Failure.invalid("self"))
            throw Failure.invalid("you cannot disable your own account")
        }
        let view = try await change(request, subject, decision: decision) { [self] tx in
            guard var user = try await tx.user(id: id) else { throw Failure.notFound("user \(id)") }
            user.disabled = disabled
            if !disabled { user.throttle.recordSuccess() }
            try await tx.updateUser(user)
            if disabled {
                _ = try await tx.endSessions(of: id, at: now)
                _ = try await tx.revokeTokens(of: id, at: now)
            }
            try await tx.recordSessionChange(of: id, at: now)
            return UserView(user)
        }
        sessions.remove(user: id)
        return view
    }
}

extension ControlPlane {
    /// Grants a role in a scope. The granter must hold `role.grant` over that scope.
    public func grantRole(_ request: RequestInfo, _ input: GrantRoleRequest) async throws -> RoleBindingView {
        let id = RoleBindingID.generate()
        let subject = AuditRecorder.Subject(
            action: "role.grant", resourceType: "role-binding", resourceID: id.rawValue, tenant: input.scope.tenant)
        let decision = try await authorize(request, .roleGrant, in: input.scope, subject)
        let record = RoleBindingRecord(
            binding: RoleBinding(id: id, user: input.user, role: input.role, scope: input.scope),
            grantedBy: request.principal?.id, grantedAt: now)
        let view = try await change(request, subject, decision: decision) { [self] tx in
            guard input.role.allowedScopes.contains(input.scope.kind) else {
                throw Failure.invalid(
                    "the role \(input.role.rawValue) cannot be held in a \(input.scope.kind.rawValue) scope")
            }
            guard try await tx.user(id: input.user) != nil else { throw Failure.notFound("user \(input.user)") }
            try await Self.checkScopeExists(input.scope, in: tx)
            do {
                try await tx.insertBinding(record)
            } catch let error as CaduceusError where error.code == "store.conflict" {
                throw Failure.conflict("that role is already granted in that scope")
            }
            try await tx.recordSessionChange(of: input.user, at: now)
            return RoleBindingView(record)
        }
        sessions.remove(user: input.user)
        return view
    }

    static func checkScopeExists(_ scope: Scope, in store: any IdentityStore) async throws {
        switch scope {
        case .platform: return
        case .tenant(let tenant):
            guard try await store.tenant(id: tenant) != nil else { throw Failure.notFound("tenant \(tenant)") }
        case .project(let tenant, let project):
            guard let record = try await store.project(id: project), record.tenant == tenant else {
                throw Failure.notFound("project \(project) of tenant \(tenant)")
            }
        }
    }

    /// Revokes a role binding; the holder's sessions lose it at once.
    public func revokeRole(_ request: RequestInfo, _ id: RoleBindingID) async throws {
        guard let record = try await store.binding(id: id) else {
            let subject = AuditRecorder.Subject(
                action: "role.revoke", resourceType: "role-binding", resourceID: id.rawValue)
            _ = try await authorize(request, .roleGrant, in: .platform, subject)
            try await auditFailure(request, subject, Failure.notFound("role binding"))
            throw Failure.notFound("role binding \(id)")
        }
        let subject = AuditRecorder.Subject(
            action: "role.revoke", resourceType: "role-binding", resourceID: id.rawValue,
            tenant: record.binding.scope.tenant)
        let decision = try await authorize(request, .roleGrant, in: record.binding.scope, subject)
        try await change(request, subject, decision: decision) { [self] tx in
            try await tx.deleteBinding(id)
            try await tx.recordSessionChange(of: record.binding.user, at: now)
        }
        sessions.remove(user: record.binding.user)
    }

    /// Lists role bindings.
    public func listRoles(
        _ request: RequestInfo, after cursor: String?, limit: Int
    ) async throws -> ListResponse<RoleBindingView> {
        try await list(
            request, AuditRecorder.Subject(action: "role.list", resourceType: "role-binding", resourceID: "all"),
            .roleRead, in: .platform, fetch: { try await $0.bindings(after: cursor, limit: limit) },
            view: RoleBindingView.init)
    }
}
