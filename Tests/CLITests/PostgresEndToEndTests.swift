import CaduceusTesting
import Foundation
@_spi(Testing) import Persistence
import Testing

/// The real server on PostgreSQL: the same people, jobs and audit trail as on SQLite; a restart keeps them;
/// losing the database makes the server unready and refuse writes with 503, and it recovers on its own.
@Suite(.enabled(if: TestDatabase.engines.contains(.postgres)))
struct PostgresEndToEndTests {
    @Test("serve --database postgres://…: log-in, tenancy and a job; restart keeps them; a lost database is 503")
    func serveOnPostgres() async throws {
        var url = try await TestDatabase.createPostgresDatabase()
        let password = try #require(url.password)
        url.password = nil
        let scratch = try Scratch()
        defer { scratch.remove() }
        // The password comes from PGPASSWORD, so it is in neither the arguments nor the configuration.
        let environment = ["PGPASSWORD": password, "CADUCEUS_FAKE_GPUS": "1"]
        let arguments = ["--database", "postgres://\(url.user)@\(url.host):\(url.port)/\(url.database)"]
        var server = try TestServer(data: scratch.path + "/data", environment: environment, arguments: arguments)
        var session = CLISession(scratch: scratch, server: server)
        let (tenant, project) = try session.tenantWithResearcherAndAdmin()
        try session.giveLocalNode(to: tenant)
        let job = try session.id(
            ["job", "submit", "--project", project, "--class", "batch", "--gpus-per-node", "1", "--", "/bin/true"],
            as: "rita")
        let deadline = Date().addingTimeInterval(60)
        var state = ""
        while Date() < deadline && state != "succeeded" && state != "failed" {
            state = try session.json(["job", "show", job], as: "rita")["state"] as? String ?? ""
            usleep(200_000)
        }
        #expect(state == "succeeded")
        #expect(try server.get("/readyz").0 == 200)
        #expect(!server.logText.contains(password) && !server.startupText.contains(password))

        // The rows are in PostgreSQL, not in a SQLite file beside them.
        #expect(!FileManager.default.fileExists(atPath: server.data + "/caduceus.sqlite"))
        server.stop()
        server = try TestServer(data: scratch.path + "/data", environment: environment, arguments: arguments)
        session = CLISession(scratch: scratch, server: server)
        #expect(try session.json(["job", "show", job], as: "rita")["state"] as? String == "succeeded")

        // The database refuses connections: the server says it is not ready and acknowledges no write.
        let admin = try await Database.openPostgres(try TestDatabase.serverURL())
        do {
            try await admin.setConnectionsAllowed(false, database: url.database)
            let (status, body) = try server.get("/readyz")
            #expect(status == 503 && body.contains("unavailable"), "\(body)")
            let refused = try session.run(["tenant", "create", "refused-while-down"], as: "admin")
            #expect(refused.status != 0)
            try await admin.setConnectionsAllowed(true, database: url.database)
            #expect(try server.get("/readyz").0 == 200)
            // The audit log, whose durable record is in the database, takes appends again too.
            let list = try session.json(["tenant", "list"], as: "admin")
            let names = (list["items"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(names.contains("st-marys") && !names.contains("refused-while-down"))
            #expect(try session.run(["tenant", "create", "after-the-outage"], as: "admin").status == 0)
        } catch {
            try? await admin.close()
            throw error
        }
        try await admin.close()
        server.stop()
        _ = try session.verifiedAuditEvents()
    }

    @Test("a wrong or unreachable database stops start-up with a clear error and no password shown")
    func unusableDatabase() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let unreachable = try CLI.run([
            "serve", "--data-dir", scratch.path + "/data", "--listen", "127.0.0.1:0", "--agent-listen", "off",
            "--database", "postgres://caduceus:hunter2-secret@127.0.0.1:1/caduceus?connect_timeout=2",
        ])
        #expect(unreachable.status != 0)
        #expect(unreachable.stderr.contains("cannot connect") && !unreachable.stderr.contains("hunter2"))
        let malformed = try CLI.run([
            "serve", "--data-dir", scratch.path + "/data2", "--database", "postgres://caduceus:hunter2@db/x?sslmode=on",
        ])
        #expect(malformed.status != 0 && malformed.stderr.contains("sslmode") && !malformed.stderr.contains("hunter2"))
        let shown = try CLI.run([
            "config", "show", "--data-dir", scratch.path + "/data", "--database",
            "postgres://caduceus:hunter2@db.example.org/caduceus",
        ])
        #expect(shown.status == 0 && shown.text.contains("db.example.org") && !shown.text.contains("hunter2"))
        // The address other replicas forward to: shown, and refused unless it is HTTPS.
        let advertised = try CLI.run(
            ["config", "show", "--data-dir", scratch.path + "/data"],
            environment: ["CADUCEUS_ADVERTISE_URL": "https://cp1.example.org:8443"])
        #expect(advertised.status == 0 && advertised.text.contains("https://cp1.example.org:8443"))
        let plain = try CLI.run(
            ["config", "show", "--data-dir", scratch.path + "/data"],
            environment: ["CADUCEUS_ADVERTISE_URL": "http://cp1.example.org:8080"])
        #expect(plain.status != 0 && plain.stderr.contains("advertiseURL"), "\(plain.stderr)")
    }

    @Test("two replicas share one database: both listed, one leads; SIGKILL the leader and the other takes over")
    func replicasAndLeader() async throws {
        let url = try await TestDatabase.createPostgresDatabase()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let arguments = ["--database", "postgres://\(url.user)@\(url.host):\(url.port)/\(url.database)"]
        let environment = ["PGPASSWORD": url.password ?? ""]
        let first = try TestServer(data: scratch.path + "/a", environment: environment, arguments: arguments)
        defer { first.stop() }
        // A second replica shares the first one's keys and CA (copied, as the README says).
        try FileManager.default.createDirectory(atPath: scratch.path + "/b", withIntermediateDirectories: true)
        for folder in ["keys", "tls"] {
            try FileManager.default.copyItem(
                atPath: scratch.path + "/a/" + folder, toPath: scratch.path + "/b/" + folder)
        }
        let second = try TestServer(data: scratch.path + "/b", environment: environment, arguments: arguments)
        defer { second.stop() }
        let viaFirst = CLISession(scratch: scratch, server: first)
        try viaFirst.logInAdmin()
        let status = try viaFirst.json(["cluster", "status"], as: "admin")
        let replicas = try #require(status["replicas"] as? [[String: Any]])
        #expect(replicas.count == 2, "\(status)")
        let leader = try #require(status["leader"] as? String)
        let answering = try #require(replicas.first { $0["answering"] as? Bool == true })
        #expect(answering["id"] as? String == leader, "the first replica to start leads")
        #expect((status["database"] as? [String: Any])?["engine"] as? String == "postgres")
        let token = try #require(status["leaderToken"] as? Int)

        // The leader dies; the other replica takes the lease once it expires, with a larger fencing token.
        let killedAt = Date()
        first.kill()
        let viaSecond = CLISession(scratch: scratch, server: second)
        var after: [String: Any] = [:]
        while Date().timeIntervalSince(killedAt) < 30 {
            // Until it leads, the survivor forwards to the dead leader and answers 503.
            let answer = try viaSecond.run(["cluster", "status", "--output", "json"], as: "admin")
            if answer.status == 0 {
                after = try #require(try JSONSerialization.jsonObject(with: answer.stdout) as? [String: Any])
                if let now = after["leader"] as? String, now != leader { break }
            }
            usleep(250_000)
        }
        let takeover = Date().timeIntervalSince(killedAt)
        #expect(after["leader"] as? String != nil && after["leader"] as? String != leader, "\(after)")
        #expect((after["leaderToken"] as? Int ?? 0) > token)
        #expect(takeover < 10, "the lead changed hands after \(takeover) s")
    }
}
