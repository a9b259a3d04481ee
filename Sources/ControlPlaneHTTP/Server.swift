import AuditLog
import CaduceusCore
import ControlPlane
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTLS
import Identity
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Persistence
import Sealing
import ServiceLifecycle
import UnixSignals

/// `caduceus serve`: everything in one process. First start lays out the data directory (0700): the root
/// key, the internal CA and server certificate, the database, the audit log, and the bootstrap
/// administrator's one-time credentials in `bootstrap-admin.json` (0600). Later starts reuse them all.
public enum CaduceusServer {
    /// What start-up reports to the operator.
    public struct Started: Sendable {
        public var url: String
        public var port: Int
        public var caCertificatePath: String
        public var caFingerprint: String
        /// Set on first start only.
        public var bootstrapFile: String?
    }

    /// Makes the runner of this machine's jobs once the control plane is up (embedded mode), or nil.
    public typealias RunnerFactory = @Sendable (ControlPlane) async throws -> (any JobRunner)?

    /// Runs the server until SIGTERM or SIGINT; with a runner from `runner`, placed jobs run through it.
    ///
    /// On SQLite this process is the whole control plane. On PostgreSQL it is one replica of several: only the
    /// replica holding the leader lease runs the control plane (scheduler, runners, lifecycle mover, agent
    /// listener, audit sequencer); the others answer accounts, tenancy and job reads (`APIRoutes.anyReplica`)
    /// themselves, auditing through the outbox, forward every other API request to it, and the first of them
    /// to take the lease after the leader is gone starts the control plane from the database and the shared
    /// audit log.
    public static func run(
        configuration: ServerConfiguration, logger: Logger, runner: RunnerFactory? = nil,
        moreReadiness: @escaping Readiness = { [:] },
        slurmStatus: @escaping @Sendable () async -> ClusterStatus.Slurm? = { nil },
        onAgentListener: @escaping @Sendable (Int) -> Void = { _ in },
        onStarted: @escaping @Sendable (Started) -> Void
    ) async throws {
        let data = configuration.dataDirectory
        try SecureFile.makeDirectory(data, mode: 0o700)
        try SecureFile.makeDirectory(data + "/keys", mode: 0o700)
        let rootKey = try loadOrCreateRootKey(data + "/keys/root.key")
        let host = ProcessInfo.processInfo.hostName
        let ca = try InternalCA.loadOrCreate(
            directory: data + "/tls", hostNames: ["localhost", "127.0.0.1", host] + configuration.hostNames)
        let database = try await openDatabase(configuration, logger: logger)
        let distributed = configuration.databaseURL != nil
        let clock = SystemWallClock()
        let replica = ReplicaService(database: database, clock: clock, logger: logger, stopsOnLosingLead: distributed)
        await replica.beat()
        let forwarding = ForwardingKey(rootKey: rootKey)
        let readiness: Readiness = {
            var checks = await moreReadiness()
            do {
                try await database.ping()
                checks["database"] = .some(nil)
            } catch {
                // Unauthenticated callers learn only that it is down; the log has why.
                logger.warning("readiness: the database does not answer", metadata: ["error": "\(error)"])
                checks["database"] = "unavailable"
            }
            return checks
        }
        let forwarder =
            distributed
            ? try LeaderForwarder(
                caCertificatePEM: ca.caCertificatePEM, key: forwarding, leaderURL: { replica.leaderURL }) : nil
        // A follower audits the requests it refuses itself through the outbox, for the leader to append.
        let outbox =
            distributed
            ? AuditRecorder(
                sink: OutboxRecorder(
                    outbox: database.auditOutbox, payloads: database.auditPayloads,
                    keys: try AuditKeys.loadOrCreate(directory: data + "/keys", origin: configuration.auditOrigin)),
                clock: clock) : nil
        // A follower answers accounts, sessions, tenancy and job reads itself, over the shared database.
        let followerPlane = try outbox.map {
            try Leadership.plane(
                configuration, database: database, rootKey: rootKey, clock: clock, logger: logger, audit: $0)
        }
        let responder = ReplicaResponder(
            forwarder: forwarder,
            follower: try followerPlane.map {
                try makeRouter(
                    plane: $0, logger: logger, metrics: ServerMetrics(trail: nil), caPEM: ca.caCertificatePEM,
                    clusterStatus: { await replica.status(slurm: await slurmStatus()) }, readiness: readiness,
                    forwarding: forwarding, anyReplicaOnly: true
                ).buildResponder()
            },
            audit: outbox, logger: logger,
            readiness: {
                var checks = await readiness()
                checks["leader"] = replica.leaderURL == nil ? "none" : .some(nil)
                return checks
            })
        let leadership = Leadership(
            configuration: configuration, logger: logger, rootKey: rootKey, ca: ca, database: database, clock: clock,
            forwarding: distributed ? forwarding : nil, runner: runner, onAgentListener: onAgentListener,
            clusterStatus: { await replica.status(slurm: await slurmStatus()) }, readiness: readiness,
            responder: responder)
        // A replica that leads from the start (always, on SQLite) has its control plane ready before it listens.
        if !distributed {
            try await leadership.lead(fencedBy: nil)
        } else if let lease = replica.heldLease {
            try await leadership.lead(fencedBy: lease)
        }
        let bootstrapFile = leadership.bootstrapFile
        let io = MultiThreadedEventLoopGroup(numberOfThreads: configuration.ioThreadCount)
        let app = try makeApplication(
            responder: responder, ca: ca, configuration: configuration, group: io, logger: logger,
            onRunning: { port in
                let shownHost =
                    (try? configuration.bindAddress().host).map { $0 == "0.0.0.0" ? host : $0 } ?? "localhost"
                let advertised = configuration.advertiseURL
                replica.listening(at: advertised.isEmpty ? "https://\(shownHost):\(port)" : advertised)
                onStarted(
                    Started(
                        url: "https://\(shownHost):\(port)", port: port, caCertificatePath: ca.caCertificatePath,
                        caFingerprint: ca.caFingerprint, bootstrapFile: bootstrapFile))
            })
        let group = ServiceGroup(
            configuration: .init(
                services: [app, replica, LeaderService(replica: replica, leadership: leadership)]
                    + (followerPlane.map {
                        [SessionChangesService(plane: $0, needed: { !leadership.isLeading })]
                    } ?? []),
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        var failure: (any Error)?
        do {
            try await group.run()
        } catch {
            failure = error
        }
        await forwarder?.shutdown()
        do {
            try await leadership.close()
            try await database.close()
        } catch {
            failure = failure ?? error
        }
        // The connections' event loops go last: what the request path still hands them as it winds down (a
        // connection's last close, a writer finishing) runs there rather than being refused by a stopped loop.
        try? await io.shutdownGracefully()
        if let failure { throw failure }
    }

    /// What `/readyz` checks: each dependency by name, with nil when it is fine or why it is not.
    public typealias Readiness = @Sendable () async -> [String: String?]

    /// Gathers what `cluster status` shows.
    public typealias ClusterStatusSource = @Sendable () async -> ClusterStatus

    /// The metadata database the configuration names: PostgreSQL at `databaseURL`, or SQLite in the data
    /// directory. Its URL is logged only with the password masked.
    static func openDatabase(_ configuration: ServerConfiguration, logger: Logger) async throws -> Database {
        guard let text = configuration.databaseURL else {
            return try await Database.openSQLite(path: configuration.dataDirectory + "/caduceus.sqlite", logger: logger)
        }
        let url = try DatabaseURL(text)
        logger.info("connecting to PostgreSQL", metadata: ["database": "\(url.redacted)"])
        return try await Database.openPostgres(url, logger: logger)
    }

    /// The HTTPS application: TLS 1.2+ with AEAD suites only, answering through `responder`.
    static func makeApplication(
        responder: ReplicaResponder, ca: InternalCA, configuration: ServerConfiguration,
        group: any EventLoopGroup, logger: Logger, onRunning: @escaping @Sendable (Int) -> Void
    ) throws -> some ApplicationProtocol {
        let (host, port) = try configuration.bindAddress()
        return try Application(
            responder: CallbackResponder<APIContext>(callback: responder.respond),
            server: .tls(.http1(configuration: .init(idleTimeout: .seconds(60))), tlsConfiguration: try tls(ca)),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? port) },
            eventLoopGroupProvider: .shared(group), logger: logger)
    }

    /// The API's router: request middleware, then the routes of `APIRoutes`.
    static func makeRouter(
        plane: ControlPlane, logger: Logger, limiter: RateLimiter = RateLimiter(),
        metrics: ServerMetrics = ServerMetrics(trail: nil), caPEM: String = "",
        clusterStatus: @escaping ClusterStatusSource = ReplicaService.standalone,
        readiness: @escaping Readiness = { [:] }, forwarding: ForwardingKey? = nil, anyReplicaOnly: Bool = false
    ) throws -> Router<APIContext> {
        let router = Router(context: APIContext.self)
        router.add(
            middleware: RequestMiddleware(plane: plane, logger: logger, metrics: metrics, forwarding: forwarding))
        RouteHandlers(
            plane: plane, openAPI: try OpenAPIDocument.json(), metrics: metrics, caPEM: caPEM,
            clusterStatus: clusterStatus, readiness: readiness
        )
        .register(on: router, limiter: limiter, anyReplicaOnly: anyReplicaOnly)
        return router
    }

    /// TLS 1.2 minimum, TLS 1.3 preferred (negotiated when the client offers it), ECDHE with AEAD only.
    static func tls(_ ca: InternalCA) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(ca.serverChainPEM.utf8)).map {
                .certificate($0)
            },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(ca.serverKeyPEM.utf8), format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        tls.cipherSuiteValues = [
            .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
        _ = try NIOSSLContext(configuration: tls)
        return tls
    }

    /// The tier directories: those configured, the rest under `<data>/objects/`.
    static func objectFiles(_ data: String, _ configuration: ServerConfiguration) throws -> ObjectFiles {
        var files = ObjectFiles(root: data + "/objects")
        for (name, path) in try configuration.tierDirectories() {
            if let tier = StorageTier(rawValue: name) { files.tiers[tier] = path }
        }
        return files
    }

    static func loadOrCreateRootKey(_ path: String) throws -> SymmetricKey {
        if let bytes = try SecureFile.read(path) {
            guard bytes.count == 32 else {
                throw CaduceusError(code: "keys.root", message: "\(path) is not a 32-byte key")
            }
            guard let mode = SecureFile.mode(path), mode & 0o077 == 0 else {
                throw CaduceusError(code: "keys.root", message: "\(path) is readable by others; it must have mode 0600")
            }
            return SymmetricKey(data: bytes)
        }
        let key = SymmetricKey(size: .bits256)
        try SecureFile.write(key.withUnsafeBytes { Array($0) }, to: path, mode: 0o600)
        return key
    }
}

/// Runs placed jobs through the runner for as long as the server runs.
struct JobService: Service {
    let plane: ControlPlane
    let runner: any JobRunner

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await plane.runJobs(on: runner)
        }
    }
}

/// Moves objects between tiers by their lifecycle rules, every few minutes, for as long as the server runs.
struct LifecycleService: Service {
    let plane: ControlPlane
    let minutes: Int

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(minutes * 60))
                guard !Task.isCancelled else { return }
                await plane.runLifecycle()
            }
        }
    }
}
