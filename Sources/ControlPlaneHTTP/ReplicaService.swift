import CaduceusCore
import ControlPlane
import Foundation
import Logging
import Persistence
import ServiceLifecycle
import Synchronization

/// This process as one replica of the control plane: it says it is alive every `interval`, and takes or
/// renews the leader lease (`leader`, held for `leaseSeconds`), whose fencing token grows each time the lease
/// changes hands. On a clean stop it gives the lease up so another replica takes over at once.
final class ReplicaService: Service, Sendable {
    static let leaseName = "leader"
    let id: String
    let database: Database
    let clock: any WallClock
    let logger: Logger
    let interval: Duration
    let leaseSeconds: Int64
    private let record: Mutex<ReplicaRecord>
    private let lease = Mutex<LeaseRecord?>(nil)

    init(
        database: Database, clock: any WallClock, logger: Logger, interval: Duration = .seconds(1),
        leaseSeconds: Int64 = 6
    ) {
        self.id = "rep-" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        self.database = database
        self.clock = clock
        self.logger = logger
        self.interval = interval
        self.leaseSeconds = leaseSeconds
        let now = clock.now()
        record = Mutex(
            ReplicaRecord(
                id: id, host: ProcessInfo.processInfo.hostName, url: "", version: CaduceusVersion.current,
                startedAt: now, lastSeenAt: now))
    }

    /// Where this replica answers, once it listens.
    func listening(at url: String) { record.withLock { $0.url = url } }

    /// Whether this replica holds the leader lease now.
    var isLeader: Bool {
        lease.withLock { lease in
            guard let lease else { return false }
            return lease.holder == id && lease.expiresAt > clock.now()
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.beat()
                try? await Task.sleep(for: self.interval)
            }
        }
        try? await database.cluster.release(Self.leaseName, holder: id)
    }

    /// One heartbeat and one lease renewal (or attempt).
    func beat() async {
        let now = clock.now()
        let mine = record.withLock { record -> ReplicaRecord in
            record.lastSeenAt = now
            return record
        }
        do {
            try await database.cluster.heartbeat(mine)
            let held = try await database.cluster.acquire(
                Self.leaseName, holder: id, now: now, expiresAt: now.adding(milliseconds: leaseSeconds * 1000))
            let was = lease.withLock { lease -> Bool in
                defer { lease = held }
                return lease?.holder == id
            }
            if !was && held.holder == id {
                logger.notice("this replica leads", metadata: ["replica": "\(id)", "token": "\(held.token)"])
            } else if was && held.holder != id {
                logger.warning(
                    "this replica lost the lead", metadata: ["replica": "\(id)", "leader": "\(held.holder)"])
            }
        } catch {
            // A replica that cannot reach the database cannot know it still leads: it stops counting itself.
            lease.withLock { $0 = nil }
            logger.error("replica heartbeat failed", metadata: ["error": "\(error)"])
        }
    }

    /// What a router made without a replica (tests of the routes) shows: no replicas, no database view.
    static let standalone: CaduceusServer.ClusterStatusSource = {
        ClusterStatus(
            replicas: [], leader: nil, leaderToken: nil,
            database: .init(engine: "none", reachable: false, version: nil, encrypted: nil, problem: "no database"),
            slurm: nil)
    }

    /// The cluster as this replica sees it.
    func status(slurm: ClusterStatus.Slurm?) async -> ClusterStatus {
        let now = clock.now()
        var databaseView: ClusterStatus.Database
        var replicas: [ClusterStatus.Replica] = []
        var leader: LeaseRecord?
        do {
            let status = try await database.status()
            databaseView = .init(
                engine: status.engine, reachable: true, version: status.version, encrypted: status.encrypted,
                problem: nil)
            leader = try await database.cluster.lease(Self.leaseName).flatMap { $0.expiresAt > now ? $0 : nil }
            replicas = try await database.cluster.replicas(seenSince: now.adding(milliseconds: -leaseSeconds * 1000))
                .map { record in
                    ClusterStatus.Replica(
                        id: record.id, host: record.host, url: record.url, version: record.version,
                        startedAt: RFC3339.format(record.startedAt), lastSeenAt: RFC3339.format(record.lastSeenAt),
                        leader: record.id == leader?.holder, answering: record.id == id)
                }
        } catch {
            databaseView = .init(
                engine: database.engineName, reachable: false, version: nil, encrypted: nil, problem: "\(error)")
        }
        return ClusterStatus(
            replicas: replicas, leader: leader?.holder, leaderToken: leader?.token, database: databaseView,
            slurm: slurm)
    }
}
