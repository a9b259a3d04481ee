import CaduceusCore
import SQLKit

/// A control-plane process sharing the database, as it last said it was alive.
public struct ReplicaRecord: Sendable, Equatable, Codable {
    public var id: String
    public var host: String
    public var url: String
    public var version: String
    public var startedAt: Timestamp
    public var lastSeenAt: Timestamp

    public init(id: String, host: String, url: String, version: String, startedAt: Timestamp, lastSeenAt: Timestamp) {
        self.id = id
        self.host = host
        self.url = url
        self.version = version
        self.startedAt = startedAt
        self.lastSeenAt = lastSeenAt
    }
}

/// Who holds a lease, and its fencing token: it grows by one each time the lease changes hands, so work
/// stamped with an older token can be refused.
public struct LeaseRecord: Sendable, Equatable, Codable {
    public var name: String
    public var holder: String
    public var token: Int
    public var expiresAt: Timestamp
}

/// The replicas sharing the database, and the leases that give work a single owner.
public final class SQLClusterStore: Sendable {
    let engine: any SQLEngine

    init(engine: any SQLEngine) { self.engine = engine }

    /// Records `replica` (again, after a restart) as alive now.
    public func heartbeat(_ replica: ReplicaRecord) async throws {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            try await db.raw(
                """
                INSERT INTO replicas (id, host, url, version, started_at, last_seen_at)
                VALUES (\(bind: replica.id), \(bind: replica.host), \(bind: replica.url), \(bind: replica.version),
                    \(bind: replica.startedAt.millisecondsSinceEpoch), \(bind: replica.lastSeenAt.millisecondsSinceEpoch))
                ON CONFLICT (id) DO UPDATE SET last_seen_at = excluded.last_seen_at, url = excluded.url
                """
            ).run()
        }
    }

    /// The replica `id` as it last said it was alive, if it has.
    public func replica(_ id: String) async throws -> ReplicaRecord? {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            try await db.raw("SELECT * FROM replicas WHERE id = \(bind: id)").first().map(Self.replica)
        }
    }

    /// Every replica seen since `since`, oldest start first; older records are removed.
    public func replicas(seenSince since: Timestamp) async throws -> [ReplicaRecord] {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            try await db.raw("DELETE FROM replicas WHERE last_seen_at < \(bind: since.millisecondsSinceEpoch)").run()
            return try await db.raw("SELECT * FROM replicas ORDER BY started_at, id").all().map(Self.replica)
        }
    }

    /// Takes or renews the lease `name` for `holder` until `expiresAt`, if it is free, expired or already
    /// `holder`'s; returns the lease as it stands after (held by someone else when it was not free).
    public func acquire(
        _ name: String, holder: String, now: Timestamp, expiresAt: Timestamp
    ) async throws
        -> LeaseRecord
    {
        do {
            return try await engine.transaction { db in
                try await db.raw(
                    """
                    INSERT INTO leases (name, holder, token, expires_at)
                    VALUES (\(bind: name), \(bind: holder), 1, \(bind: expiresAt.millisecondsSinceEpoch))
                    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                        token = leases.token + CASE WHEN leases.holder = excluded.holder THEN 0 ELSE 1 END,
                        expires_at = excluded.expires_at
                    WHERE leases.holder = excluded.holder OR leases.expires_at < \(bind: now.millisecondsSinceEpoch)
                    """
                ).run()
                guard let row = try await db.raw("SELECT * FROM leases WHERE name = \(bind: name)").first() else {
                    throw CaduceusError(code: "store.failure", message: "the lease \(name) vanished")
                }
                return try Self.lease(row)
            }
        } catch {
            throw SQLErrors.translate(error)
        }
    }

    /// Gives the lease up at once (a clean shutdown), so another replica need not wait for it to expire.
    public func release(_ name: String, holder: String) async throws {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            try await db.raw(
                "UPDATE leases SET expires_at = 0 WHERE name = \(bind: name) AND holder = \(bind: holder)"
            ).run()
        }
    }

    /// The lease `name` as it stands.
    public func lease(_ name: String) async throws -> LeaseRecord? {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            try await db.raw("SELECT * FROM leases WHERE name = \(bind: name)").first().map(Self.lease)
        }
    }

    static func replica(_ row: any SQLRow) throws -> ReplicaRecord {
        ReplicaRecord(
            id: try row.decode(column: "id", as: String.self),
            host: try row.decode(column: "host", as: String.self),
            url: try row.decode(column: "url", as: String.self),
            version: try row.decode(column: "version", as: String.self),
            startedAt: Timestamp(millisecondsSinceEpoch: try row.decode(column: "started_at", as: Int64.self)),
            lastSeenAt: Timestamp(millisecondsSinceEpoch: try row.decode(column: "last_seen_at", as: Int64.self)))
    }

    static func lease(_ row: any SQLRow) throws -> LeaseRecord {
        LeaseRecord(
            name: try row.decode(column: "name", as: String.self),
            holder: try row.decode(column: "holder", as: String.self),
            token: try row.decode(column: "token", as: Int.self),
            expiresAt: Timestamp(millisecondsSinceEpoch: try row.decode(column: "expires_at", as: Int64.self)))
    }
}
