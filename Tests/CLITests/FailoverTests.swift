import CaduceusTesting
import Foundation
import Persistence
import Testing

/// Two replicas on one PostgreSQL database, the leader killed with SIGKILL at random moments while job
/// submissions and dataset uploads go through both: every acknowledged request survives, no job runs
/// twice, the other replica takes over within a bound, and the audit log stays one consistent history.
@Suite(.enabled(if: TestDatabase.engines.contains(.postgres)), .serialized)
struct FailoverTests {
    /// Requests that were acknowledged, gathered by the driver thread.
    final class Acknowledged: @unchecked Sendable {
        // Safe: every field is touched only with `lock` held.
        private let lock = NSLock()
        private var jobIDs: [String] = []
        private var objectNames: [String] = []
        private var refusals = 0
        private var running = true

        var jobs: [String] { lock.withLock { jobIDs } }
        var objects: [String] { lock.withLock { objectNames } }
        var refused: Int { lock.withLock { refusals } }
        var isRunning: Bool { lock.withLock { running } }
        func stop() { lock.withLock { running = false } }
        func job(_ id: String) { lock.withLock { jobIDs.append(id) } }
        func object(_ name: String) { lock.withLock { objectNames.append(name) } }
        func refusal() { lock.withLock { refusals += 1 } }
    }

    /// Sends job submissions and uploads, alternating between the replicas, until stopped.
    static func drive(
        _ sessions: @escaping @Sendable () -> [CLISession], project: String, dataset: String, scratch: Scratch,
        round: Int, into acknowledged: Acknowledged
    ) -> Thread {
        let thread = Thread {
            var n = 0
            while acknowledged.isRunning {
                n += 1
                let session = sessions()[n % 2]
                if n % 2 == 0 {
                    let submitted = try? session.run(
                        [
                            "job", "submit", "--output", "json", "--project", project, "--class", "batch",
                            "--gpus-per-node", "1", "--", "/bin/sh", "-c",
                            "echo $CADUCEUS_JOB_ID >> \(scratch.path)/ran",
                        ], as: "rita")
                    if let submitted, submitted.status == 0,
                        let object = try? JSONSerialization.jsonObject(with: submitted.stdout) as? [String: Any],
                        let id = object["id"] as? String
                    {
                        acknowledged.job(id)
                    } else {
                        acknowledged.refusal()
                    }
                } else {
                    let name = "r\(round)-\(n).txt"
                    let file = scratch.path + "/" + name
                    try? Data("round \(round) upload \(n) \(UUID())\n".utf8).write(to: URL(fileURLWithPath: file))
                    let uploaded = try? session.run(["dataset", "upload", dataset, file], as: "rita")
                    if uploaded?.status == 0 { acknowledged.object(name) } else { acknowledged.refusal() }
                }
            }
        }
        thread.start()
        return thread
    }

    /// Runs `body` with two replicas on a new PostgreSQL database, the first one leading, in folders `a` and
    /// `b` of `scratch`; stops both afterwards.
    static func withTwoReplicas(
        _ body: (_ leader: TestServer, _ follower: TestServer, _ scratch: Scratch) async throws -> Void
    ) async throws {
        let url = try await TestDatabase.createPostgresDatabase()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let arguments = ["--database", "postgres://\(url.user)@\(url.host):\(url.port)/\(url.database)"]
        let environment = ["PGPASSWORD": url.password ?? ""]
        let leader = try TestServer(data: scratch.path + "/a", environment: environment, arguments: arguments)
        let follower = try Self.follower(
            of: leader, data: scratch.path + "/b", environment: environment, arguments: arguments)
        defer {
            leader.stop()
            follower.stop()
        }
        try await body(leader, follower, scratch)
    }

    /// Seconds until `condition` holds, checked again and again for at most 5 s; nil if it never does.
    static func seconds(until condition: () throws -> Bool) rethrows -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < 5 {
            if try condition() { return Date().timeIntervalSince(start) }
        }
        return nil
    }

    /// A second replica in `data`, with the keys and CA of `leader`'s data directory.
    static func follower(
        of leader: TestServer, data: String, environment: [String: String], arguments: [String]
    ) throws -> TestServer {
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        for folder in ["keys", "tls"] {
            try FileManager.default.copyItem(atPath: leader.data + "/" + folder, toPath: data + "/" + folder)
        }
        return try TestServer(data: data, environment: environment, arguments: arguments)
    }

    @Test("a follower audits what it refuses while no leader answers; the next leader appends each event once")
    func followerRefusalsAudited() async throws {
        try await Self.withTwoReplicas { leader, follower, scratch in
            // Forwarded (once the follower has seen where the leader listens; the fleet is the leader's): the
            // leader refuses a request without credentials, and audits it itself.
            let started = Date()
            while Date().timeIntervalSince(started) < 30, (try? follower.get("/v1/nodes"))?.0 != 401 { usleep(100_000) }
            #expect(try follower.get("/v1/nodes").0 == 401)
            leader.kill()
            // Until the dead leader's lease runs out the follower still names it, cannot reach it, and refuses.
            var refusals: [String] = []
            for path in ["/v1/nodes", "/v1/quotas"] {
                let (status, body) = try follower.get(path)
                #expect(status == 503, "\(body)")
                let error = (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["error"]
                refusals.append(try #require((error as? [String: Any])?["requestId"] as? String, "\(body)"))
            }
            // It takes the lead, answers the API itself, and appends what it recorded in the outbox meanwhile.
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, (try? follower.get("/v1/nodes"))?.0 != 401 { usleep(100_000) }
            #expect(try follower.get("/v1/nodes").0 == 401, "the follower never took the lead")
            usleep(1_000_000)
            follower.stop()

            let log = scratch.path + "/b/audit"
            let verify = try CLI.run(["audit", "verify", "--log", log, "--vkey", scratch.path + "/b/keys/audit.vkey"])
            #expect(verify.status == 0, "\(verify.stderr)")
            let events = try CLI.run(["audit", "export", "--log", log, "--format", "jsonl"]).text
                .split(separator: "\n").compactMap { line in
                    try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                }
            for (requestID, route) in zip(refusals, ["v1.nodes", "v1.quotas"]) {
                let matching = events.filter { $0["requestId"] as? String == requestID }
                #expect(matching.count == 1, "\(requestID): \(matching.count) events")
                let event = try #require(matching.first)
                #expect(event["outcome"] as? String == "error" && event["action"] as? String == "http.get")
                #expect((event["resource"] as? [String: Any])?["id"] as? String == route)
                #expect((event["actor"] as? [String: Any])?["id"] as? String == "anonymous")
                #expect(event["sourceAddress"] as? String == "127.0.0.1")
            }
        }
    }

    @Test("a follower answers accounts, tenancy and job reads itself; each replica's changes reach the other's")
    func followerAnswersItself() async throws {
        try await Self.withTwoReplicas { leader, follower, scratch in
            let viaLeader = CLISession(scratch: scratch, server: leader)
            let viaFollower = CLISession(scratch: scratch, server: follower)
            // The bootstrap administrator logs in through the follower, which creates tenancy and people itself.
            let bootstrap = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: leader.data + "/bootstrap-admin.json")))
                    as? [String: Any])
            try viaFollower.logIn(
                "admin", password: try #require(bootstrap["password"] as? String),
                secret: try #require(bootstrap["totpSecret"] as? String))
            let tenant = try viaFollower.id(["tenant", "create", "st-marys"], as: "admin")
            let project = try viaFollower.id(["project", "create", "--tenant", tenant, "radiology"], as: "admin")
            try viaFollower.person("rita", role: "researcher", scope: "project:\(tenant)/\(project)")
            #expect(try viaLeader.json(["tenant", "show", tenant], as: "admin")["name"] as? String == "st-marys")

            // Disabled through the leader: the follower, which holds rita's session in its cache, refuses it
            // within its 50 ms follow interval.
            #expect(try viaFollower.run(["whoami"], as: "rita").status == 0)
            let rita = try #require(
                (try viaLeader.json(["user", "list"], as: "admin")["items"] as? [[String: Any]])?
                    .first { $0["name"] as? String == "rita" }?["id"] as? String)
            #expect(try viaLeader.run(["user", "disable", rita], as: "admin").status == 0)
            let refusedAfter = try Self.seconds { try viaFollower.run(["whoami"], as: "rita").status != 0 }
            #expect((refusedAfter ?? 99) < 1, "refused after \(refusedAfter.map { "\($0) s" } ?? "never")")
            // A role revoked through the follower narrows what the leader lets tara do.
            try viaFollower.person("tara", role: "tenant-admin", scope: "tenant:\(tenant)")
            #expect(try viaLeader.run(["project", "list", "--tenant", tenant], as: "tara").status == 0)
            let binding = try #require(
                (try viaLeader.json(["role", "list"], as: "admin")["items"] as? [[String: Any]])?
                    .first { $0["role"] as? String == "tenant-admin" }?["id"] as? String)
            #expect(try viaFollower.run(["role", "revoke", binding], as: "admin").status == 0)
            let narrowedAfter = try Self.seconds {
                try viaLeader.run(["project", "list", "--tenant", tenant], as: "tara").status != 0
            }
            #expect((narrowedAfter ?? 99) < 1, "narrowed after \(narrowedAfter.map { "\($0) s" } ?? "never")")

            // With the leader gone, the follower still answers what it answers itself; the rest it refuses.
            leader.kill()
            #expect(try viaFollower.run(["tenant", "list"], as: "admin").status == 0)
            #expect(try viaFollower.run(["job", "list", "--project", project], as: "admin").status == 0)
            #expect(try viaFollower.run(["node", "list"], as: "admin").status != 0)
            // It takes the lead and appends what it recorded meanwhile: each event once, in one verified log.
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, (try? viaFollower.run(["node", "list"], as: "admin"))?.status != 0 {
                usleep(100_000)
            }
            usleep(1_000_000)
            follower.stop()
            let events = try viaFollower.verifiedAuditEvents().split(separator: "\n").compactMap { line in
                try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            }
            func count(_ action: String, _ id: String) -> Int {
                events.filter {
                    $0["action"] as? String == action && ($0["resource"] as? [String: Any])?["id"] as? String == id
                        && $0["outcome"] as? String == "success"
                }.count
            }
            #expect(count("tenant.create", tenant) == 1 && count("project.create", project) == 1)
            #expect(count("user.disable", rita) == 1 && count("role.revoke", binding) == 1)
            #expect(events.filter { $0["action"] as? String == "tenant.list" }.count >= 1)
            #expect(events.filter { $0["action"] as? String == "job.list" }.count >= 1)
        }
    }

    @Test("10 rounds of SIGKILL to the leader under load: nothing acknowledged lost, nothing run twice")
    func killTheLeader() async throws {
        let url = try await TestDatabase.createPostgresDatabase()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let shared = scratch.path + "/objects"
        let tiers = ["hot", "warm", "cold", "archive"].map { "\($0)=\(shared)/\($0)" }.joined(separator: ",")
        let arguments = ["--database", "postgres://\(url.user)@\(url.host):\(url.port)/\(url.database)"]
        let environment = [
            "PGPASSWORD": url.password ?? "", "CADUCEUS_FAKE_GPUS": "2", "CADUCEUS_OBJECT_TIERS": tiers,
        ]
        let folders = [scratch.path + "/a", scratch.path + "/b"]
        var replicas = [try TestServer(data: folders[0], environment: environment, arguments: arguments)]
        replicas.append(
            try Self.follower(of: replicas[0], data: folders[1], environment: environment, arguments: arguments))
        defer { for replica in replicas { replica.stop() } }

        let first = CLISession(scratch: scratch, server: replicas[0])
        let (tenant, project) = try first.tenantWithResearcherAndAdmin()
        try first.giveLocalNode(to: tenant)
        let dataset = try first.id(
            [
                "dataset", "create", "--project", project, "--classification", "phi", "--residency", "US",
                "--retention-years", "6", "failover-uploads",
            ], as: "rita")

        // The follower answers too: it forwards to the leader.
        let viaFollower = CLISession(scratch: scratch, server: replicas[1])
        #expect(try viaFollower.json(["tenant", "show", tenant], as: "admin")["name"] as? String == "st-marys")
        #expect(try replicas[1].get("/readyz").0 == 200)
        // Bodies over the size forwarded whole stream through the follower both ways, intact.
        let large = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try large.write(to: URL(fileURLWithPath: scratch.path + "/large.bin"))
        let stored = try viaFollower.run(["dataset", "upload", dataset, scratch.path + "/large.bin"], as: "rita")
        #expect(stored.status == 0, "\(stored.text) \(stored.stderr)")
        let fetched = try viaFollower.run(
            ["dataset", "download", dataset, "large.bin", "--out", scratch.path + "/large-back.bin"], as: "rita")
        #expect(fetched.status == 0, "\(fetched.text) \(fetched.stderr)")
        #expect(FileManager.default.contents(atPath: scratch.path + "/large-back.bin") == large)
        #expect(try replicas[1].get("/metrics").0 == 404, "a follower never relays the leader's metrics")

        let box = SessionBox([first, viaFollower])
        var leader = 0
        var takeovers: [Double] = []
        var checkpoints: [String] = []
        let acknowledged = Acknowledged()
        var generator = SystemRandomNumberGenerator()
        for round in 1...10 {
            let roundAcknowledged = Acknowledged()
            let driver = Self.drive(
                { box.sessions }, project: project, dataset: dataset, scratch: scratch, round: round,
                into: roundAcknowledged)
            usleep(UInt32.random(in: 1_000_000...2_500_000, using: &generator))
            let killedAt = Date()
            replicas[leader].kill()
            let survivor = 1 - leader
            let viaSurvivor = box.sessions[survivor]
            // Before it leads, the survivor still shows a job acknowledged earlier: it reads jobs itself.
            if let id = (acknowledged.jobs + roundAcknowledged.jobs).first {
                let shown = try viaSurvivor.run(["job", "show", id], as: "rita")
                #expect(shown.status == 0, "round \(round): \(id) unreadable during the takeover: \(shown.stderr)")
            }
            var answered = false
            while !answered && Date().timeIntervalSince(killedAt) < 30 {
                answered = (try? viaSurvivor.run(["cluster", "status", "--output", "json"], as: "admin"))?.status == 0
                if !answered { usleep(100_000) }
            }
            takeovers.append(Date().timeIntervalSince(killedAt))
            #expect(answered, "round \(round): the surviving replica never took over")
            // The killed replica comes back and follows.
            replicas[leader] = try TestServer(data: folders[leader], environment: environment, arguments: arguments)
            box.replace(leader, with: CLISession(scratch: scratch, server: replicas[leader]))
            usleep(500_000)
            roundAcknowledged.stop()
            while driver.isExecuting { usleep(20_000) }
            for id in roundAcknowledged.jobs { acknowledged.job(id) }
            for name in roundAcknowledged.objects { acknowledged.object(name) }
            leader = survivor
            // The leader's tiles and checkpoint trail its commits by at most about a second.
            usleep(1_200_000)
            let saved = scratch.path + "/checkpoint-\(round)"
            try FileManager.default.copyItem(atPath: folders[leader] + "/audit/checkpoint", toPath: saved)
            checkpoints.append(saved)
        }
        let sorted = takeovers.sorted()
        print(
            "failover: \(takeovers.count) rounds, takeover p50 \(sorted[sorted.count / 2]) s, max \(sorted.last ?? 0) s "
                + "(\(takeovers.map { String(format: "%.1f", $0) }.joined(separator: ", "))); "
                + "\(acknowledged.jobs.count) jobs and \(acknowledged.objects.count) uploads acknowledged")
        // The lease is 6 s; this debug build, polled through the CLI on a loaded machine, answers again within
        // 15 s (`bench scale` measures the release build against the 10 s target).
        #expect((sorted.last ?? 99) < 15, "takeovers: \(takeovers)")
        #expect(acknowledged.jobs.count >= 10 && acknowledged.objects.count >= 10)

        // Every acknowledged job is there and ends; none ran twice, and each that succeeded ran once.
        let session = box.sessions[leader]
        var states: [String: String] = [:]
        let deadline = Date().addingTimeInterval(120)
        for id in acknowledged.jobs {
            var state = ""
            while Date() < deadline {
                state = try session.json(["job", "show", id], as: "rita")["state"] as? String ?? ""
                if ["succeeded", "failed", "cancelled"].contains(state) { break }
                usleep(200_000)
            }
            states[id] = state
        }
        let ran = (try? String(contentsOfFile: scratch.path + "/ran", encoding: .utf8)) ?? ""
        let runs = Dictionary(grouping: ran.split(separator: "\n").map(String.init), by: { $0 }).mapValues(\.count)
        #expect(runs.values.allSatisfy { $0 == 1 }, "jobs that ran more than once: \(runs.filter { $0.value > 1 })")
        for (id, state) in states {
            #expect(["succeeded", "failed"].contains(state), "\(id) is \(state)")
            if state == "succeeded" { #expect(runs[id] == 1, "\(id) succeeded without running") }
        }
        #expect(states.values.filter { $0 == "succeeded" }.count >= acknowledged.jobs.count / 2, "\(states)")

        // Every acknowledged upload is listed and reads back.
        let listed = try session.json(["dataset", "objects", dataset], as: "rita")
        let names = Set((listed["items"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        for name in acknowledged.objects { #expect(names.contains(name), "upload \(name) was lost") }
        if let name = acknowledged.objects.last {
            let read = try session.run(
                ["dataset", "download", dataset, name, "--out", scratch.path + "/read-back"], as: "rita")
            #expect(read.status == 0, "\(read.stderr)")
            #expect(
                FileManager.default.contentsEqual(
                    atPath: scratch.path + "/read-back", andPath: scratch.path + "/" + name))
        }

        // One history: the last leader's log verifies and extends every checkpoint seen after each round, and
        // it records every acknowledged submission.
        replicas[1 - leader].stop()
        replicas[leader].stop()
        let log = folders[leader] + "/audit"
        let vkey = folders[leader] + "/keys/audit.vkey"
        for checkpoint in checkpoints {
            let verify = try CLI.run(["audit", "verify", "--log", log, "--vkey", vkey, "--trusted", checkpoint])
            #expect(verify.status == 0, "\(checkpoint): \(verify.stderr)")
        }
        // The follower kept its own folder up to the shared journal: it verifies, and the leader's extends it.
        let followerLog = folders[1 - leader] + "/audit"
        let follower = try CLI.run(["audit", "verify", "--log", followerLog, "--vkey", vkey])
        #expect(follower.status == 0, "\(follower.stderr)")
        let extends = try CLI.run([
            "audit", "verify", "--log", log, "--vkey", vkey, "--trusted", followerLog + "/checkpoint",
        ])
        #expect(extends.status == 0, "\(extends.stderr)")
        let events = try CLI.run(["audit", "export", "--log", log, "--format", "jsonl"]).text
        for id in acknowledged.jobs { #expect(events.contains(id), "the submission of \(id) is not in the audit log") }
        // Every event's sealed details reached the last leader, whichever replica recorded it, and open.
        let commitments = events.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["payload"] as? String
        }
        #expect(commitments.count >= acknowledged.objects.count)
        let missing = commitments.filter {
            !FileManager.default.fileExists(atPath: log + "/payloads/" + $0.dropFirst("sha256:".count))
        }
        #expect(missing.isEmpty, "\(missing.count) of \(commitments.count) payloads missing")
        if let first = commitments.first {
            let opened = try CLI.run(["audit", "payload", "--log", log, first])
            #expect(opened.status == 0 && opened.text.hasPrefix("{"), "\(opened.stderr)")
        }
    }
}

/// The CLI sessions of the two replicas, replaced as replicas restart.
final class SessionBox: @unchecked Sendable {
    // Safe: `current` is touched only with `lock` held.
    private let lock = NSLock()
    private var current: [CLISession]

    init(_ sessions: [CLISession]) { current = sessions }

    var sessions: [CLISession] { lock.withLock { current } }
    func replace(_ index: Int, with session: CLISession) { lock.withLock { current[index] = session } }
}
