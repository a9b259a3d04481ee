import AuditLog
import CaduceusCore
import Identity
import NIOCore
import SQLKit

/// The audit log's shared journal in the database (distributed mode): one row per committed batch, the
/// batch as the journal encodes it (with its own SHA-256), stored as base64url text so both engines keep
/// it alike. A batch is recorded only where the log ends, inside one transaction, so two replicas can
/// never fork the log; a journal fenced by a lease records a batch only while that lease, with that fencing
/// token, is still its holder's, so a leader that lost the lead without knowing it cannot append.
public final class SQLAuditJournal: SharedJournal {
    let engine: any SQLEngine
    let fence: LeaseRecord?

    init(engine: any SQLEngine, fence: LeaseRecord? = nil) {
        self.engine = engine
        self.fence = fence
    }

    /// This journal, appending only while `lease` (its holder and fencing token) stands.
    public func fenced(by lease: LeaseRecord) -> SQLAuditJournal { SQLAuditJournal(engine: engine, fence: lease) }

    public func last() throws -> JournalRecord? {
        try run { db in
            db.raw("SELECT first_index, record FROM audit_batches ORDER BY first_index DESC LIMIT 1").first()
        }.map(Self.record)
    }

    public func append(_ record: JournalRecord) throws {
        let encoded = Base64URL.encode(record.encoded())
        let first = Int64(record.firstIndex)
        let fence = self.fence
        // The batch goes in only where the shared log ends and only while the fence (the lease) is still this
        // replica's; the unique first index keeps two writers that both saw the same end from both getting in.
        let insert: SQLQueryString = """
            INSERT INTO audit_batches (first_index, end_index, record)
            SELECT \(bind: first), \(bind: Int64(record.endIndex)), \(bind: encoded)
            WHERE (SELECT COALESCE(MAX(end_index), 0) FROM audit_batches) = \(bind: first)
                AND (\(bind: fence == nil) OR EXISTS (
                    SELECT 1 FROM leases WHERE name = \(bind: fence?.name ?? "")
                        AND holder = \(bind: fence?.holder ?? "") AND token = \(bind: Int64(fence?.token ?? 0))))
            RETURNING first_index
            """
        // The batch's entries that came from the outbox leave it with the batch, atomically: exactly once.
        let digests: [any Encodable & Sendable] = record.entries.map { OutboxEntry.digest(of: $0) }
        let consume: SQLQueryString = "DELETE FROM audit_outbox WHERE digest IN (\(binds: digests))"
        let inserted = try run { db in
            guard db.dialect.name != "sqlite" else {
                return SQLiteBatch.insert(insert, consume, on: db)
            }
            // PostgreSQL: one statement, so one round trip while every appender waits on this batch.
            return db.raw(
                """
                WITH inserted AS (\(insert)),
                consumed AS (\(consume) AND EXISTS (SELECT 1 FROM inserted))
                SELECT first_index FROM inserted
                """
            ).first()
        }
        if inserted == nil {
            do {
                throw try BlockingBridge.run { [engine] in try await Self.refusal(engine, record, fence) }
            } catch {
                throw SQLErrors.translate(error)
            }
        }
    }

    /// Why a batch was not appended: the fence is no longer this replica's, or the log ends elsewhere.
    private static func refusal(
        _ engine: any SQLEngine, _ record: JournalRecord, _ fence: LeaseRecord?
    ) async throws
        -> CaduceusError
    {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            if let fence {
                let current = try await db.raw("SELECT * FROM leases WHERE name = \(bind: fence.name)").first()
                    .map(SQLClusterStore.lease)
                guard let current, current.holder == fence.holder, current.token == fence.token else {
                    return CaduceusError(
                        code: SharedJournalError.conflict,
                        message: "the lease \(fence.name) with fencing token \(fence.token) is no longer "
                            + "this replica's: it may not append to the shared audit log")
                }
            }
            let end =
                try await db.raw("SELECT MAX(end_index) AS last_end FROM audit_batches").first()?
                .decode(column: "last_end", as: Int64?.self) ?? 0
            return SharedJournalError.misplaced(expected: UInt64(end), offered: record.firstIndex)
        }
    }

    public func records(from index: UInt64, limit: Int) throws -> [JournalRecord] {
        try run { db in
            db.raw(
                """
                SELECT first_index, record FROM audit_batches WHERE first_index >= \(bind: Int64(index))
                ORDER BY first_index LIMIT \(bind: limit)
                """
            ).all()
        }.map(Self.record)
    }

    /// Runs one statement from the log's committer thread, blocking it; errors come out as `CaduceusError`s.
    private func run<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) -> EventLoopFuture<T>) throws -> T {
        do {
            return try engine.blocking(body)
        } catch {
            throw SQLErrors.translate(error)
        }
    }

    static func record(_ row: any SQLRow) throws -> JournalRecord {
        let first = try row.decode(column: "first_index", as: Int64.self)
        guard let bytes = Base64URL.decode(try row.decode(column: "record", as: String.self)),
            let record = JournalRecord.decode(bytes), record.firstIndex == UInt64(first)
        else {
            throw CaduceusError(
                code: "audit.shared.corrupt", message: "the shared audit batch at entry \(first) is damaged")
        }
        return record
    }
}

/// SQLite has no statements inside `WITH`: the batch and the outbox entries it consumes go in one
/// transaction on its one connection, which the engine holds for this caller.
enum SQLiteBatch {
    static func insert(
        _ insert: SQLQueryString, _ consume: SQLQueryString, on db: any SQLDatabase
    ) -> EventLoopFuture<(any SQLRow)?> {
        db.raw("BEGIN IMMEDIATE").run()
            .flatMap { db.raw(insert).first() }
            .flatMap { row in
                guard row != nil else { return db.raw("COMMIT").run().map { row } }
                return db.raw(consume).run().flatMap { db.raw("COMMIT").run() }.map { row }
            }
            .flatMapError { error in db.raw("ROLLBACK").run().flatMapThrowing { throw error } }
    }
}
