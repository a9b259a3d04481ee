import CaduceusCore

/// An account: a person (with password and TOTP) or a service (with API tokens). Never shared.
public struct UserRecord: Sendable, Equatable, Codable {
    /// The unique, immutable ID.
    public var id: UserID
    /// The unique user name.
    public var name: String
    /// Person or service.
    public var kind: Principal.Kind
    /// The scrypt hash of the password (people only).
    public var passwordHash: String?
    /// The TOTP secret, sealed (never stored in clear); nil until enrolled.
    public var sealedTOTPSecret: String?
    /// The last TOTP step accepted (a code is never accepted twice).
    public var totpLastStep: Int64?
    /// Whether the next log-in must set a new password.
    public var mustChangePassword: Bool
    /// Whether the account is disabled.
    public var disabled: Bool
    /// Recent failed log-ins and any lock.
    public var throttle: LoginThrottle
    /// When it was created.
    public var createdAt: Timestamp
    /// Who created it (nil for the bootstrap administrator).
    public var createdBy: UserID?

    /// Creates a record.
    public init(
        id: UserID, name: String, kind: Principal.Kind, passwordHash: String? = nil, sealedTOTPSecret: String? = nil,
        totpLastStep: Int64? = nil, mustChangePassword: Bool = false, disabled: Bool = false,
        throttle: LoginThrottle = LoginThrottle(), createdAt: Timestamp, createdBy: UserID? = nil
    ) {
        self.id = id
        self.name = name
        self.kind = kind
        self.passwordHash = passwordHash
        self.sealedTOTPSecret = sealedTOTPSecret
        self.totpLastStep = totpLastStep
        self.mustChangePassword = mustChangePassword
        self.disabled = disabled
        self.throttle = throttle
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

/// A log-in session; only the digest of its token is kept.
public struct SessionRecord: Sendable, Equatable, Codable {
    public var id: SessionID
    public var user: UserID
    public var tokenDigest: String
    public var createdAt: Timestamp
    public var lastSeenAt: Timestamp
    public var endedAt: Timestamp?
    public var sourceAddress: String?

    /// Creates a record.
    public init(
        id: SessionID, user: UserID, tokenDigest: String, createdAt: Timestamp, lastSeenAt: Timestamp,
        endedAt: Timestamp? = nil, sourceAddress: String? = nil
    ) {
        self.id = id
        self.user = user
        self.tokenDigest = tokenDigest
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.endedAt = endedAt
        self.sourceAddress = sourceAddress
    }
}

/// A service account's API token: scoped, expiring, revocable; only its digest is kept.
public struct APITokenRecord: Sendable, Equatable, Codable {
    public var id: TokenID
    public var user: UserID
    public var name: String
    public var tokenDigest: String
    /// The token acts only within this scope, whatever roles its account holds elsewhere.
    public var scope: Scope
    public var createdAt: Timestamp
    public var expiresAt: Timestamp
    public var revokedAt: Timestamp?

    /// Creates a record.
    public init(
        id: TokenID, user: UserID, name: String, tokenDigest: String, scope: Scope, createdAt: Timestamp,
        expiresAt: Timestamp, revokedAt: Timestamp? = nil
    ) {
        self.id = id
        self.user = user
        self.name = name
        self.tokenDigest = tokenDigest
        self.scope = scope
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }

    /// Whether the token may be used at `now`.
    public func isUsable(at now: Timestamp) -> Bool {
        revokedAt == nil && now < expiresAt
    }
}

/// A tenant: a hospital or institute.
public struct TenantRecord: Sendable, Equatable, Codable {
    public var id: TenantID
    public var name: String
    public var createdAt: Timestamp

    /// Creates a record.
    public init(id: TenantID, name: String, createdAt: Timestamp) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }
}

/// A project of a tenant.
public struct ProjectRecord: Sendable, Equatable, Codable {
    public var id: ProjectID
    public var tenant: TenantID
    public var name: String
    public var createdAt: Timestamp

    /// Creates a record.
    public init(id: ProjectID, tenant: TenantID, name: String, createdAt: Timestamp) {
        self.id = id
        self.tenant = tenant
        self.name = name
        self.createdAt = createdAt
    }
}

/// A role binding with who granted it and when.
public struct RoleBindingRecord: Sendable, Equatable, Codable {
    public var binding: RoleBinding
    public var grantedBy: UserID?
    public var grantedAt: Timestamp

    /// Creates a record.
    public init(binding: RoleBinding, grantedBy: UserID?, grantedAt: Timestamp) {
        self.binding = binding
        self.grantedBy = grantedBy
        self.grantedAt = grantedAt
    }
}

/// A stored response to a POST with an `Idempotency-Key`, replayed for a retry of the same request.
public struct IdempotencyRecord: Sendable, Equatable {
    public var principal: UserID
    public var key: String
    public var requestDigest: String
    public var status: Int
    public var body: String
    public var createdAt: Timestamp

    /// Creates a record.
    public init(principal: UserID, key: String, requestDigest: String, status: Int, body: String, createdAt: Timestamp)
    {
        self.principal = principal
        self.key = key
        self.requestDigest = requestDigest
        self.status = status
        self.body = body
        self.createdAt = createdAt
    }
}

/// Where identities, sessions, tokens, roles, tenants and projects are kept.
///
/// Implemented in `Persistence` over SQL (SQLite embedded, PostgreSQL distributed). Methods that write
/// throw `CaduceusError` with code `store.conflict` when a unique name or key is taken.
public protocol IdentityStore: Sendable {
    /// Runs `body` atomically: everything it writes commits together, or nothing does.
    func transaction<T: Sendable>(_ body: @Sendable (any IdentityStore) async throws -> T) async throws -> T

    // Users
    func insertUser(_ user: UserRecord) async throws
    func updateUser(_ user: UserRecord) async throws
    func user(id: UserID) async throws -> UserRecord?
    func user(named name: String) async throws -> UserRecord?
    func users(after cursor: String?, limit: Int) async throws -> Page<UserRecord>
    func userCount() async throws -> Int

    // Sessions
    func insertSession(_ session: SessionRecord) async throws
    func session(digest: String) async throws -> SessionRecord?
    func touchSession(_ id: SessionID, at time: Timestamp) async throws
    func endSession(_ id: SessionID, at time: Timestamp) async throws
    /// Ends every open session of `user`; returns their IDs.
    func endSessions(of user: UserID, at time: Timestamp) async throws -> [SessionID]

    // API tokens
    func insertToken(_ token: APITokenRecord) async throws
    func token(digest: String) async throws -> APITokenRecord?
    func token(id: TokenID) async throws -> APITokenRecord?
    func tokens(after cursor: String?, limit: Int) async throws -> Page<APITokenRecord>
    func revokeToken(_ id: TokenID, at time: Timestamp) async throws
    /// Revokes every token of `user`; returns their IDs.
    func revokeTokens(of user: UserID, at time: Timestamp) async throws -> [TokenID]

    // Roles
    func insertBinding(_ binding: RoleBindingRecord) async throws
    func deleteBinding(_ id: RoleBindingID) async throws
    func binding(id: RoleBindingID) async throws -> RoleBindingRecord?
    func bindings(of user: UserID) async throws -> [RoleBindingRecord]
    func bindings(after cursor: String?, limit: Int) async throws -> Page<RoleBindingRecord>

    // Break-glass
    func insertGrant(_ grant: BreakGlassGrant) async throws
    func updateGrant(_ grant: BreakGlassGrant) async throws
    func grant(id: BreakGlassID) async throws -> BreakGlassGrant?
    func grants(of user: UserID) async throws -> [BreakGlassGrant]
    func grants(after cursor: String?, limit: Int) async throws -> Page<BreakGlassGrant>

    // Tenants and projects
    func insertTenant(_ tenant: TenantRecord) async throws
    func tenant(id: TenantID) async throws -> TenantRecord?
    func tenants(after cursor: String?, limit: Int) async throws -> Page<TenantRecord>
    func insertProject(_ project: ProjectRecord) async throws
    func project(id: ProjectID) async throws -> ProjectRecord?
    func projects(of tenant: TenantID?, after cursor: String?, limit: Int) async throws -> Page<ProjectRecord>

    // Idempotency keys
    func idempotency(principal: UserID, key: String) async throws -> IdempotencyRecord?
    func saveIdempotency(_ record: IdempotencyRecord) async throws

    // Changes to an account's sessions, tokens, roles or grants, for every replica's session cache
    /// Notes (inside the change's transaction) that `user`'s sessions, tokens, roles or grants changed at
    /// `time`; notes older than an hour go.
    func recordSessionChange(of user: UserID, at time: Timestamp) async throws
    /// The notes made since `time`: their IDs and accounts.
    func sessionChanges(since time: Timestamp) async throws -> [SessionChange]
}

/// One note that an account's sessions, tokens, roles or grants changed.
public struct SessionChange: Sendable, Equatable {
    public var id: String
    public var user: UserID

    public init(id: String, user: UserID) {
        self.id = id
        self.user = user
    }
}
