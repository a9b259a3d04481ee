import AuditLog
import CaduceusCore
import Identity
import SQLKit

/// The audit outbox in the database (distributed mode): events a follower recorded, under the SHA-256 of
/// their bytes, as base64url text, until the leader's journal batch that holds them takes them out
/// (`SQLAuditJournal.append`). An event recorded inside a store transaction goes in on that transaction's
/// connection and commits with it; any other, on a connection of its own.
public final class SQLAuditOutbox: AuditOutbox {
    let engine: any SQLEngine
    /// Orders the waiting entries only; the events carry their own times.
    let clock: any WallClock = SystemWallClock()

    init(engine: any SQLEngine) { self.engine = engine }

    public func put(_ entry: [UInt8]) async throws {
        let digest = OutboxEntry.digest(of: entry)
        let encoded = Base64URL.encode(entry)
        let now = clock.now().millisecondsSinceEpoch
        try await SQLTransaction.statement(engine, pinned: SQLTransaction.open) { db in
            try await db.raw(
                """
                INSERT INTO audit_outbox (digest, recorded_at, entry) VALUES (\(bind: digest), \(bind: now), \
                \(bind: encoded)) ON CONFLICT (digest) DO NOTHING
                """
            ).run()
        }
    }

    public var joinsTransaction: Bool { SQLTransaction.open != nil }

    public func pending(limit: Int) async throws -> [OutboxEntry] {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            try await db.raw(
                "SELECT digest, entry FROM audit_outbox ORDER BY recorded_at, digest LIMIT \(bind: limit)"
            ).all().map { row in
                OutboxEntry(
                    digest: try row.decode(column: "digest", as: String.self),
                    entry: Base64URL.decode(try row.decode(column: "entry", as: String.self)) ?? [])
            }
        }
    }

    public func discard(_ digest: String) async throws {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            try await db.raw("DELETE FROM audit_outbox WHERE digest = \(bind: digest)").run()
        }
    }

    /// How many entries wait.
    public func count() async throws -> Int {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            try await db.raw("SELECT COUNT(*) AS n FROM audit_outbox").first()?.decode(column: "n", as: Int.self) ?? 0
        }
    }
}
