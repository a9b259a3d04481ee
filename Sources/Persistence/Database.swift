import CaduceusCore
import Logging
import SQLKit
import SQLiteKit

/// The metadata database: SQLite in the data directory (embedded mode), migrated at start-up.
public final class Database: Sendable {
    /// The SQL database.
    public let sql: any SQLDatabase
    /// The identity store over it.
    public let identity: SQLIdentityStore
    /// The fleet and job store over it, sharing the identity store's lock (one connection, one writer).
    public let fleet: SQLFleetStore
    /// Datasets, keys and objects, on the same lock.
    public let datasets: SQLDatasetStore
    private let connection: SQLiteConnection

    private init(connection: SQLiteConnection) {
        self.connection = connection
        self.sql = connection.sql(queryLogLevel: nil)
        let lock = AsyncLock()
        self.identity = SQLIdentityStore(db: sql, lock: lock)
        self.fleet = SQLFleetStore(db: sql, lock: lock)
        self.datasets = SQLDatasetStore(db: sql, lock: lock)
    }

    /// Opens (creating if needed) the SQLite database at `path`, or an in-memory one when nil, and applies
    /// every pending migration.
    public static func openSQLite(
        path: String?, clock: any WallClock = SystemWallClock(), logger: Logger = Logger(label: "caduceus.db")
    ) async throws -> Database {
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(
                storage: path.map { .file(path: $0) } ?? .memory, logger: logger)
        } catch {
            throw CaduceusError(
                code: "store.open", message: "cannot open the database \(path ?? ":memory:")", underlying: error)
        }
        let database = Database(connection: connection)
        // WAL keeps readers and the writer apart; FULL makes every commit durable before it returns.
        for pragma in [
            "PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON",
            "PRAGMA busy_timeout = 5000",
        ] {
            try await database.sql.raw(SQLQueryString(pragma)).run()
        }
        let applied = try await Migrations.run(on: database.sql, clock: clock)
        if !applied.isEmpty { logger.info("database migrated", metadata: ["versions": "\(applied)"]) }
        return database
    }

    /// Closes the connection.
    public func close() async throws {
        try await connection.close()
    }
}
