import AuditLog
import CaduceusCore
import Identity
import Logging

/// Settings of the control plane that use cases need.
public struct ControlPlaneSettings: Sendable {
    /// Idle timeout and lifetime of sessions.
    public var sessions: SessionRules
    /// The issuer shown in authenticator apps.
    public var issuer: String

    /// Creates settings.
    public init(sessions: SessionRules, issuer: String = "Caduceus") {
        self.sessions = sessions
        self.issuer = issuer
    }
}

/// The use cases of the control plane. Each one authorises its caller (deny by default), acts on the
/// stores, and appends its audit event — durably, before it returns. A change and its audit event commit
/// together: if the append fails, the change is rolled back and the caller gets `audit.unavailable`.
public final class ControlPlane: Sendable {
    let store: any IdentityStore
    let audit: AuditRecorder
    let clock: any WallClock
    let hasher: PasswordHasher
    let totpBox: SecretBox
    let settings: ControlPlaneSettings
    let sessions = SessionCache()
    let logger: Logger

    /// Creates the control plane over its stores and audit trail.
    public init(
        store: any IdentityStore, audit: AuditRecorder, clock: any WallClock, hasher: PasswordHasher,
        totpBox: SecretBox, settings: ControlPlaneSettings, logger: Logger = Logger(label: "caduceus.control-plane")
    ) {
        self.store = store
        self.audit = audit
        self.clock = clock
        self.hasher = hasher
        self.totpBox = totpBox
        self.settings = settings
        self.logger = logger
    }

    // MARK: The shape of every use case

    /// Checks that the caller may use `permission` in `scope`; audits and throws when not.
    func authorize(
        _ request: RequestInfo, _ permission: Permission, in scope: Scope, _ subject: AuditRecorder.Subject
    ) async throws -> AccessDecision {
        let principal = try request.requirePrincipal()
        if principal.mustChangePassword {
            try await audit.record(request, subject, outcome: .denied)
            throw Failure.passwordChangeRequired
        }
        let decision = AccessPolicy.decide(principal, permission, in: scope, at: clock.now())
        guard decision.allowed else {
            try await audit.record(request, subject, outcome: .denied)
            throw Failure.forbidden()
        }
        return decision
    }

    /// Runs a change and its audit event in one transaction; audits failures too.
    func change<T: Sendable>(
        _ request: RequestInfo, _ subject: AuditRecorder.Subject,
        decision: AccessDecision = .init(allowed: true, breakGlass: nil),
        _ body: @Sendable (any IdentityStore) async throws -> T
    ) async throws -> T {
        do {
            return try await store.transaction { tx in
                let result = try await body(tx)
                try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
                return result
            }
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// Runs a read and audits it.
    func read<T: Sendable>(
        _ request: RequestInfo, _ subject: AuditRecorder.Subject,
        decision: AccessDecision = .init(allowed: true, breakGlass: nil),
        _ body: @Sendable (any IdentityStore) async throws -> T
    ) async throws -> T {
        let result: T
        do {
            result = try await body(store)
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
        try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
        return result
    }

    /// A list use case: authorise `permission` in `scope`, read one page, map it to views, audit the read.
    func list<Record: Sendable, View: Codable & Sendable>(
        _ request: RequestInfo, _ subject: AuditRecorder.Subject, _ permission: Permission, in scope: Scope,
        fetch: @escaping @Sendable (any IdentityStore) async throws -> Page<Record>,
        view: @escaping @Sendable (Record) -> View
    ) async throws -> ListResponse<View> {
        let decision = try await authorize(request, permission, in: scope, subject)
        return try await read(request, subject, decision: decision) { store in
            let page = try await fetch(store)
            return ListResponse(items: page.items.map(view), next: page.next)
        }
    }

    /// Audits a failed request unless it was audited already (a denial, or the audit itself failing).
    func auditFailure(_ request: RequestInfo, _ subject: AuditRecorder.Subject, _ error: any Error) async throws {
        guard !request.tracker.isAudited else { return }
        if (error as? CaduceusError)?.code == "audit.unavailable" { return }
        try await audit.record(request, subject, outcome: .error)
    }

    /// Audits a request that never reached a use case (unauthenticated, malformed, unknown route).
    public func recordUnhandled(
        _ request: RequestInfo, action: String, outcome: AuditEvent.Outcome, resourceType: String = "api",
        resourceID: String = "v1"
    ) async throws {
        guard !request.tracker.isAudited else { return }
        try await audit.record(
            request, .init(action: action, resourceType: resourceType, resourceID: resourceID), outcome: outcome)
    }

    var now: Timestamp { clock.now() }
}

extension ControlPlane {
    /// The stored response for a POST retried with the same `Idempotency-Key`, if any.
    public func idempotentResponse(principal: UserID, key: String) async throws -> IdempotencyRecord? {
        try await store.idempotency(principal: principal, key: key)
    }

    /// Keeps a POST's response for retries with the same `Idempotency-Key`.
    public func saveIdempotentResponse(
        principal: UserID, key: String, requestDigest: String, status: Int, body: String
    ) async throws {
        try await store.saveIdempotency(
            IdempotencyRecord(
                principal: principal, key: key, requestDigest: requestDigest, status: status, body: body, createdAt: now
            ))
    }
}
