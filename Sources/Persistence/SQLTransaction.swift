import CaduceusCore
import SQLKit

/// The one way the SQL stores run statements on their shared connection.
///
/// The identity and fleet stores share one connection and one lock: a statement takes the lock unless it runs
/// inside a transaction, and a transaction holds it from `BEGIN` to `COMMIT` (or `ROLLBACK` on any error),
/// so that the two stores' transactions never interleave. Errors come out as `CaduceusError`s.
enum SQLTransaction {
    /// Runs `body` on `db`, under `lock` when there is one (none: already inside a transaction).
    static func statement<T: Sendable>(
        _ db: any SQLDatabase, lock: AsyncLock?, _ body: @Sendable (any SQLDatabase) async throws -> T
    ) async throws -> T {
        do {
            if let lock { return try await lock.withLock { try await body(db) } }
            return try await body(db)
        } catch let error as CaduceusError {
            throw error
        } catch {
            throw SQLIdentityStore.translate(error)
        }
    }

    /// Runs `body` atomically with `inner`, a store bound to the connection without the lock; inside a
    /// transaction already (no lock), runs it with `current`.
    static func run<Store: Sendable, T: Sendable>(
        _ db: any SQLDatabase, lock: AsyncLock?, current: Store, inner: @Sendable () -> Store,
        _ body: @Sendable (Store) async throws -> T
    ) async throws -> T {
        guard let lock else { return try await body(current) }
        return try await lock.withLock {
            try await db.raw("BEGIN").run()
            do {
                let result = try await body(inner())
                try await db.raw("COMMIT").run()
                return result
            } catch {
                try? await db.raw("ROLLBACK").run()
                if let error = error as? CaduceusError { throw error }
                throw SQLIdentityStore.translate(error)
            }
        }
    }
}
