import AuditLog
import CaduceusCore
import Identity

/// The control plane's own machinery as an operator sees it: replicas, leader, database and Slurm.
public struct ClusterStatus: Codable, Sendable, Equatable {
    /// One `caduceus serve` process sharing the database.
    public struct Replica: Codable, Sendable, Equatable {
        public var id: String
        public var host: String
        public var url: String
        public var version: String
        public var startedAt: String
        public var lastSeenAt: String
        public var leader: Bool
        /// Whether this is the replica that answered.
        public var answering: Bool

        public init(
            id: String, host: String, url: String, version: String, startedAt: String, lastSeenAt: String,
            leader: Bool, answering: Bool
        ) {
            self.id = id
            self.host = host
            self.url = url
            self.version = version
            self.startedAt = startedAt
            self.lastSeenAt = lastSeenAt
            self.leader = leader
            self.answering = answering
        }
    }

    /// The metadata database.
    public struct Database: Codable, Sendable, Equatable {
        public var engine: String
        public var reachable: Bool
        public var version: String?
        public var encrypted: Bool?
        public var problem: String?

        public init(engine: String, reachable: Bool, version: String?, encrypted: Bool?, problem: String?) {
            self.engine = engine
            self.reachable = reachable
            self.version = version
            self.encrypted = encrypted
            self.problem = problem
        }
    }

    /// The Slurm cluster jobs run on, when there is one.
    public struct Slurm: Codable, Sendable, Equatable {
        public var endpoint: String
        public var reachable: Bool
        public var release: String?
        /// Caduceus nodes Slurm runs work on.
        public var nodes: [String]
        /// Tenants whose jobs are refused, and why (a partition holding another tenant's node).
        public var refusedTenants: [String: String]
        public var problem: String?

        public init(
            endpoint: String, reachable: Bool, release: String?, nodes: [String], refusedTenants: [String: String],
            problem: String?
        ) {
            self.endpoint = endpoint
            self.reachable = reachable
            self.release = release
            self.nodes = nodes
            self.refusedTenants = refusedTenants
            self.problem = problem
        }
    }

    public var replicas: [Replica]
    /// The replica holding the leader lease.
    public var leader: String?
    /// The leader lease's fencing token: it grows each time the lease changes hands.
    public var leaderToken: Int?
    public var database: Database
    public var slurm: Slurm?

    public init(
        replicas: [Replica], leader: String?, leaderToken: Int?, database: Database, slurm: Slurm?
    ) {
        self.replicas = replicas
        self.leader = leader
        self.leaderToken = leaderToken
        self.database = database
        self.slurm = slurm
    }
}

extension ControlPlane {
    /// Shows the cluster's replicas, leader, database and Slurm (platform administrators; audited).
    public func clusterStatus(
        _ request: RequestInfo, gather: @escaping @Sendable () async -> ClusterStatus
    ) async throws -> ClusterStatus {
        let subject = AuditRecorder.Subject(action: "cluster.show", resourceType: "cluster", resourceID: "this")
        let decision = try await authorize(request, .fleetRead, in: .platform, subject)
        return try await read(request, subject, decision: decision) { _ in await gather() }
    }
}
