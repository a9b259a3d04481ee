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
        let session = CLISession(scratch: scratch, server: server)
        try session.logInAdmin()
        let tenant = try session.id(["tenant", "create", "st-marys"], as: "admin")
        let project = try session.id(["project", "create", "--tenant", tenant, "radiology"], as: "admin")
        try session.person("tara", role: "tenant-admin", scope: "tenant:\(tenant)")
        try session.person("rita", role: "researcher", scope: "project:\(tenant)/\(project)")

        // The platform admin builds the fleet.
        let region = try session.id(["region", "create", "--residency", "US", "us-east"], as: "admin")
        let site = try session.id(["site", "create", "--region", region, "dc1"], as: "admin")
        let fabric = try session.id(["fabric", "create", "--site", site, "ib0"], as: "admin")
        let uuids = (0..<8).flatMap { ["--uuid", "GPU-e2e-\($0)"] }
        let node = try session.id(
            ["node", "create", "--fabric", fabric, "--model", "H200", "--memory-mib", "143771", "gpu-01"] + uuids,
            as: "admin")
        #expect(
            try session.json(["node", "assign", node, "--tenant", tenant], as: "admin")["tenant"] as? String == tenant)
        #expect(try session.json(["node", "activate", node], as: "admin")["state"] as? String == "available")
        #expect(try session.run(["node", "list"], as: "admin").text.contains("8× H200"))
        #expect(try session.run(["node", "cordon", node], as: "rita").status != 0)

        // The tenant admin sets the project's quota; the researcher may not.
        #expect(
            try session.run(["quota", "set", "--project", project, "--guaranteed", "8", "--maximum", "8"], as: "rita")
                .status
                != 0)
        let quota = try session.json(
            ["quota", "set", "--project", project, "--guaranteed", "8", "--maximum", "8"], as: "tara")
        #expect(quota["maximumGPUs"] as? Int == 8)

        // The researcher's job is placed at once.
        let submit = ["job", "submit", "--project", project, "--class", "training", "--gpus-per-node", "8"]
        let placed = try session.json(
            submit + [
                "--model", "H200", "--residency", "US", "--env", "SEED=7", "--", "python", "train.py", "--epochs", "3",
            ],
            as: "rita")
        let placedID = try #require(placed["id"] as? String)
        #expect(placed["state"] as? String == "placed")
        #expect(placed["arguments"] as? [String] == ["train.py", "--epochs", "3"])

        // A job that could never run is refused with the reason, and not stored.
        let refused = try session.run(submit + ["--nodes", "2", "--", "python", "train.py"], as: "rita")
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("can never run") && refused.stderr.contains("422"), "\(refused.stderr)")
        let bad = try session.run(submit + ["--max-runtime", "5", "--", "python"], as: "rita")
        #expect(bad.stderr.contains("maxRuntimeSeconds"), "\(bad.stderr)")

        // One that must wait says why, in words.
        let waitingID = try #require(
            try session.json(submit + ["--", "python", "eval.py"], as: "rita")["id"] as? String)
        let why = try session.run(["job", "why", waitingID], as: "rita")
        #expect(why.status == 0, "\(why.stderr)")
        #expect(why.text.contains("project quota reached: 8 of 8 GPUs in use"), "\(why.text)")

        // The platform admin sees where the job runs but not what it runs.
        let seenByAdmin = try session.json(["job", "show", placedID], as: "admin")
        #expect(seenByAdmin["command"] == nil && seenByAdmin["environment"] == nil)

        // Cancelling the first job lets the second one run.
        #expect(try session.json(["job", "cancel", placedID], as: "rita")["state"] as? String == "cancelled")
        #expect(try session.json(["job", "show", waitingID], as: "rita")["state"] as? String == "placed")
        let listed = try session.run(["job", "list", "--project", project], as: "rita").text
        #expect(listed.contains(placedID) && listed.contains(waitingID))

        server.stop()
        let events = try session.verifiedAuditEvents()
        for action in ["node.assign", "quota.set", "job.submit", "job.place", "job.cancel"] {
            #expect(events.contains(#""action":"\#(action)""#), "\(action)")
        }
    }
}
