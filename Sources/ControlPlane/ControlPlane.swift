import AuditLog
import CaduceusCore
import Identity
import Logging
import Scheduling
import Synchronization

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
    let fleet: any FleetStore
    let scheduling: SchedulingService
    let audit: AuditRecorder
    let clock: any WallClock
    let hasher: PasswordHasher
    let totpBox: SecretBox
    let settings: ControlPlaneSettings
    let sessions = SessionCache()
    /// The runner jobs run through, once `runJobs` started.
    let runner = Mutex<(any JobRunner)?>(nil)
    /// Each GPU's last scrub, by node and GPU UUID, as the runner reported it.
    let lastScrubs = Mutex<[NodeID: [String: GPUScrubView]]>([:])
    /// The remote agents' runner and the CA that signs their certificates, once enabled.
    let remote = Mutex<(agents: RemoteAgents, issuer: any NodeCertificateIssuer)?>(nil)
    /// How sealed datasets are kept, once enabled.
    let datasetSettings = Mutex<DatasetSettings?>(nil)
    let logger: Logger

    /// Creates the control plane over its stores and audit trail.
    public init(
        store: any IdentityStore, fleet: any FleetStore, audit: AuditRecorder, clock: any WallClock,
        hasher: PasswordHasher, totpBox: SecretBox, settings: ControlPlaneSettings,
        logger: Logger = Logger(label: "caduceus.control-plane")
    ) {
        self.store = store
        self.fleet = fleet
        self.scheduling = SchedulingService(store: fleet, audit: audit, clock: clock, logger: logger)
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

    /// Runs a change that involves the scheduler and its audit event in one fleet transaction, alone among
    /// such changes; the scheduler keeps the change only if the transaction commits. Audits failures too.
    func fleetChange<T: Sendable>(
        _ request: RequestInfo, _ subject: AuditRecorder.Subject, decision: AccessDecision,
        _ body: @escaping @Sendable (inout Scheduler, any FleetStore) async throws -> T
    ) async throws -> T {
        do {
            return try await scheduling.update { [audit] scheduler, tx in
                let result = try await body(&scheduler, tx)
                try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
                return result
            }
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// Runs a scheduling pass after a change that may matter to it. The change has committed already, so
    /// a failing pass is logged, not reported to the caller; the next pass picks up where it left off.
    func reschedule(after request: RequestInfo) async {
        do {
            try await scheduling.pass(after: request.requestID)
        } catch {
            logger.error(
                "scheduling pass failed", metadata: ["error": "\(error)", "requestId": "\(request.requestID)"])
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
    /// Rebuilds the scheduler from the store (nodes, quotas, waiting jobs, jobs holding GPUs where they are)
    /// and runs a first pass. Call once at start-up; later use would rebuild it on demand anyway.
    public func startScheduling() async throws {
        try await scheduling.pass()
    }

    /// Runs placed jobs through `runner` until the calling task is cancelled: launches them, stops those that
    /// lose their GPUs, records their starts and ends and the scrubs of their GPUs. The server runs this
    /// beside the API.
    public func runJobs(on runner: any JobRunner) async {
        let execution = ExecutionService(
            runner: runner, scheduling: scheduling, fleet: fleet, audit: audit, clock: clock, logger: logger,
            inputSource: JobDatasets(plane: self), onEnded: { [weak self] job in await self?.sealJobLogs(job) }
        ) { [self] report in
            let view = GPUScrubView(report, at: clock.now())
            lastScrubs.withLock { $0[report.node, default: [:]][report.gpuUUID] = view }
        }
        scheduling.whenCommitted { execution.kick() }
        self.runner.withLock { $0 = runner }
        execution.kick()
        await withTaskCancellationHandler {
            await execution.run()
        } onCancel: {
            execution.finish()
        }
    }

    /// Runs one scheduling pass now and returns once its decisions are persisted and audited.
    @discardableResult
    public func runSchedulingPass() async throws -> [Decision] {
        try await scheduling.pass()
    }
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
