import Foundation
import Testing

/// Jobs through Caduceus onto a real one-node Slurm cluster (`scripts/slurm.sh`): the right node and GRES,
/// Slurm's state and reasons, logs, cancel, inference preempting training, scrub records from the epilog,
/// and a partition that holds another tenant's node refused.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CADUCEUS_TEST_SLURM_SOCKET"] != nil), .serialized)
struct SlurmEndToEndTests {
    let environment = ProcessInfo.processInfo.environment
    var socket: String { environment["CADUCEUS_TEST_SLURM_SOCKET"] ?? "" }
    var slurmNode: String { environment["CADUCEUS_TEST_SLURM_NODE"] ?? "" }
    var slurmDirectory: String { environment["CADUCEUS_TEST_SLURM_DIR"] ?? "" }

    /// Polls `job show` until the job is in one of `states`.
    func wait(
        for job: String, in states: Set<String>, _ session: CLISession, seconds: Double = 90
    ) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            last = try session.json(["job", "show", job], as: "rita")
            if let state = last["state"] as? String, states.contains(state) { return last }
            usleep(250_000)
        }
        Issue.record("job \(job) never reached \(states); last: \(last)")
        return last
    }

    /// The jobs slurmctld holds, from slurmrestd itself, by name.
    func slurmJobs(named prefix: String) throws -> [[String: Any]] {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = ["curl", "-s", "-m", "10", "--unix-socket", socket, "http://localhost/slurm/v0.0.38/jobs"]
        let out = Pipe()
        curl.standardOutput = out
        try curl.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        curl.waitUntilExit()
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (object["jobs"] as? [[String: Any]] ?? []).filter { ($0["name"] as? String ?? "").hasPrefix(prefix) }
    }

    /// The server, configured for the test cluster, with its spool in `scratch`.
    func server(_ scratch: Scratch, partitions: String) throws -> TestServer {
        let gpuProgram = CLI.executable.deletingLastPathComponent().appendingPathComponent("caduceus-gpu").path
        let spool = scratch.path + "/spool"
        // The cluster's prolog and epilog run the project's hook with this server's spool.
        let hook = slurmDirectory + "/hook.d"
        try FileManager.default.createDirectory(atPath: hook, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/slurm-gpu-hook.sh").path
        try """
        #!/bin/sh
        export CADUCEUS_SLURM_SPOOL='\(spool)' CADUCEUS_GPU='\(gpuProgram)' CADUCEUS_GPU_OPTIONS='--fake-gpus 8'
        exec '\(script)'

        """.write(toFile: hook + "/run", atomically: true, encoding: .utf8)
        chmod(hook + "/run", 0o755)
        return try TestServer(
            data: scratch.path + "/data",
            environment: [
                "CADUCEUS_SLURM_URL": "unix:\(socket)", "CADUCEUS_SLURM_PARTITIONS": partitions,
                "CADUCEUS_SLURM_SPOOL": spool, "CADUCEUS_SLURM_GPU_PROGRAM": gpuProgram,
                "CADUCEUS_SLURM_GPU_OPTIONS": "--fake-gpus 8", "CADUCEUS_FAKE_GPUS": "0",
            ])
    }

    /// A tenant with its researcher and the Slurm node (8 H200s) as its node; returns the IDs and the
    /// `node create` words for more nodes.
    func slurmTenant(_ session: CLISession) throws -> (String, String, String, [String]) {
        let (tenant, project) = try session.tenantWithResearcherAndAdmin()
        let region = try session.id(["region", "create", "--residency", "US", "us-east"], as: "admin")
        let site = try session.id(["site", "create", "--region", region, "dc1"], as: "admin")
        let fabric = try session.id(["fabric", "create", "--site", site, "ib0"], as: "admin")
        let uuids = (0..<8).flatMap { ["--uuid", "GPU-slurm-\($0)"] }
        let create = ["node", "create", "--fabric", fabric, "--model", "H200", "--memory-mib", "143771"]
        let node = try session.id(create + [slurmNode] + uuids, as: "admin")
        _ = try session.json(["node", "assign", node, "--tenant", tenant], as: "admin")
        #expect(try session.json(["node", "activate", node], as: "admin")["state"] as? String == "available")
        return (tenant, project, node, create)
    }

    /// Runs `scripts/slurm.sh ACTION` on the test cluster.
    func slurmScript(_ action: String) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/slurm.sh").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = [action, slurmDirectory]
        try process.run()
        guard action == "start-rest" else {
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "slurm.sh \(action)")
            return
        }
        // slurmrestd, started in the background, keeps the script's exit from being seen: wait for its socket.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && !FileManager.default.fileExists(atPath: socket) { usleep(100_000) }
        #expect(FileManager.default.fileExists(atPath: socket), "slurmrestd is back")
    }

    @Test("slurmrestd gone: /readyz says so, running and new jobs wait; back: they run, none twice")
    func slurmrestdOutage() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let server = try server(scratch, partitions: "st-marys=debug")
        defer { server.stop() }
        let session = CLISession(scratch: scratch, server: server)
        let (_, project, _, _) = try slurmTenant(session)
        let submit = ["job", "submit", "--project", project, "--class", "batch", "--gpus-per-node", "1", "--"]
        let running = try session.id(submit + ["/bin/sh", "-c", "sleep 6; echo first"], as: "rita")
        _ = try wait(for: running, in: ["running"], session)
        try slurmScript("stop-rest")
        var ready = try server.get("/readyz")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && ready.0 == 200 {
            usleep(250_000)
            ready = try server.get("/readyz")
        }
        #expect(
            ready.0 == 503 && ready.1.contains("\"slurm\":\"unavailable\""),
            "\(ready) \(server.logText.suffix(4000))")
        // A job submitted now is taken and waits; the running one is not given up.
        let waiting = try session.id(submit + ["/bin/sh", "-c", "echo second"], as: "rita")
        sleep(2)
        #expect(try session.json(["job", "show", running], as: "rita")["state"] as? String == "running")
        #expect(try session.json(["job", "show", waiting], as: "rita")["state"] as? String != "failed")
        try slurmScript("start-rest")
        for job in [running, waiting] {
            let done = try wait(for: job, in: ["succeeded", "failed"], session, seconds: 40)
            #expect(done["state"] as? String == "succeeded", "\(done) \(server.logText.suffix(3000))")
            #expect(try slurmJobs(named: "caduceus-\(job)-").count == 1, "submitted to Slurm exactly once")
        }
        let back = Date().addingTimeInterval(15)
        while Date() < back, try server.get("/readyz").0 != 200 { usleep(250_000) }
        #expect(try server.get("/readyz").0 == 200)
    }

    /// Polls slurmrestd until the one Slurm job named `name` satisfies `condition`; returns it.
    func waitInSlurm(
        _ name: String, seconds: Double = 30, until condition: ([String: Any]) -> Bool
    ) throws -> [String: Any]? {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any]?
        while Date() < deadline {
            last = try slurmJobs(named: name).first
            if let last, condition(last) { return last }
            usleep(250_000)
        }
        Issue.record("Slurm job \(name) never got there; last: \(String(describing: last))")
        return last
    }

    @Test("waiting jobs wait in Slurm, held; placed, each is released onto its node and GPUs; restart; cancel")
    func waitingJobsAreHeldInSlurm() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var server = try server(scratch, partitions: "st-marys=debug")
        defer { server.stop() }
        var session = CLISession(scratch: scratch, server: server)
        let (_, project, _, _) = try slurmTenant(session)
        let submit = ["job", "submit", "--project", project, "--class", "batch"]
        let blocker = try session.id(submit + ["--gpus-per-node", "8", "--", "/bin/sh", "-c", "sleep 8"], as: "rita")
        _ = try wait(for: blocker, in: ["running"], session)

        // No GPU is free: each new job waits in Caduceus's queue, and in Slurm's as a held job with no node.
        let waiting = try session.id(
            submit + ["--gpus-per-node", "2", "--", "/bin/sh", "-c", "echo \"placed on $CADUCEUS_GPU_UUIDS\""],
            as: "rita")
        let cancelled = try session.id(submit + ["--gpus-per-node", "1", "--", "/bin/true"], as: "rita")
        for job in [waiting, cancelled] {
            let held = try waitInSlurm("caduceus-\(job)-0") {
                $0["job_state"] as? String == "PENDING" && ($0["state_reason"] as? String ?? "").hasPrefix("JobHeld")
            }
            #expect(held?["tres_per_node"] as? String ?? "" == "", "no GPUs before placement: \(held ?? [:])")
        }
        #expect(try session.json(["job", "show", waiting], as: "rita")["state"] as? String == "pending")

        // Cancelled while waiting: its held Slurm job is cancelled and never runs.
        #expect(try session.run(["job", "cancel", cancelled], as: "rita").status == 0)
        _ = try waitInSlurm("caduceus-\(cancelled)-0") { $0["job_state"] as? String == "CANCELLED" }

        // A restart while the job waits: the new process takes the held job over rather than handing over another.
        server.kill()
        server = try self.server(scratch, partitions: "st-marys=debug")
        session = CLISession(scratch: scratch, server: server)

        // The blocker ends; the waiting job is placed and its held Slurm job released onto the node with its GRES.
        let done = try wait(for: waiting, in: ["succeeded", "failed"], session, seconds: 90)
        #expect(done["state"] as? String == "succeeded", "\(done) \(server.logText.suffix(3000))")
        let runs = try slurmJobs(named: "caduceus-\(waiting)-")
        #expect(runs.count == 1, "one Slurm job for the run: \(runs)")
        #expect(runs.first?["nodes"] as? String == slurmNode)
        #expect(runs.first?["tres_per_node"] as? String == "gres:gpu:h200:2", "\(runs)")
        #expect(runs.first?["job_state"] as? String == "COMPLETED")
        let logs = try session.run(["job", "logs", waiting], as: "rita")
        #expect(logs.text.contains("placed on GPU-slurm-"), "\(logs.text) \(logs.stderr)")
        #expect(try slurmJobs(named: "caduceus-\(cancelled)-").allSatisfy { $0["job_state"] as? String == "CANCELLED" })
        #expect(try session.json(["job", "show", cancelled], as: "rita")["state"] as? String == "cancelled")
    }

    @Test("the control plane restarts while a Slurm job runs: it follows the job on, which succeeds, run once")
    func restartAdoptsRunningJobs() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var server = try server(scratch, partitions: "st-marys=debug")
        defer { server.stop() }
        let session = CLISession(scratch: scratch, server: server)
        let (_, project, _, _) = try slurmTenant(session)
        let submit = ["job", "submit", "--project", project, "--class", "batch", "--gpus-per-node", "1", "--"]
        let job = try session.id(submit + ["/bin/sh", "-c", "sleep 6; echo outlived the control plane"], as: "rita")
        _ = try wait(for: job, in: ["running"], session)
        server.kill()
        server = try self.server(scratch, partitions: "st-marys=debug")
        let again = CLISession(scratch: scratch, server: server)
        let done = try wait(for: job, in: ["succeeded", "failed"], again, seconds: 60)
        #expect(done["state"] as? String == "succeeded", "\(done) \(server.logText.suffix(3000))")
        #expect(try slurmJobs(named: "caduceus-\(job)-").count == 1, "submitted to Slurm exactly once")
        let output = try again.run(["job", "logs", job], as: "rita")
        #expect(output.text.contains("outlived the control plane"), "\(output.text) \(output.stderr)")
    }

    @Test("jobs run in Slurm on the chosen node with gpu GRES; fail with Slurm's words; cancel; preemption; scrubs")
    func jobsRunInSlurm() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var server = try server(scratch, partitions: "st-marys=debug")
        var session = CLISession(scratch: scratch, server: server)
        let (_, project, node, create) = try slurmTenant(session)

        // A batch job runs in Slurm: on the chosen node, with two H200s as GRES; its output comes back.
        let submit = ["job", "submit", "--project", project]
        let hello = try session.id(
            submit + ["--class", "batch", "--gpus-per-node", "2", "--", "/bin/sh", "-c", "echo hello from slurm"],
            as: "rita")
        let done = try wait(for: hello, in: ["succeeded", "failed"], session)
        #expect(done["state"] as? String == "succeeded", "\(done)")
        let inSlurm = try #require(try slurmJobs(named: "caduceus-\(hello)-").first)
        #expect(inSlurm["nodes"] as? String == slurmNode)
        #expect(inSlurm["partition"] as? String == "debug")
        #expect(inSlurm["tres_per_node"] as? String == "gres:gpu:h200:2", "\(inSlurm)")
        let logs = try session.run(["job", "logs", hello], as: "rita")
        #expect(logs.text.contains("hello from slurm"), "\(logs.text) \(logs.stderr)")

        // The epilog scrubbed the two GPUs the job held; the control plane audited both.
        let deadline = Date().addingTimeInterval(60)
        var scrubbed: [[String: Any]] = []
        while Date() < deadline && scrubbed.count < 2 {
            let shown = try session.json(["node", "show", node], as: "admin")
            scrubbed = (shown["lastScrubs"] as? [[String: Any]] ?? []).filter { $0["passed"] as? Bool == true }
            usleep(250_000)
        }
        #expect(scrubbed.count == 2, "\(scrubbed) \(server.logText.suffix(3000))")

        // A failing program fails with its status, in Slurm's words.
        let failing = try session.id(
            submit + ["--class", "batch", "--gpus-per-node", "1", "--", "/bin/sh", "-c", "exit 3"], as: "rita")
        let failed = try wait(for: failing, in: ["succeeded", "failed"], session)
        #expect(failed["state"] as? String == "failed")
        #expect((failed["reason"] as? String ?? "").contains("status 3"), "\(failed)")

        // Training holds all eight GPUs; inference needs them: Slurm's training job is cancelled (its GPUs
        // freed), inference runs, and training is submitted again.
        let training = try session.id(
            submit + [
                "--class", "training", "--gpus-per-node", "8", "--preemptible", "--", "/bin/sh", "-c",
                "exec sleep 300",
            ], as: "rita")
        _ = try wait(for: training, in: ["running"], session)
        let inference = try session.id(
            submit + ["--class", "inference", "--gpus-per-node", "8", "--", "/bin/sh", "-c", "sleep 1"], as: "rita")
        let served = try wait(for: inference, in: ["succeeded", "failed"], session)
        let trainingNow = try session.json(["job", "show", training], as: "rita")
        #expect(served["state"] as? String == "succeeded", "\(served) \(trainingNow)")
        let rerun = try wait(for: training, in: ["running"], session)
        #expect(rerun["preemptions"] as? Int == 1, "\(rerun)")
        let trainingRuns = try slurmJobs(named: "caduceus-\(training)-")
        #expect(
            trainingRuns.contains {
                $0["name"] as? String == "caduceus-\(training)-0" && $0["job_state"] as? String == "CANCELLED"
            })

        // Cancelling stops the Slurm job.
        #expect(try session.run(["job", "cancel", training], as: "rita").status == 0)
        _ = try wait(for: training, in: ["cancelled"], session)
        let deadline2 = Date().addingTimeInterval(30)
        var cancelledInSlurm = false
        while Date() < deadline2 && !cancelledInSlurm {
            cancelledInSlurm =
                try slurmJobs(named: "caduceus-\(training)-1").first?["job_state"] as? String == "CANCELLED"
            usleep(250_000)
        }
        #expect(cancelledInSlurm)

        // A partition that also holds a node of another tenant: the tenant's jobs are refused, with why.
        let other = try session.id(["tenant", "create", "other-hospital"], as: "admin")
        let spare = try session.id(create + ["spare"] + (0..<8).flatMap { ["--uuid", "GPU-spare-\($0)"] }, as: "admin")
        _ = try session.json(["node", "assign", spare, "--tenant", other], as: "admin")
        server.stop()
        server = try self.server(scratch, partitions: "st-marys=mixed")
        session = CLISession(scratch: scratch, server: server)
        let refused = try session.id(
            submit + ["--class", "batch", "--gpus-per-node", "1", "--", "/bin/true"], as: "rita")
        let refusal = try wait(for: refused, in: ["succeeded", "failed"], session)
        #expect(refusal["state"] as? String == "failed")
        #expect((refusal["reason"] as? String ?? "").contains("spare"), "\(refusal)")
        #expect(try slurmJobs(named: "caduceus-\(refused)-").isEmpty)

        let events = try session.verifiedAuditEvents()
        #expect(events.contains("\"gpu.scrub\""))
        server.stop()
    }
}
