import CaduceusCore
import CaduceusTesting
import Foundation
import Identity
@_spi(Testing) import Persistence
import Scheduling
import Testing

/// What each engine must do alike beyond single statements: atomic read-then-write under concurrency,
/// migrations that run once, and clear errors when the database cannot be used.
struct EngineTests {
    let now = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)

    /// One tenant, one project and a job whose `preemptions` the tests count with.
    func seedJob(_ database: Database) async throws -> JobID {
        let tenant = TenantRecord(id: .generate(), name: "st-marys", createdAt: now)
        let project = ProjectRecord(id: .generate(), tenant: tenant.id, name: "radiology", createdAt: now)
        try await database.identity.insertTenant(tenant)
        try await database.identity.insertProject(project)
        let spec = JobSpec(
            tenant: tenant.id, project: project.id, jobClass: .training, gpusPerNode: 1, nodeCount: 1,
            allowedModels: ["H200"], residency: Residency(rawValue: "US")!, command: "train", arguments: [],
            environment: [:], preemptible: true)
        let job = JobRecord(id: .generate(), spec: spec, state: .pending, submittedBy: .generate(), submittedAt: now)
        try await database.fleet.insertJob(job)
        return job.id
    }

    @Test("concurrent read-then-write transactions lose no update", arguments: TestDatabase.engines)
    func concurrentIncrements(engine: StoreEngine) async throws {
        try await TestDatabase.with(engine) { database in
            let id = try await seedJob(database)
            let fleet = database.fleet
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<24 {
                    group.addTask {
                        try await fleet.transaction { tx in
                            var job = try #require(try await tx.job(id: id))
                            job.preemptions += 1
                            try await tx.updateJob(job)
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await fleet.job(id: id)?.preemptions == 24)
        }
    }

    @Test(
        "two processes' worth of connections migrate one database once and share its rows",
        .enabled(if: TestDatabase.engines.contains(.postgres)))
    func sharedPostgres() async throws {
        let url = try await TestDatabase.createPostgresDatabase()
        async let first = Database.openPostgres(url)
        async let second = Database.openPostgres(url)
        let (a, b) = try await (first, second)
        try await a.identity.insertUser(
            UserRecord(id: .generate(), name: "alice", kind: .user, passwordHash: "$scrypt$x", createdAt: now))
        #expect(try await b.identity.user(named: "alice") != nil)
        try await a.close()
        try await b.close()
        let reopened = try await Database.openPostgres(url)
        #expect(try await reopened.identity.userCount() == 1)
        try await reopened.close()
    }

    @Test(
        "a connection the server ends is replaced: the pool serves again without a restart",
        .enabled(if: TestDatabase.engines.contains(.postgres)))
    func poolRecovers() async throws {
        let url = try await TestDatabase.createPostgresDatabase()
        let database = try await Database.openPostgres(url)
        try await database.ping()
        let admin = try await Database.openPostgres(url)
        try await admin.terminateOtherConnections()
        var answered = false
        for _ in 0..<3 where !answered {
            do {
                try await database.ping()
                answered = true
            } catch let error as CaduceusError {
                #expect(error.code == "store.unavailable")
            }
        }
        #expect(answered)
        try await database.close()
        try await admin.close()
    }

    @Test(
        "TLS to the database: verify-full with the server's CA connects; without it the chain is refused",
        .enabled(if: TestDatabase.engines.contains(.postgres)))
    func tls() async throws {
        let ca = try #require(ProcessInfo.processInfo.environment["CADUCEUS_TEST_POSTGRES_CA"])
        var url = try TestDatabase.serverURL()
        url.sslMode = .verifyFull
        url.sslRootCertificate = ca
        let database = try await Database.openPostgres(url)
        try await database.ping()
        #expect(try await database.status().encrypted)
        try await database.close()

        url.sslRootCertificate = nil
        let error = await #expect(throws: CaduceusError.self) { try await Database.openPostgres(url) }
        #expect(error?.code == "store.unavailable")
    }

    @Test(
        "a wrong password or an unreachable server is a clear error that never shows the password",
        .enabled(if: TestDatabase.engines.contains(.postgres)))
    func unusableDatabase() async throws {
        var url = try TestDatabase.serverURL()
        url.password = "not-the-password-\(UUID().uuidString)"
        let wrong = await #expect(throws: CaduceusError.self) { try await Database.openPostgres(url) }
        #expect(wrong?.code == "store.unavailable")
        #expect(wrong?.message.contains("28P01") == true)
        #expect(wrong.map { "\($0)" }?.contains(url.password!) == false)

        let closed = try DatabaseURL("postgres://caduceus:secret@127.0.0.1:1/caduceus?connect_timeout=2")
        let unreachable = await #expect(throws: CaduceusError.self) { try await Database.openPostgres(closed) }
        #expect(unreachable?.code == "store.unavailable")
        #expect(unreachable.map { "\($0)" }?.contains("secret") == false)
    }

    @Test("database URLs: parameters parsed, mistakes named, the password never shown")
    func urls() throws {
        let url = try DatabaseURL(
            "postgres://cad%40uceus:p%40ss@db.example.org:6432/caduceus?sslmode=verify-ca&sslrootcert=/etc/ca.pem&pool=4",
            environment: [:])
        #expect(url.user == "cad@uceus")
        #expect(url.password == "p@ss")
        #expect(url.host == "db.example.org" && url.port == 6432 && url.database == "caduceus")
        #expect(url.sslMode == .verifyCA && url.sslRootCertificate == "/etc/ca.pem" && url.poolSize == 4)
        #expect(!url.redacted.contains("p@ss") && url.redacted.contains("********"))
        #expect(try DatabaseURL("postgres://u@db.example.org/d", environment: [:]).sslMode == .verifyFull)
        #expect(try DatabaseURL("postgres://u@127.0.0.1/d", environment: [:]).sslMode == .disable)
        #expect(try DatabaseURL("postgres://u@h/d", environment: ["PGPASSWORD": "env"]).password == "env")
        for bad in [
            "mysql://u@h/d", "postgres://h/d", "postgres://u@h", "postgres://u@h/d?sslmode=maybe",
            "postgres://u@h/d?pool=0", "postgres://u@h/d?colour=blue", "postgres://u@h/d?sslcert=/c.pem", "not a url",
        ] {
            #expect(throws: CaduceusError.self, "\(bad)") { try DatabaseURL(bad, environment: [:]) }
        }
    }
}
