import CaduceusCore
import Dispatch
import NIOCore
import SQLKit

/// How the SQL stores reach their database: one statement at a time, or a whole transaction on one connection.
///
/// SQLite (embedded mode) has one connection and one writer; PostgreSQL has a pool of connections and
/// serializable transactions. The stores above see only `any SQLDatabase` and the same statements.
protocol SQLEngine: Sendable {
    /// Which engine this is: `sqlite` or `postgres`.
    var name: String { get }

    /// Runs `body` with a connection, outside any transaction (each statement commits on its own).
    func statement<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T

    /// Runs `body` atomically: every statement it makes commits together, or none does. May run `body`
    /// again when the database aborts it to keep concurrent transactions serializable.
    func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T

    /// Runs `body` alone: no other process or task using this database runs `exclusive` at the same time
    /// (schema migrations).
    func exclusive<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T

    /// Runs `body` and waits for what it returns, blocking the calling thread: for a thread of its own (the
    /// audit log's committer), never an event loop's or the concurrency pool's.
    func blocking<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) -> EventLoopFuture<T>) throws -> T

    /// Closes every connection.
    func close() async throws
}

/// SQLite: one connection, one lock. A statement takes the lock; a transaction holds it from `BEGIN` to
/// `COMMIT`, so that no two transactions ever interleave.
struct SQLiteEngine: SQLEngine {
    let db: any SQLDatabase
    let lock = AsyncLock()
    let closer: @Sendable () async throws -> Void

    var name: String { "sqlite" }

    func statement<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await lock.withLock { try await body(db) }
    }

    func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await lock.withLock { try await SQLTransaction.atomically(db, begin: "BEGIN", body) }
    }

    func exclusive<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await lock.withLock { try await body(db) }
    }

    /// Through a task, since the one connection is taken with the lock.
    func blocking<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) -> EventLoopFuture<T>) throws -> T {
        try BlockingBridge.run { try await statement { db in try await body(db).get() } }
    }

    func close() async throws { try await closer() }
}

/// Runs async work to completion from a thread that is not one of the concurrency pool's, blocking it meanwhile.
enum BlockingBridge {
    static func run<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = Outcome<T>()
        // The caller (the audit log's committer) is waited on by every appender: ahead of the requests that fill
        // the pool.
        Task.detached(priority: .high) {
            do {
                outcome.value = .success(try await work())
            } catch {
                outcome.value = .failure(error)
            }
            outcome.done.signal()
        }
        outcome.done.wait()
        return try outcome.value!.get()
    }

    /// Safe: `value` is written once before `done` is signalled and read only after it was waited for.
    private final class Outcome<T>: @unchecked Sendable {
        var value: Result<T, any Error>?
        let done = DispatchSemaphore(value: 0)
    }
}

/// The one way the SQL stores run statements: through their engine, or on the connection of the transaction
/// they are bound to. Errors come out as `CaduceusError`s.
enum SQLTransaction {
    /// The connection of the transaction the current task runs in, if any: the audit outbox records a
    /// follower's events on it, so that they commit with the change they describe.
    @TaskLocal static var open: (any SQLDatabase)?

    /// Runs `body` on `pinned` (inside a transaction already) or on a connection of `engine`.
    static func statement<T: Sendable>(
        _ engine: any SQLEngine, pinned: (any SQLDatabase)?, _ body: @Sendable (any SQLDatabase) async throws -> T
    ) async throws -> T {
        do {
            if let pinned { return try await body(pinned) }
            return try await engine.statement(body)
        } catch {
            throw SQLErrors.translate(error)
        }
    }

    /// Runs `body` atomically with a store bound to the transaction's connection (`inner`); inside a
    /// transaction already, runs it with `current`.
    static func run<Store: Sendable, T: Sendable>(
        _ engine: any SQLEngine, pinned: (any SQLDatabase)?, current: Store,
        inner: @escaping @Sendable (any SQLDatabase) -> Store, _ body: @Sendable (Store) async throws -> T
    ) async throws -> T {
        if pinned != nil { return try await body(current) }
        do {
            return try await engine.transaction { db in try await body(inner(db)) }
        } catch {
            throw SQLErrors.translate(error)
        }
    }

    /// `begin`, `body`, then `COMMIT`; `ROLLBACK` when anything throws.
    static func atomically<T: Sendable>(
        _ db: any SQLDatabase, begin: String, _ body: @Sendable (any SQLDatabase) async throws -> T
    ) async throws -> T {
        try await db.raw(SQLQueryString(begin)).run()
        do {
            let result = try await $open.withValue(db) { try await body(db) }
            try await db.raw("COMMIT").run()
            return result
        } catch {
            try? await db.raw("ROLLBACK").run()
            throw error
        }
    }
}
