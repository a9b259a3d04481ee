import CaduceusCore
import Logging
import NIOCore
import NIOPosix
import PostgresKit
import PostgresNIO
import SQLKit
import Synchronization

/// PostgreSQL: a bounded pool of connections, opened on demand and dropped when the server closes them.
///
/// Transactions run at `SERIALIZABLE`, so that two replicas (or two tasks of one) doing the same read-then-write
/// cannot both succeed; PostgreSQL aborts one with SQLSTATE 40001 and the transaction is run again, up to
/// `maximumAttempts` times. `exclusive` holds a session advisory lock, the same on every replica.
final class PostgresEngine: SQLEngine {
    private let pool: PostgresPool
    private let direct: DirectConnection
    private let logger: Logger
    static let maximumAttempts = 30
    /// The advisory lock key `exclusive` takes (any fixed 64-bit number, the same on every replica).
    static let migrationLockKey = 0x4361_6475_6365_7573

    init(configuration: PostgresConnection.Configuration, poolSize: Int, logger: Logger) {
        self.pool = PostgresPool(configuration: configuration, size: poolSize, logger: logger)
        self.direct = DirectConnection(configuration: configuration, logger: logger)
        self.logger = logger
    }

    var name: String { "postgres" }

    func statement<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await pool.withConnection { connection in try await body(connection.sql(queryLogLevel: nil)) }
    }

    /// Each attempt runs with `TransactionAttempts.current` set, so that what an aborted attempt did outside
    /// the database (its audit events) is not done again by the next.
    func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let attempts = TransactionAttempts()
        return try await TransactionAttempts.$current.withValue(attempts) {
            while true {
                attempts.begin()
                do {
                    return try await pool.withConnection { connection in
                        try await SQLTransaction.atomically(
                            connection.sql(queryLogLevel: nil), begin: "BEGIN ISOLATION LEVEL SERIALIZABLE", body)
                    }
                } catch  where SQLErrors.isRetryable(error) && attempts.attempts < Self.maximumAttempts {
                    // A short, growing, jittered pause lets the transaction that won finish first.
                    let ceiling = 4 << min(attempts.attempts + 1, 6)
                    try await Task.sleep(for: .milliseconds(Int.random(in: 1...ceiling)))
                }
            }
        }
    }

    func exclusive<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await pool.withConnection { connection in
            let db = connection.sql(queryLogLevel: nil)
            try await db.raw("SELECT pg_advisory_lock(\(bind: Self.migrationLockKey))").run()
            do {
                let result = try await body(db)
                try await db.raw("SELECT pg_advisory_unlock(\(bind: Self.migrationLockKey))").run()
                return result
            } catch {
                try? await db.raw("SELECT pg_advisory_unlock(\(bind: Self.migrationLockKey))").run()
                throw error
            }
        }
    }

    func blocking<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) -> EventLoopFuture<T>) throws -> T {
        try direct.run(body)
    }

    func close() async throws {
        await pool.close()
        await direct.close()
    }
}

/// A connection of its own for one blocking thread (the audit log's committer), on an event loop of its own:
/// its round trips wait neither for a task of the concurrency pool to run nor behind the requests' I/O, so
/// that the batch every appender waits on spends as little time as it can on the way to the database and
/// back. Opened on first use; one that failed or that the server closed is replaced on the next.
final class DirectConnection: Sendable {
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private let state = Mutex<State>(State())

    private struct State {
        var group: MultiThreadedEventLoopGroup?
        var connection: PostgresConnection?
        var closed = false
    }

    init(configuration: PostgresConnection.Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    func run<T: Sendable>(_ body: (any SQLDatabase) -> EventLoopFuture<T>) throws -> T {
        let connection = try current()
        do {
            return try body(connection.sql(queryLogLevel: nil)).wait()
        } catch {
            if SQLErrors.isConnectionLost(error) || connection.isClosed { drop(connection) }
            throw error
        }
    }

    /// The connection, opened now if there is none; callers that come meanwhile wait for the same one.
    private func current() throws -> PostgresConnection {
        try state.withLock { state in
            guard !state.closed else {
                throw CaduceusError(code: "store.unavailable", message: "the database connection is closed")
            }
            if let connection = state.connection, !connection.isClosed { return connection }
            let group = state.group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
            state.group = group
            do {
                let connection = try PostgresConnection.connect(
                    on: group.next(), configuration: configuration, id: 0, logger: logger
                ).wait()
                state.connection = connection
                return connection
            } catch {
                throw CaduceusError(
                    code: "store.unavailable",
                    message: "cannot connect to the database (\(SQLErrors.translate(error).message))")
            }
        }
    }

    private func drop(_ connection: PostgresConnection) {
        state.withLock { if $0.connection === connection { $0.connection = nil } }
        connection.close().whenComplete { _ in }
    }

    func close() async {
        let (group, connection) = state.withLock { state in
            state.closed = true
            defer { state.connection = nil }
            return (state.group, state.connection)
        }
        try? await connection?.close()
        try? await group?.shutdownGracefully()
    }
}

/// A bounded set of PostgreSQL connections. A caller borrows one for its whole statement or transaction;
/// when all are busy, callers wait in order. A connection that failed or that the server closed is dropped,
/// and the next caller opens a new one, so a database that comes back is used again without a restart.
actor PostgresPool {
    private let configuration: PostgresConnection.Configuration
    private let size: Int
    private let logger: Logger
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var nextID = 0
    private var closed = false
    /// Waiters get a connection, or nil: a slot is free and they should open one.
    private var waiters: [CheckedContinuation<PostgresConnection?, Never>] = []

    init(configuration: PostgresConnection.Configuration, size: Int, logger: Logger) {
        self.configuration = configuration
        self.size = max(1, size)
        self.logger = logger
    }

    /// Runs `body` with a borrowed connection.
    nonisolated func withConnection<T: Sendable>(
        _ body: @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let connection = try await acquire()
        do {
            let result = try await body(connection)
            await release(connection, healthy: true)
            return result
        } catch {
            await release(connection, healthy: !SQLErrors.isConnectionLost(error))
            throw error
        }
    }

    private func acquire() async throws -> PostgresConnection {
        while true {
            guard !closed else {
                throw CaduceusError(code: "store.unavailable", message: "the database connection pool is closed")
            }
            while let connection = idle.popLast() {
                if !connection.isClosed { return connection }
                open -= 1
                connection.close().whenComplete { _ in }
            }
            if open < size { return try await connect() }
            if let connection = await withCheckedContinuation({ waiters.append($0) }) { return connection }
        }
    }

    private func connect() async throws -> PostgresConnection {
        open += 1
        nextID += 1
        do {
            return try await PostgresConnection.connect(configuration: configuration, id: nextID, logger: logger)
        } catch {
            open -= 1
            wakeOne(with: nil)
            throw CaduceusError(
                code: "store.unavailable",
                message: "cannot connect to the database (\(SQLErrors.translate(error).message))")
        }
    }

    private func release(_ connection: PostgresConnection, healthy: Bool) {
        if !healthy || connection.isClosed || closed {
            open -= 1
            connection.close().whenComplete { _ in }
            wakeOne(with: nil)
            return
        }
        if !waiters.isEmpty {
            waiters.removeFirst().resume(returning: connection)
        } else {
            idle.append(connection)
        }
    }

    private func wakeOne(with connection: PostgresConnection?) {
        if !waiters.isEmpty { waiters.removeFirst().resume(returning: connection) }
    }

    func close() async {
        closed = true
        for waiter in waiters { waiter.resume(returning: nil) }
        waiters = []
        let connections = idle
        idle = []
        open -= connections.count
        for connection in connections { try? await connection.close() }
    }
}
