import CaduceusCore
import Foundation
import Identity
import Testing

/// The fleet and jobs end to end: the real server over TLS, driven by the real CLI as three people.
struct FleetEndToEndTests {
    @Test("a node is registered, assigned and activated; a researcher's job is placed, refused, explained, cancelled")
    func fleetAndJobs() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let data = scratch.path + "/data"
        let server = try TestServer(data: data)
        defer { server.stop() }
        let ca = data + "/tls/ca.pem"

        func run(_ args: [String], as who: String, input: String = "") throws -> CLI.Result {
            try CLI.run(
                args, input: Data(input.utf8), environment: ["CADUCEUS_LOGIN_FILE": scratch.path + "/\(who).json"])
        }
        func json(_ args: [String], as who: String) throws -> [String: Any] {
            // The output flag goes before any `--` that starts a job's command.
            let result = try run(Array(args.prefix(2)) + ["--output", "json"] + args.dropFirst(2), as: who)
            #expect(result.status == 0, "\(args): \(result.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any], "\(args)")
        }
        func id(_ args: [String], as who: String) throws -> String {
            try #require(try json(args, as: who)["id"] as? String)
        }
        /// Logs `name` in with its first password and TOTP secret, and sets a password of its own.
        func logIn(_ name: String, password: String, secret: String) throws {
            let login = try run(
                ["login", "--server", server.url, "--ca-cert", ca, "--user", name, "--password-stdin"], as: name,
                input: "\(password)\n\(ServerEndToEndTests.code(secret: secret))\n")
            #expect(login.status == 0, "\(login.stderr)")
            let change = try run(
                ["user", "password", "--password-stdin"], as: name, input: "\(password)\n\(name)'s own new password\n")
            #expect(change.status == 0, "\(change.stderr)")
        }
        /// Creates a person with a role and logs them in.
        func person(_ name: String, role: String, scope: String) throws {
            let created = try json(["user", "create", name], as: "admin")
            let userID = try #require((created["user"] as? [String: Any])?["id"] as? String)
            #expect(try run(["role", "grant", userID, role, "--scope", scope], as: "admin").status == 0)
            try logIn(
                name, password: try #require(created["initialPassword"] as? String),
                secret: ServerEndToEndTests.secret(fromURI: try #require(created["otpauthURI"] as? String)))
        }

        let bootstrap = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: data + "/bootstrap-admin.json"))) as? [String: Any])
        try logIn(
            "admin", password: try #require(bootstrap["password"] as? String),
            secret: try #require(bootstrap["totpSecret"] as? String))
        let tenant = try id(["tenant", "create", "st-marys"], as: "admin")
        let project = try id(["project", "create", "--tenant", tenant, "radiology"], as: "admin")
        try person("tara", role: "tenant-admin", scope: "tenant:\(tenant)")
        try person("rita", role: "researcher", scope: "project:\(tenant)/\(project)")

        // The platform admin builds the fleet.
        let region = try id(["region", "create", "--residency", "US", "us-east"], as: "admin")
        let site = try id(["site", "create", "--region", region, "dc1"], as: "admin")
        let fabric = try id(["fabric", "create", "--site", site, "ib0"], as: "admin")
        let uuids = (0..<8).flatMap { ["--uuid", "GPU-e2e-\($0)"] }
        let node = try id(
            ["node", "create", "--fabric", fabric, "--model", "H200", "--memory-mib", "143771", "gpu-01"] + uuids,
            as: "admin")
        #expect(try json(["node", "assign", node, "--tenant", tenant], as: "admin")["tenant"] as? String == tenant)
        #expect(try json(["node", "activate", node], as: "admin")["state"] as? String == "available")
        #expect(try run(["node", "list"], as: "admin").text.contains("8× H200"))
        #expect(try run(["node", "cordon", node], as: "rita").status != 0)

        // The tenant admin sets the project's quota; the researcher may not.
        #expect(
            try run(["quota", "set", "--project", project, "--guaranteed", "8", "--maximum", "8"], as: "rita").status
                != 0)
        let quota = try json(["quota", "set", "--project", project, "--guaranteed", "8", "--maximum", "8"], as: "tara")
        #expect(quota["maximumGPUs"] as? Int == 8)

        // The researcher's job is placed at once.
        let submit = ["job", "submit", "--project", project, "--class", "training", "--gpus-per-node", "8"]
        let placed = try json(
            submit + [
                "--model", "H200", "--residency", "US", "--env", "SEED=7", "--", "python", "train.py", "--epochs", "3",
            ],
            as: "rita")
        let placedID = try #require(placed["id"] as? String)
        #expect(placed["state"] as? String == "placed")
        #expect(placed["arguments"] as? [String] == ["train.py", "--epochs", "3"])

        // A job that could never run is refused with the reason, and not stored.
        let refused = try run(submit + ["--nodes", "2", "--", "python", "train.py"], as: "rita")
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("can never run") && refused.stderr.contains("422"), "\(refused.stderr)")
        let bad = try run(submit + ["--max-runtime", "5", "--", "python"], as: "rita")
        #expect(bad.stderr.contains("maxRuntimeSeconds"), "\(bad.stderr)")

        // One that must wait says why, in words.
        let waitingID = try #require(try json(submit + ["--", "python", "eval.py"], as: "rita")["id"] as? String)
        let why = try run(["job", "why", waitingID], as: "rita")
        #expect(why.status == 0, "\(why.stderr)")
        #expect(why.text.contains("project quota reached: 8 of 8 GPUs in use"), "\(why.text)")

        // The platform admin sees where the job runs but not what it runs.
        let seenByAdmin = try json(["job", "show", placedID], as: "admin")
        #expect(seenByAdmin["command"] == nil && seenByAdmin["environment"] == nil)

        // Cancelling the first job lets the second one run.
        #expect(try json(["job", "cancel", placedID], as: "rita")["state"] as? String == "cancelled")
        #expect(try json(["job", "show", waitingID], as: "rita")["state"] as? String == "placed")
        let listed = try run(["job", "list", "--project", project], as: "rita").text
        #expect(listed.contains(placedID) && listed.contains(waitingID))

        server.stop()
        let verify = try run(
            ["audit", "verify", "--log", data + "/audit", "--vkey", data + "/keys/audit.vkey"], as: "x")
        #expect(verify.status == 0, "\(verify.stderr)")
        let events = try run(["audit", "export", "--log", data + "/audit", "--format", "jsonl"], as: "x").text
        for action in ["node.assign", "quota.set", "job.submit", "job.place", "job.cancel"] {
            #expect(events.contains(#""action":"\#(action)""#), "\(action)")
        }
    }
}
