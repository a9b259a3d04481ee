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
///
/// With `stopsOnLosingLead` (several replicas on PostgreSQL), a replica that led and can no longer say so —
/// another replica holds the lease, or its own lease ran out while it could not reach the database — stops
/// the whole process, so that at no time do two replicas act as leader.
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
    private let leader = Mutex<String?>(nil)
    /// Until when this replica's lease runs, once it has led.
    private let ledUntil = Mutex<Timestamp?>(nil)
    let stopsOnLosingLead: Bool

    init(
        database: Database, clock: any WallClock, logger: Logger, interval: Duration = .seconds(1),
        leaseSeconds: Int64 = 6, stopsOnLosingLead: Bool = false
    ) {
        self.stopsOnLosingLead = stopsOnLosingLead
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
    var isLeader: Bool { heldLease != nil }

    /// The lease while this replica holds it (its fencing token included).
    var heldLease: LeaseRecord? {
        lease.withLock { lease in lease.flatMap { $0.holder == id && $0.expiresAt > clock.now() ? $0 : nil } }
    }

    /// Where the leading replica answers, while another replica leads; nil while this one does or none does.
    var leaderURL: String? { leader.withLock { $0 } }

    func run() async throws {
        let lost = await cancelWhenGracefulShutdown { () -> Bool in
            while !Task.isCancelled {
                if await self.beat() && self.stopsOnLosingLead { return true }
                try? await Task.sleep(for: self.interval)
            }
            return false
        }
        if lost {
            throw CaduceusError(
                code: "cluster.leadLost",
                message: "this replica lost the leader lease; it stops so that only one replica leads "
                    + "(start it again to rejoin as a follower)")
        }
        try? await database.cluster.release(Self.leaseName, holder: id)
    }

    /// One heartbeat and one lease renewal (or attempt); true when this replica led and no longer does.
    @discardableResult
    func beat() async -> Bool {
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
            let leads = held.holder == id
            if leads {
                ledUntil.withLock { $0 = held.expiresAt }
                leader.withLock { $0 = nil }
            } else {
                let url = held.expiresAt > now ? try await database.cluster.replica(held.holder)?.url : nil
                leader.withLock { $0 = url.flatMap { $0.isEmpty ? nil : $0 } }
            }
            if !was && leads {
                logger.notice("this replica leads", metadata: ["replica": "\(id)", "token": "\(held.token)"])
            } else if was && !leads {
                logger.warning(
                    "this replica lost the lead", metadata: ["replica": "\(id)", "leader": "\(held.holder)"])
            }
            return !leads && ledUntil.withLock { $0 } != nil
        } catch {
            // A replica that cannot reach the database cannot know it still leads: it stops counting itself,
            // and once its lease has run out another replica may lead.
            lease.withLock { $0 = nil }
            leader.withLock { $0 = nil }
            logger.error("replica heartbeat failed", metadata: ["error": "\(error)"])
            return ledUntil.withLock { $0 }.map { $0 <= clock.now() } ?? false
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
