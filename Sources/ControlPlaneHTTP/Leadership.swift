import AuditLog
import CaduceusCore
import ControlPlane
import Crypto
import Foundation
import Hummingbird
import Identity
import Logging
import Persistence
import Sealing
import ServiceLifecycle
import Synchronization

/// The control plane proper, which runs on the replica that leads: the audit trail (sequenced here; on
/// PostgreSQL its durable record is the shared journal, which `lead()` first catches up from), the use cases,
/// the scheduler rebuilt from the store, and the services that must have one owner — job runners, the node
/// agents' listener and the lifecycle mover.
final class Leadership: Sendable {
    private struct Started: Sendable {
        var trail: AuditTrail
        var services: [any Service]
        var bootstrapFile: String?
    }

    private let configuration: ServerConfiguration
    private let logger: Logger
    private let rootKey: SymmetricKey
    private let ca: InternalCA
    private let database: Database
    private let clock: any WallClock
    private let forwarding: ForwardingKey?
    private let runner: CaduceusServer.RunnerFactory?
    private let onAgentListener: @Sendable (Int) -> Void
    private let clusterStatus: CaduceusServer.ClusterStatusSource
    private let readiness: CaduceusServer.Readiness
    private let responder: ReplicaResponder
    private let started = Mutex<Started?>(nil)
    /// The shared journal's size at this follower's last audit catch-up.
    private let caughtUp = Mutex<UInt64?>(nil)

    init(
        configuration: ServerConfiguration, logger: Logger, rootKey: SymmetricKey, ca: InternalCA, database: Database,
        clock: any WallClock, forwarding: ForwardingKey?, runner: CaduceusServer.RunnerFactory?,
        onAgentListener: @escaping @Sendable (Int) -> Void, clusterStatus: @escaping CaduceusServer.ClusterStatusSource,
        readiness: @escaping CaduceusServer.Readiness, responder: ReplicaResponder
    ) {
        self.configuration = configuration
        self.logger = logger
        self.rootKey = rootKey
        self.ca = ca
        self.database = database
        self.clock = clock
        self.forwarding = forwarding
        self.runner = runner
        self.onAgentListener = onAgentListener
        self.clusterStatus = clusterStatus
        self.readiness = readiness
        self.responder = responder
    }

    /// Whether this replica's control plane is running.
    var isLeading: Bool { started.withLock { $0 != nil } }

    /// Where the bootstrap administrator's credentials were written, when this start made them.
    var bootstrapFile: String? { started.withLock { $0?.bootstrapFile } }

    /// The services that run while this replica leads.
    var services: [any Service] { started.withLock { $0?.services ?? [] } }

    /// Starts the control plane and answers the API with it from now on. On PostgreSQL, `lease` fences the
    /// shared audit journal: once another replica holds the lead, this one can append nothing.
    func lead(fencedBy lease: LeaseRecord?) async throws {
        let data = configuration.dataDirectory
        let auditKeys = try AuditKeys.loadOrCreate(directory: data + "/keys", origin: configuration.auditOrigin)
        // Catching up from the shared journal blocks on the database: off the concurrency pool.
        let shared = forwarding == nil ? nil : database.auditPayloads
        let trail = try await DedicatedThread.run { [self] in
            try AuditTrail(
                directory: data + "/audit", keys: auditKeys, options: auditOptions(fencedBy: lease),
                sharedPayloads: shared,
                logger: logger)
        }
        Self.report(trail.log.committerPriority, logger: logger)
        do {
            if let shared {
                try await AuditTrail.copyPayloads(
                    log: data + "/audit", size: trail.log.materializedCheckpoint.checkpoint.size,
                    payloads: trail.payloads, from: shared)
            }
            try await start(trail: trail, auditKeys: auditKeys)
        } catch {
            try? await trail.close()
            throw error
        }
    }

    private func start(trail: AuditTrail, auditKeys: AuditKeys) async throws {
        let data = configuration.dataDirectory
        let plane = try Self.plane(
            configuration, database: database, rootKey: rootKey, clock: clock, logger: logger,
            audit: AuditRecorder(trail: trail, clock: clock))
        guard let storageResidency = Residency(rawValue: configuration.localResidency) else {
            throw CaduceusError(code: "config.value", message: "localResidency is not a residency")
        }
        try await plane.enableDatasets(
            DatasetSettings(
                store: database.datasets, root: KeyFileRootKeyProvider(rootKey: rootKey),
                files: CaduceusServer.objectFiles(data, configuration), storageResidency: storageResidency,
                auditDirectory: data + "/audit", auditVerifierKey: auditKeys.signer.verifierKey,
                certificateSigner: auditKeys.signer))
        var bootstrapFile: String?
        if let admin = try await plane.bootstrapIfEmpty() {
            let path = data + "/bootstrap-admin.json"
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try SecureFile.write(Array(try encoder.encode(admin)) + [0x0A], to: path, mode: 0o600)
            bootstrapFile = path
        }
        try await plane.startScheduling()

        var services: [any Service] = []
        var runners: [any JobRunner] = []
        if let local = try await runner?(plane) { runners.append(local) }
        if let (agentHost, agentPort) = try configuration.agentBindAddress() {
            let agents = try await plane.enableRemoteAgents(
                issuer: ca,
                settings: RemoteAgents.Settings(
                    heartbeatTimeoutSeconds: configuration.agentTimeoutSeconds,
                    certificateDays: configuration.agentCertificateDays, logDirectory: data + "/agent-logs"))
            agents.agentPort = agentPort
            services.append(
                try AgentListener.makeApplication(
                    plane: plane, agents: agents, ca: ca, host: agentHost, port: agentPort, logger: logger,
                    onRunning: { [onAgentListener] port in
                        agents.agentPort = port
                        onAgentListener(port)
                    }))
            runners.append(agents)
        }
        if configuration.lifecycleIntervalMinutes > 0 {
            services.append(LifecycleService(plane: plane, minutes: configuration.lifecycleIntervalMinutes))
        }
        if !runners.isEmpty {
            services.append(JobService(plane: plane, runner: runners.count == 1 ? runners[0] : JobRunners(runners)))
        }
        if forwarding != nil {
            services.append(AuditWatch(log: trail.log))
            services.append(
                OutboxDrain(
                    trail: trail, outbox: database.auditOutbox, payloads: database.auditPayloads, logger: logger))
            services.append(SessionChangesService(plane: plane))
        }
        let router = try CaduceusServer.makeRouter(
            plane: plane, logger: logger, metrics: ServerMetrics(trail: trail), caPEM: ca.caCertificatePEM,
            clusterStatus: clusterStatus, readiness: readiness, forwarding: forwarding)
        started.withLock { $0 = Started(trail: trail, services: services, bootstrapFile: bootstrapFile) }
        responder.lead(with: router.buildResponder())
        logger.notice(
            "the control plane runs on this replica", metadata: ["auditSize": "\(trail.log.checkpoint.checkpoint.size)"]
        )
    }

    /// The use cases over the shared stores, auditing through `audit`: the leader's whole control plane, or,
    /// on a follower, the part that answers `APIRoutes.anyReplica`.
    static func plane(
        _ configuration: ServerConfiguration, database: Database, rootKey: SymmetricKey, clock: any WallClock,
        logger: Logger, audit: AuditRecorder
    ) throws -> ControlPlane {
        ControlPlane(
            store: database.identity, fleet: database.fleet, audit: audit, clock: clock, hasher: PasswordHasher(),
            totpBox: SecretBox(rootKey: rootKey, purpose: "totp"),
            settings: ControlPlaneSettings(
                sessions: try SessionRules(
                    idleMinutes: configuration.idleTimeoutMinutes, lifetimeHours: configuration.sessionLifetimeHours)),
            logger: logger)
    }

    /// Says at start-up whether the audit committer runs at the priority asked for, and how to grant it if not.
    static func report(_ priority: CommitterPriority, logger: Logger) {
        let granted = priority.granted.map { "nice \($0)" } ?? "a priority it cannot read"
        if priority.isGranted {
            logger.info("the audit log's committer runs at \(granted)")
        } else {
            logger.notice(
                """
                the audit log's committer runs at \(granted), not nice \(priority.requested): this process may not \
                raise a thread's priority. Every audited request waits on that thread; allow it with CAP_SYS_NICE or \
                RLIMIT_NICE (systemd: LimitNICE=\(priority.requested)), or set auditCommitterNice to 0
                """)
        }
    }

    /// The audit log's options: on PostgreSQL, the shared journal is its durable record.
    private func auditOptions(fencedBy lease: LeaseRecord?) -> TransparencyLogOptions {
        var options = TransparencyLogOptions()
        options.committerNice = Int32(configuration.auditCommitterNice)
        if forwarding != nil {
            options.shared = lease.map { database.auditJournal.fenced(by: $0) } ?? database.auditJournal
        }
        return options
    }

    /// While another replica leads: brings this replica's audit tiles and checkpoint up to the shared journal,
    /// so that its `audit/` folder, too, holds the whole history for proofs and offline verification.
    func catchUpAudit() async {
        guard forwarding != nil, !isLeading else { return }
        let data = configuration.dataDirectory
        do {
            // Nothing appended since the last catch-up: nothing to open.
            let journal = database.auditJournal
            let end = try await DedicatedThread.run { try journal.last()?.endIndex ?? 0 }
            guard end != caughtUp.withLock({ $0 }) else { return }
            let keys = try AuditKeys.loadOrCreate(directory: data + "/keys", origin: configuration.auditOrigin)
            let log = try await DedicatedThread.run { [self] in
                try TransparencyLog(
                    directory: data + "/audit", signer: keys.signer, options: auditOptions(fencedBy: nil),
                    logger: logger)
            }
            try await log.close()
            try await AuditTrail.copyPayloads(
                log: data + "/audit", size: log.materializedCheckpoint.checkpoint.size,
                payloads: PayloadStore(directory: data + "/audit/payloads", key: keys.payloadKey),
                from: database.auditPayloads)
            caughtUp.withLock { $0 = log.materializedCheckpoint.checkpoint.size }
        } catch {
            logger.warning("cannot bring the audit log up to the shared journal", metadata: ["error": "\(error)"])
        }
    }

    /// Commits what the audit trail holds and stops it.
    func close() async throws {
        if let trail = started.withLock({ $0?.trail }) { try await trail.close() }
    }
}

/// Waits until this replica leads (at once, on SQLite), keeping its audit folder up to the shared journal
/// meanwhile, starts the control plane if it is not yet running, and runs its single-owner services until
/// shutdown.
struct LeaderService: Service {
    let replica: ReplicaService
    let leadership: Leadership

    func run() async throws {
        if !leadership.isLeading {
            let lease = await cancelWhenGracefulShutdown { () -> LeaseRecord? in
                var lastCatchUp = ContinuousClock.now
                while !Task.isCancelled {
                    if let lease = replica.heldLease { return lease }
                    if ContinuousClock.now - lastCatchUp > .seconds(15) {
                        await leadership.catchUpAudit()
                        lastCatchUp = ContinuousClock.now
                    }
                    try? await Task.sleep(for: .milliseconds(200))
                }
                return nil
            }
            guard let lease else { return }
            try await leadership.lead(fencedBy: lease)
        }
        let services = leadership.services
        if services.isEmpty {
            try? await gracefulShutdown()
            return
        }
        try await ServiceGroup(services: services, logger: replica.logger).run()
    }
}

/// On a replica of several: once the audit log has failed closed (the shared journal holds a batch this
/// replica did not expect, or the local disk failed), the replica stops, so that it leaves the lead to one
/// that starts from the shared journal rather than refusing every request.
struct AuditWatch: Service {
    let log: TransparencyLog

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if let failure = log.failure {
                    throw CaduceusError(
                        code: "audit.failed", message: "the audit log failed closed; this replica stops: \(failure)")
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// On the leader of several replicas: appends the events followers recorded in the audit outbox to the log,
/// as they arrive (within `interval`). Each leaves the outbox with the journal batch that holds it, so none
/// is appended twice, even by a leader that dies half-way and the one after it.
struct OutboxDrain: Service {
    let trail: AuditTrail
    let outbox: any AuditOutbox
    let payloads: any SharedPayloads
    let logger: Logger
    var interval: Duration = .milliseconds(100)
    /// The most entries one drain takes.
    static let page = 512

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                do {
                    let (appended, refused) = try await trail.drain(outbox, payloads: payloads, limit: Self.page)
                    for entry in refused {
                        logger.error(
                            "the audit outbox held something that is not an audit event; it was taken out",
                            metadata: ["digest": "\(entry.digest)", "entry": "\(Base64URL.encode(entry.entry))"])
                    }
                    if failing { logger.notice("the audit outbox drains again") }
                    failing = false
                    // A full page: more may wait. Otherwise what arrives meanwhile goes in together, in
                    // fewer, larger batches and with fewer reads of the outbox.
                    if appended + refused.count >= OutboxDrain.page { continue }
                } catch {
                    if !failing {
                        logger.warning("cannot drain the audit outbox", metadata: ["error": "\(error)"])
                    }
                    failing = true
                }
                try? await Task.sleep(for: failing ? .seconds(1) : interval)
            }
        }
    }
}

/// Keeps a control plane's session cache in step with the changes other replicas make, for as long as
/// `needed` says (a follower's, until it leads).
struct SessionChangesService: Service {
    let plane: ControlPlane
    var needed: @Sendable () -> Bool = { true }

    func run() async throws {
        await cancelWhenGracefulShutdown { await plane.followSessionChanges(while: needed) }
        // A service that ends stops the whole group: once no longer needed, it waits for the shutdown.
        try? await gracefulShutdown()
    }
}
