import CaduceusCore
import PostgresNIO

/// Turns what either engine throws into the stores' `CaduceusError`s.
enum SQLErrors {
    /// SQLSTATEs of a transaction that PostgreSQL aborted to keep concurrent ones serializable; running it
    /// again is safe.
    static let retryableStates: Set<String> = ["40001", "40P01"]

    /// `store.conflict` for a unique key taken; `store.busy` for a transaction aborted by concurrent ones;
    /// `store.unavailable` when the database cannot be reached;
    /// `store.failure` otherwise. Never the statement's values: they may be secrets.
    static func translate(_ error: any Error) -> CaduceusError {
        if let error = error as? CaduceusError { return error }
        if let error = error as? PSQLError {
            if let state = error.serverInfo?[.sqlState] {
                if state == "23505" {
                    return CaduceusError(code: "store.conflict", message: "that name or key is already taken")
                }
                if retryableStates.contains(state) {
                    return CaduceusError(
                        code: "store.busy", message: "the database is busy with concurrent changes; try again")
                }
                let detail = error.serverInfo?[.message] ?? "error"
                return CaduceusError(
                    code: "store.failure", message: "the database answered SQLSTATE \(state): \(detail)")
            }
            let cause = error.underlying.map { "\(error.code): \($0)" } ?? "\(error.code)"
            return CaduceusError(code: "store.unavailable", message: "the database connection failed: \(cause)")
        }
        let text = String(describing: error)
        if text.contains("UNIQUE constraint") {
            return CaduceusError(code: "store.conflict", message: "that name or key is already taken")
        }
        return CaduceusError(code: "store.failure", message: "the database failed", underlying: error)
    }

    /// Whether `error` is PostgreSQL aborting a transaction for serializability (or a deadlock).
    static func isRetryable(_ error: any Error) -> Bool {
        if let error = error as? CaduceusError { return error.code == "store.busy" }
        guard let state = (error as? PSQLError)?.serverInfo?[.sqlState] else { return false }
        return retryableStates.contains(state)
    }

    /// Whether `error` means the connection is gone (so it must not go back to the pool).
    static func isConnectionLost(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return false }
        return error.serverInfo == nil
    }
}
