import CaduceusCore
import Foundation
import Identity
import SQLKit

/// The identity store over SQL: SQLite in embedded mode, PostgreSQL when distributed (same statements).
///
/// Statements and transactions go through the database's `SQLEngine`: one connection and one lock on SQLite,
/// a pool and serializable transactions on PostgreSQL.
public final class SQLIdentityStore: IdentityStore {
    let engine: any SQLEngine
    /// The connection of the transaction this store is bound to, if any.
    let pinned: (any SQLDatabase)?

    init(engine: any SQLEngine, pinned: (any SQLDatabase)?) {
        self.engine = engine
        self.pinned = pinned
    }

    private func run<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await SQLTransaction.statement(engine, pinned: pinned, body)
    }

    public func transaction<T: Sendable>(_ body: @Sendable (any IdentityStore) async throws -> T) async throws -> T {
        try await SQLTransaction.run(
            engine, pinned: pinned, current: self as any IdentityStore,
            inner: { [engine] db in SQLIdentityStore(engine: engine, pinned: db) }, body)
    }

    // MARK: Users

    public func insertUser(_ user: UserRecord) async throws {
        let throttle = try Self.json(user.throttle)
        try await run { db in
            try await db.raw(
                """
                INSERT INTO users (id, name, kind, password_hash, totp_secret, totp_last_step, must_change_password,
                    disabled, throttle, created_at, created_by)
                VALUES (\(bind: user.id.rawValue), \(bind: user.name), \(bind: user.kind.rawValue),
                    \(bind: user.passwordHash), \(bind: user.sealedTOTPSecret), \(bind: user.totpLastStep),
                    \(bind: user.mustChangePassword), \(bind: user.disabled), \(bind: throttle),
                    \(bind: user.createdAt.millisecondsSinceEpoch), \(bind: user.createdBy?.rawValue))
                """
            ).run()
        }
    }

    public func updateUser(_ user: UserRecord) async throws {
        let throttle = try Self.json(user.throttle)
        try await run { db in
            try await db.raw(
                """
                UPDATE users SET password_hash = \(bind: user.passwordHash), totp_secret = \(bind: user.sealedTOTPSecret),
                    totp_last_step = \(bind: user.totpLastStep), must_change_password = \(bind: user.mustChangePassword),
                    disabled = \(bind: user.disabled), throttle = \(bind: throttle)
                WHERE id = \(bind: user.id.rawValue)
                """
            ).run()
        }
    }

    public func user(id: UserID) async throws -> UserRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM users WHERE id = \(bind: id.rawValue)").first().map(Self.user)
        }
    }

    public func user(named name: String) async throws -> UserRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM users WHERE name = \(bind: name)").first().map(Self.user)
        }
    }

    public func users(after cursor: String?, limit: Int) async throws -> Page<UserRecord> {
        try await page(table: "users", after: cursor, limit: limit, Self.user, id: \.id.rawValue)
    }

    public func userCount() async throws -> Int {
        try await run { db in
            try await db.raw("SELECT COUNT(*) AS n FROM users").first()?.decode(column: "n", as: Int.self) ?? 0
        }
    }

    static func user(_ row: any SQLRow) throws -> UserRecord {
        UserRecord(
            id: UserID(unchecked: try row.decode(column: "id", as: String.self)),
            name: try row.decode(column: "name", as: String.self),
            kind: Principal.Kind(rawValue: try row.decode(column: "kind", as: String.self)) ?? .user,
            passwordHash: try row.decode(column: "password_hash", as: String?.self),
            sealedTOTPSecret: try row.decode(column: "totp_secret", as: String?.self),
            totpLastStep: try row.decode(column: "totp_last_step", as: Int64?.self),
            mustChangePassword: try row.decode(column: "must_change_password", as: Bool.self),
            disabled: try row.decode(column: "disabled", as: Bool.self),
            throttle: try JSONDecoder().decode(
                LoginThrottle.self, from: Data(try row.decode(column: "throttle", as: String.self).utf8)),
            createdAt: try time(row, "created_at"),
            createdBy: try row.decode(column: "created_by", as: String?.self).map(UserID.init(unchecked:)))
    }

    // MARK: Sessions

    public func insertSession(_ session: SessionRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO sessions (id, user_id, token_digest, created_at, last_seen_at, ended_at, source_address)
                VALUES (\(bind: session.id.rawValue), \(bind: session.user.rawValue), \(bind: session.tokenDigest),
                    \(bind: session.createdAt.millisecondsSinceEpoch), \(bind: session.lastSeenAt.millisecondsSinceEpoch),
                    \(bind: session.endedAt?.millisecondsSinceEpoch), \(bind: session.sourceAddress))
                """
            ).run()
        }
    }

    public func session(digest: String) async throws -> SessionRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM sessions WHERE token_digest = \(bind: digest)").first().map(Self.session)
        }
    }

    public func touchSession(_ id: SessionID, at time: Timestamp) async throws {
        try await run { db in
            try await db.raw(
                """
                UPDATE sessions SET last_seen_at = \(bind: time.millisecondsSinceEpoch)
                WHERE id = \(bind: id.rawValue) AND last_seen_at < \(bind: time.millisecondsSinceEpoch)
                """
            ).run()
        }
    }

    public func endSession(_ id: SessionID, at time: Timestamp) async throws {
        try await run { db in
            try await db.raw(
                """
                UPDATE sessions SET ended_at = \(bind: time.millisecondsSinceEpoch)
                WHERE id = \(bind: id.rawValue) AND ended_at IS NULL
                """
            ).run()
        }
    }

    public func endSessions(of user: UserID, at time: Timestamp) async throws -> [SessionID] {
        try await closeAll(table: "sessions", column: "ended_at", of: user, at: time).map(SessionID.init(unchecked:))
    }

    /// Sets `column` to `time` on every row of `user` in `table` where it is still unset; returns their IDs.
    private func closeAll(table: String, column: String, of user: UserID, at time: Timestamp) async throws -> [String] {
        try await run { db in
            let open = try await db.raw(
                """
                SELECT id FROM \(unsafeRaw: table) WHERE user_id = \(bind: user.rawValue) AND \(unsafeRaw: column) IS NULL
                """
            ).all().map { try $0.decode(column: "id", as: String.self) }
            try await db.raw(
                """
                UPDATE \(unsafeRaw: table) SET \(unsafeRaw: column) = \(bind: time.millisecondsSinceEpoch)
                WHERE user_id = \(bind: user.rawValue) AND \(unsafeRaw: column) IS NULL
                """
            ).run()
            return open
        }
    }

    static func session(_ row: any SQLRow) throws -> SessionRecord {
        SessionRecord(
            id: SessionID(unchecked: try row.decode(column: "id", as: String.self)),
            user: UserID(unchecked: try row.decode(column: "user_id", as: String.self)),
            tokenDigest: try row.decode(column: "token_digest", as: String.self),
            createdAt: try time(row, "created_at"), lastSeenAt: try time(row, "last_seen_at"),
            endedAt: try optionalTime(row, "ended_at"),
            sourceAddress: try row.decode(column: "source_address", as: String?.self))
    }

    // MARK: API tokens

    public func insertToken(_ token: APITokenRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO api_tokens (id, user_id, name, token_digest, scope, created_at, expires_at, revoked_at)
                VALUES (\(bind: token.id.rawValue), \(bind: token.user.rawValue), \(bind: token.name),
                    \(bind: token.tokenDigest), \(bind: token.scope.description),
                    \(bind: token.createdAt.millisecondsSinceEpoch), \(bind: token.expiresAt.millisecondsSinceEpoch),
                    \(bind: token.revokedAt?.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func token(digest: String) async throws -> APITokenRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM api_tokens WHERE token_digest = \(bind: digest)").first().map(Self.token)
        }
    }

    public func token(id: TokenID) async throws -> APITokenRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM api_tokens WHERE id = \(bind: id.rawValue)").first().map(Self.token)
        }
    }

    public func tokens(after cursor: String?, limit: Int) async throws -> Page<APITokenRecord> {
        try await page(table: "api_tokens", after: cursor, limit: limit, Self.token, id: \.id.rawValue)
    }

    public func revokeToken(_ id: TokenID, at time: Timestamp) async throws {
        try await run { db in
            try await db.raw(
                """
                UPDATE api_tokens SET revoked_at = \(bind: time.millisecondsSinceEpoch)
                WHERE id = \(bind: id.rawValue) AND revoked_at IS NULL
                """
            ).run()
        }
    }

    public func revokeTokens(of user: UserID, at time: Timestamp) async throws -> [TokenID] {
        try await closeAll(table: "api_tokens", column: "revoked_at", of: user, at: time).map(TokenID.init(unchecked:))
    }

    static func token(_ row: any SQLRow) throws -> APITokenRecord {
        let scopeText = try row.decode(column: "scope", as: String.self)
        guard let scope = Scope(scopeText) else {
            throw CaduceusError(code: "store.corrupt", message: "token scope '\(scopeText)' is malformed")
        }
        return APITokenRecord(
            id: TokenID(unchecked: try row.decode(column: "id", as: String.self)),
            user: UserID(unchecked: try row.decode(column: "user_id", as: String.self)),
            name: try row.decode(column: "name", as: String.self),
            tokenDigest: try row.decode(column: "token_digest", as: String.self), scope: scope,
            createdAt: try time(row, "created_at"), expiresAt: try time(row, "expires_at"),
            revokedAt: try optionalTime(row, "revoked_at"))
    }

    // MARK: Role bindings

    public func insertBinding(_ record: RoleBindingRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO role_bindings (id, user_id, role, scope, granted_by, granted_at)
                VALUES (\(bind: record.binding.id.rawValue), \(bind: record.binding.user.rawValue),
                    \(bind: record.binding.role.rawValue), \(bind: record.binding.scope.description),
                    \(bind: record.grantedBy?.rawValue), \(bind: record.grantedAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func deleteBinding(_ id: RoleBindingID) async throws {
        try await run { db in
            try await db.raw("DELETE FROM role_bindings WHERE id = \(bind: id.rawValue)").run()
        }
    }

    public func binding(id: RoleBindingID) async throws -> RoleBindingRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM role_bindings WHERE id = \(bind: id.rawValue)").first().map(Self.binding)
        }
    }

    public func bindings(of user: UserID) async throws -> [RoleBindingRecord] {
        try await run { db in
            try await db.raw("SELECT * FROM role_bindings WHERE user_id = \(bind: user.rawValue) ORDER BY id").all()
                .map(Self.binding)
        }
    }

    public func bindings(after cursor: String?, limit: Int) async throws -> Page<RoleBindingRecord> {
        try await page(table: "role_bindings", after: cursor, limit: limit, Self.binding, id: \.binding.id.rawValue)
    }

    static func binding(_ row: any SQLRow) throws -> RoleBindingRecord {
        let scopeText = try row.decode(column: "scope", as: String.self)
        let roleText = try row.decode(column: "role", as: String.self)
        guard let scope = Scope(scopeText), let role = Role(rawValue: roleText) else {
            throw CaduceusError(code: "store.corrupt", message: "role binding '\(roleText)@\(scopeText)' is malformed")
        }
        let binding = RoleBinding(
            id: RoleBindingID(unchecked: try row.decode(column: "id", as: String.self)),
            user: UserID(unchecked: try row.decode(column: "user_id", as: String.self)), role: role, scope: scope)
        return RoleBindingRecord(
            binding: binding,
            grantedBy: try row.decode(column: "granted_by", as: String?.self).map(UserID.init(unchecked:)),
            grantedAt: try time(row, "granted_at"))
    }

    // MARK: Break-glass grants

    public func insertGrant(_ grant: BreakGlassGrant) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO break_glass (id, user_id, tenant_id, reason, opened_at, expires_at, closed_at, reviewed_by,
                    reviewed_at, review_note)
                VALUES (\(bind: grant.id.rawValue), \(bind: grant.user.rawValue), \(bind: grant.tenant.rawValue),
                    \(bind: grant.reason), \(bind: grant.openedAt.millisecondsSinceEpoch),
                    \(bind: grant.expiresAt.millisecondsSinceEpoch), \(bind: grant.closedAt?.millisecondsSinceEpoch),
                    \(bind: grant.reviewedBy?.rawValue), \(bind: grant.reviewedAt?.millisecondsSinceEpoch),
                    \(bind: grant.reviewNote))
                """
            ).run()
        }
    }

    public func updateGrant(_ grant: BreakGlassGrant) async throws {
        try await run { db in
            try await db.raw(
                """
                UPDATE break_glass SET closed_at = \(bind: grant.closedAt?.millisecondsSinceEpoch),
                    reviewed_by = \(bind: grant.reviewedBy?.rawValue),
                    reviewed_at = \(bind: grant.reviewedAt?.millisecondsSinceEpoch), review_note = \(bind: grant.reviewNote)
                WHERE id = \(bind: grant.id.rawValue)
                """
            ).run()
        }
    }

    public func grant(id: BreakGlassID) async throws -> BreakGlassGrant? {
        try await run { db in
            try await db.raw("SELECT * FROM break_glass WHERE id = \(bind: id.rawValue)").first().map(Self.grant)
        }
    }

    public func grants(of user: UserID) async throws -> [BreakGlassGrant] {
        try await run { db in
            try await db.raw("SELECT * FROM break_glass WHERE user_id = \(bind: user.rawValue) ORDER BY id").all()
                .map(Self.grant)
        }
    }

    public func grants(after cursor: String?, limit: Int) async throws -> Page<BreakGlassGrant> {
        try await page(table: "break_glass", after: cursor, limit: limit, Self.grant, id: \.id.rawValue)
    }

    static func grant(_ row: any SQLRow) throws -> BreakGlassGrant {
        BreakGlassGrant(
            id: BreakGlassID(unchecked: try row.decode(column: "id", as: String.self)),
            user: UserID(unchecked: try row.decode(column: "user_id", as: String.self)),
            tenant: TenantID(unchecked: try row.decode(column: "tenant_id", as: String.self)),
            reason: try row.decode(column: "reason", as: String.self), openedAt: try time(row, "opened_at"),
            expiresAt: try time(row, "expires_at"), closedAt: try optionalTime(row, "closed_at"),
            reviewedBy: try row.decode(column: "reviewed_by", as: String?.self).map(UserID.init(unchecked:)),
            reviewedAt: try optionalTime(row, "reviewed_at"),
            reviewNote: try row.decode(column: "review_note", as: String?.self))
    }

    // MARK: Tenants and projects

    public func insertTenant(_ tenant: TenantRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO tenants (id, name, created_at)
                VALUES (\(bind: tenant.id.rawValue), \(bind: tenant.name), \(bind: tenant.createdAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func tenant(id: TenantID) async throws -> TenantRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM tenants WHERE id = \(bind: id.rawValue)").first().map(Self.tenant)
        }
    }

    public func tenants(after cursor: String?, limit: Int) async throws -> Page<TenantRecord> {
        try await page(table: "tenants", after: cursor, limit: limit, Self.tenant, id: \.id.rawValue)
    }

    static func tenant(_ row: any SQLRow) throws -> TenantRecord {
        TenantRecord(
            id: TenantID(unchecked: try row.decode(column: "id", as: String.self)),
            name: try row.decode(column: "name", as: String.self), createdAt: try time(row, "created_at"))
    }

    public func insertProject(_ project: ProjectRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO projects (id, tenant_id, name, created_at)
                VALUES (\(bind: project.id.rawValue), \(bind: project.tenant.rawValue), \(bind: project.name),
                    \(bind: project.createdAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func project(id: ProjectID) async throws -> ProjectRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM projects WHERE id = \(bind: id.rawValue)").first().map(Self.project)
        }
    }

    public func projects(of tenant: TenantID?, after cursor: String?, limit: Int) async throws -> Page<ProjectRecord> {
        try await run { db in
            let rows = try await db.raw(
                """
                SELECT * FROM projects WHERE (\(bind: tenant?.rawValue) IS NULL OR tenant_id = \(bind: tenant?.rawValue))
                    AND id > \(bind: cursor ?? "") ORDER BY id LIMIT \(bind: limit + 1)
                """
            ).all().map(Self.project)
            return Self.page(rows, limit: limit, id: \.id.rawValue)
        }
    }

    static func project(_ row: any SQLRow) throws -> ProjectRecord {
        ProjectRecord(
            id: ProjectID(unchecked: try row.decode(column: "id", as: String.self)),
            tenant: TenantID(unchecked: try row.decode(column: "tenant_id", as: String.self)),
            name: try row.decode(column: "name", as: String.self), createdAt: try time(row, "created_at"))
    }

    // MARK: Idempotency keys

    public func idempotency(principal: UserID, key: String) async throws -> IdempotencyRecord? {
        try await run { db in
            try await db.raw(
                """
                SELECT * FROM idempotency_keys WHERE principal_id = \(bind: principal.rawValue)
                    AND idempotency_key = \(bind: key)
                """
            ).first().map { row in
                IdempotencyRecord(
                    principal: principal, key: key,
                    requestDigest: try row.decode(column: "request_digest", as: String.self),
                    status: try row.decode(column: "status", as: Int.self),
                    body: try row.decode(column: "body", as: String.self), createdAt: try Self.time(row, "created_at"))
            }
        }
    }

    public func saveIdempotency(_ record: IdempotencyRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO idempotency_keys (principal_id, idempotency_key, request_digest, status, body, created_at)
                VALUES (\(bind: record.principal.rawValue), \(bind: record.key), \(bind: record.requestDigest),
                    \(bind: record.status), \(bind: record.body), \(bind: record.createdAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    // MARK: Session changes

    public func recordSessionChange(of user: UserID, at time: Timestamp) async throws {
        let id = RequestID.generate().rawValue
        try await run { db in
            try await db.raw(
                """
                INSERT INTO session_changes (id, user_id, at)
                VALUES (\(bind: id), \(bind: user.rawValue), \(bind: time.millisecondsSinceEpoch))
                """
            ).run()
            try await db.raw(
                "DELETE FROM session_changes WHERE at < \(bind: time.millisecondsSinceEpoch - 3_600_000)"
            ).run()
        }
    }

    public func sessionChanges(since time: Timestamp) async throws -> [SessionChange] {
        try await run { db in
            try await db.raw(
                "SELECT id, user_id FROM session_changes WHERE at >= \(bind: time.millisecondsSinceEpoch)"
            ).all().map { row in
                SessionChange(
                    id: try row.decode(column: "id", as: String.self),
                    user: UserID(unchecked: try row.decode(column: "user_id", as: String.self)))
            }
        }
    }

    // MARK: Helpers

    private func page<T: Sendable>(
        table: String, after cursor: String?, limit: Int, _ map: @escaping @Sendable (any SQLRow) throws -> T,
        id: any KeyPath<T, String> & Sendable
    ) async throws -> Page<T> {
        try await run { db in
            let rows = try await db.raw(
                "SELECT * FROM \(unsafeRaw: table) WHERE id > \(bind: cursor ?? "") ORDER BY id LIMIT \(bind: limit + 1)"
            ).all().map(map)
            return Self.page(rows, limit: limit, id: id)
        }
    }

    static func page<T: Sendable>(_ rows: [T], limit: Int, id: KeyPath<T, String>) -> Page<T> {
        guard rows.count > limit else { return Page(items: rows, next: nil) }
        let items = Array(rows.prefix(limit))
        return Page(items: items, next: items.last?[keyPath: id])
    }

    static func time(_ row: any SQLRow, _ column: String) throws -> Timestamp {
        Timestamp(millisecondsSinceEpoch: try row.decode(column: column, as: Int64.self))
    }

    static func optionalTime(_ row: any SQLRow, _ column: String) throws -> Timestamp? {
        try row.decode(column: column, as: Int64?.self).map(Timestamp.init(millisecondsSinceEpoch:))
    }

    static func json(_ value: some Encodable) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }
}
