import CaduceusCore
import Foundation
import Persistence

/// A database engine the store tests run on.
public enum StoreEngine: String, Sendable, CaseIterable, CustomStringConvertible {
    case sqlite, postgres

    public var description: String { rawValue }
}

/// Fresh, empty, migrated databases for tests, on either engine.
///
/// SQLite is in memory. PostgreSQL needs a server: `CADUCEUS_TEST_POSTGRES` names it with a URL whose user may
/// create databases (`scripts/postgres.sh start` prints one, and the test command sets it); each call makes a
/// database of its own there, so tests running in parallel never see each other's rows.
public enum TestDatabase {
    /// The engines to run store tests on: SQLite always, PostgreSQL when `CADUCEUS_TEST_POSTGRES` is set.
    public static var engines: [StoreEngine] {
        ProcessInfo.processInfo.environment["CADUCEUS_TEST_POSTGRES"] == nil ? [.sqlite] : [.sqlite, .postgres]
    }

    /// The engine the control-plane harness uses: `CADUCEUS_TEST_ENGINE` (`sqlite` when unset).
    public static var harnessEngine: StoreEngine {
        get throws {
            let name = ProcessInfo.processInfo.environment["CADUCEUS_TEST_ENGINE"] ?? "sqlite"
            guard let engine = StoreEngine(rawValue: name) else {
                throw CaduceusError(code: "test.engine", message: "CADUCEUS_TEST_ENGINE must be sqlite or postgres")
            }
            return engine
        }
    }

    /// The URL of the PostgreSQL server for tests (`CADUCEUS_TEST_POSTGRES`), with a small pool.
    public static func serverURL(database: String? = nil) throws -> DatabaseURL {
        guard let text = ProcessInfo.processInfo.environment["CADUCEUS_TEST_POSTGRES"] else {
            throw CaduceusError(
                code: "test.postgres", message: "CADUCEUS_TEST_POSTGRES is not set (scripts/postgres.sh start DIR)")
        }
        var url = try DatabaseURL(text)
        url.poolSize = 3
        if let database { url.database = database }
        return url
    }

    /// Creates an empty PostgreSQL database on the test server and returns its URL.
    public static func createPostgresDatabase() async throws -> DatabaseURL {
        let name = "caduceus_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await Database.createPostgresDatabase(named: name, on: try serverURL())
        return try serverURL(database: name)
    }

    /// A fresh, migrated database on `engine`.
    public static func open(_ engine: StoreEngine, clock: any WallClock = SystemWallClock()) async throws -> Database {
        switch engine {
        case .sqlite: return try await Database.openSQLite(path: nil, clock: clock)
        case .postgres: return try await Database.openPostgres(try await createPostgresDatabase(), clock: clock)
        }
    }

    /// Runs `body` with a fresh database on `engine` and closes it afterwards, whether `body` throws or not.
    public static func with<T>(
        _ engine: StoreEngine, clock: any WallClock = SystemWallClock(), _ body: (Database) async throws -> T
    ) async throws -> T {
        let database = try await open(engine, clock: clock)
        do {
            let result = try await body(database)
            try await database.close()
            return result
        } catch {
            try? await database.close()
            throw error
        }
    }
}
