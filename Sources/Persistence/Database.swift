import CaduceusCore
import Logging
import SQLKit
import SQLiteKit

/// The metadata database, migrated at start-up: SQLite in the data directory (embedded mode), or
/// PostgreSQL when several replicas share it. The stores run the same statements on either.
public final class Database: Sendable {
    /// The identity store over it.
    public let identity: SQLIdentityStore
    /// The fleet and job store over it.
    public let fleet: SQLFleetStore
    /// Datasets, keys and objects.
    public let datasets: SQLDatasetStore
    /// The replicas sharing the database and their leases.
    public let cluster: SQLClusterStore
    /// The audit log's shared journal (distributed mode).
    public let auditJournal: SQLAuditJournal
    /// The audit trail's shared payloads (distributed mode).
    public let auditPayloads: SQLAuditPayloads
    /// Events followers recorded, waiting for the leader to append them (distributed mode).
    public let auditOutbox: SQLAuditOutbox
    let engine: any SQLEngine
    /// The audit journal's own connections: a request's transaction may wait on an audit append while it holds
    /// a connection of `engine`, so the append must never wait for one of those.
    let auditEngine: (any SQLEngine)?

    private init(engine: any SQLEngine, auditEngine: (any SQLEngine)? = nil) {
        self.engine = engine
        self.auditEngine = auditEngine
        self.identity = SQLIdentityStore(engine: engine, pinned: nil)
        self.fleet = SQLFleetStore(engine: engine, pinned: nil)
        self.datasets = SQLDatasetStore(engine: engine, pinned: nil)
        self.cluster = SQLClusterStore(engine: engine)
        self.auditJournal = SQLAuditJournal(engine: auditEngine ?? engine)
        self.auditPayloads = SQLAuditPayloads(engine: auditEngine ?? engine)
        // On the stores' connections: an event recorded inside a transaction goes in on its connection.
        self.auditOutbox = SQLAuditOutbox(engine: engine)
    }

    /// Which engine holds the data: `sqlite` or `postgres`.
    public var engineName: String { engine.name }

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
        let sql = connection.sql(queryLogLevel: nil)
        // WAL keeps readers and the writer apart; FULL makes every commit durable before it returns.
        for pragma in [
            "PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON",
            "PRAGMA busy_timeout = 5000",
        ] {
            try await sql.raw(SQLQueryString(pragma)).run()
        }
        return try await migrated(
            Database(engine: SQLiteEngine(db: sql, closer: { try await connection.close() })), clock: clock,
            logger: logger)
    }

    /// Connects to the PostgreSQL database at `url` and applies every pending migration (one replica at a
    /// time). Throws `store.unavailable` when the server cannot be reached or refuses the credentials.
    public static func openPostgres(
        _ url: DatabaseURL, clock: any WallClock = SystemWallClock(), logger: Logger = Logger(label: "caduceus.db")
    ) async throws -> Database {
        let configuration = try url.connectionConfiguration()
        let engine = PostgresEngine(configuration: configuration, poolSize: url.poolSize, logger: logger)
        let database = Database(
            engine: engine, auditEngine: PostgresEngine(configuration: configuration, poolSize: 2, logger: logger))
        do {
            try await database.ping()
        } catch {
            try? await database.close()
            throw CaduceusError(
                code: "store.unavailable",
                message: "cannot connect to \(url.redacted): \(SQLErrors.translate(error).message)")
        }
        return try await migrated(database, clock: clock, logger: logger)
    }

    private static func migrated(_ database: Database, clock: any WallClock, logger: Logger) async throws -> Database {
        do {
            let applied = try await database.engine.exclusive { db in try await Migrations.run(on: db, clock: clock) }
            if !applied.isEmpty { logger.info("database migrated", metadata: ["versions": "\(applied)"]) }
        } catch {
            try? await database.close()
            throw SQLErrors.translate(error)
        }
        return database
    }

    /// Runs a trivial query: throws when the database cannot answer now.
    public func ping() async throws {
        do {
            _ = try await engine.statement { db in try await db.raw("SELECT 1 AS one").all() }
        } catch {
            throw SQLErrors.translate(error)
        }
    }

    /// Closes every connection.
    public func close() async throws {
        try await auditEngine?.close()
        try await engine.close()
    }

    /// Creates the empty database `name` (letters, digits and `_`) on the server `url` names, connecting to
    /// `url`'s own database to do it; its user must be allowed to create databases.
    public static func createPostgresDatabase(named name: String, on url: DatabaseURL) async throws {
        try await administer("CREATE DATABASE", name, on: url)
    }

    /// Drops the PostgreSQL database `name` (letters, digits and `_` only) on the server `url` names, closing
    /// what connections to it remain.
    public static func dropPostgresDatabase(named name: String, on url: DatabaseURL) async throws {
        try await administer("DROP DATABASE IF EXISTS", name, on: url, suffix: " WITH (FORCE)")
    }

    private static func administer(
        _ command: String, _ name: String, on url: DatabaseURL, suffix: String = ""
    ) async throws {
        try checkName(name)
        let engine = PostgresEngine(
            configuration: try url.connectionConfiguration(), poolSize: 1, logger: Logger(label: "caduceus.db"))
        do {
            let statement = command + " \"" + name + "\"" + suffix
            try await engine.statement { db in try await db.raw(SQLQueryString(statement)).run() }
            try await engine.close()
        } catch {
            try? await engine.close()
            throw SQLErrors.translate(error)
        }
    }

    /// What an operator sees of the database: its engine, its server's version, and whether the connection
    /// is encrypted. Throws `store.unavailable` when it cannot answer.
    public func status() async throws -> DatabaseStatus {
        do {
            return try await engine.statement { db in
                switch engine.name {
                case "postgres":
                    let row = try await db.raw(
                        """
                        SELECT current_setting('server_version') AS version,
                            COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS encrypted
                        """
                    ).first()
                    return DatabaseStatus(
                        engine: engine.name, version: try row?.decode(column: "version", as: String.self) ?? "",
                        encrypted: try row?.decode(column: "encrypted", as: Bool.self) ?? false)
                default:
                    let row = try await db.raw("SELECT sqlite_version() AS version").first()
                    return DatabaseStatus(
                        engine: engine.name, version: try row?.decode(column: "version", as: String.self) ?? "",
                        encrypted: false)
                }
            }
        } catch {
            throw SQLErrors.translate(error)
        }
    }

    /// The names of the databases on this PostgreSQL server.
    @_spi(Testing) public func databaseNames() async throws -> Set<String> {
        try await engine.statement { db in
            Set(
                try await db.raw("SELECT datname FROM pg_database").all().map {
                    try $0.decode(column: "datname", as: String.self)
                })
        }
    }

    /// Lets connections to the PostgreSQL database `database` in or, with false, refuses new ones and ends
    /// those open, as a database outage would.
    @_spi(Testing) public func setConnectionsAllowed(_ allowed: Bool, database: String) async throws {
        try Self.checkName(database)
        let alter = "ALTER DATABASE \"" + database + "\" ALLOW_CONNECTIONS " + (allowed ? "true" : "false")
        try await engine.statement { db in
            try await db.raw(SQLQueryString(alter)).run()
            if !allowed {
                try await db.raw(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(bind: database)"
                ).run()
            }
        }
    }

    /// Ends every other session on this PostgreSQL database, as a server restart or a network cut would.
    @_spi(Testing) public func terminateOtherConnections() async throws {
        try await engine.statement { db in
            try await db.raw(
                """
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                """
            ).run()
        }
    }

    /// Database names this code puts into statements: letters, digits and `_` only.
    private static func checkName(_ name: String) throws {
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw CaduceusError(code: "store.name", message: "a database name is letters, digits and _ only")
        }
    }
}

/// The database as `cluster status` and `/readyz` report it.
public struct DatabaseStatus: Sendable, Codable, Equatable {
    /// `sqlite` or `postgres`.
    public var engine: String
    /// The server's (or library's) version.
    public var version: String
    /// Whether the connection to the server is encrypted.
    public var encrypted: Bool
}
