import Foundation
import Testing

/// Jobs really running: the real server with fake GPUs runs a researcher's jobs as processes, inference
/// preempts training, cancel stops a process, and every start, end and GPU scrub is in the audit trail.
struct ExecutionEndToEndTests {
    /// Polls `job show` until the job is in one of `states`; returns its object.
    func wait(
        for job: String, in states: Set<String>, _ session: CLISession, as who: String, seconds: Double = 60
    ) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            last = try session.json(["job", "show", job], as: who)
            if let state = last["state"] as? String, states.contains(state) { return last }
            usleep(100_000)
        }
        Issue.record("job \(job) never reached \(states); last: \(last)")
        return last
    }

    @Test("fake GPUs: a job runs and succeeds; inference preempts training; cancel stops a process; all audited")
    func jobsRun() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let server = try TestServer(
            data: scratch.path + "/data", environment: ["CADUCEUS_FAKE_GPUS": "2", "CADUCEUS_STOP_GRACE_SECONDS": "1"])
        defer { server.stop() }
        let session = CLISession(scratch: scratch, server: server)
        try session.logInAdmin()
        let tenant = try session.id(["tenant", "create", "st-marys"], as: "admin")
        let project = try session.id(["project", "create", "--tenant", tenant, "radiology"], as: "admin")
        try session.person("rita", role: "researcher", scope: "project:\(tenant)/\(project)")

        // This machine registered itself with its two fake GPUs; the platform admin gives it to the tenant.
        let nodes = try session.json(["node", "list"], as: "admin")
        let local = try #require((nodes["items"] as? [[String: Any]])?.first)
        let node = try #require(local["id"] as? String)
        let gpus = try #require(local["gpus"] as? [[String: Any]])
        #expect(gpus.count == 2 && gpus.allSatisfy { ($0["uuid"] as? String)?.hasPrefix("FAKE-") == true })
        _ = try session.json(["node", "assign", node, "--tenant", tenant], as: "admin")
        #expect(try session.json(["node", "activate", node], as: "admin")["state"] as? String == "available")

        // A job runs as a process with its GPUs and IDs in its environment, and succeeds.
        let submit = ["job", "submit", "--project", project]
        let hello = try session.id(
            submit + [
                "--class", "batch", "--gpus-per-node", "1", "--", "/bin/sh", "-c", #"echo "hi $CUDA_VISIBLE_DEVICES""#,
            ],
            as: "rita")
        let done = try wait(for: hello, in: ["succeeded", "failed"], session, as: "rita")
        #expect(done["state"] as? String == "succeeded", "\(done)")
        // Its GPU was scrubbed after it (every GPU was at start-up); node show gives each GPU's last scrub.
        let shown = try session.json(["node", "show", node], as: "admin")
        let scrubs = try #require(shown["lastScrubs"] as? [[String: Any]])
        #expect(scrubs.count == 2 && scrubs.allSatisfy { $0["passed"] as? Bool == true && $0["fake"] as? Bool == true })
        #expect(scrubs.allSatisfy { ($0["bytesOverwritten"] as? Int ?? 0) > 0 })
        let logs = try session.run(["job", "logs", hello], as: "rita")
        #expect(logs.status == 0 && logs.text.hasPrefix("hi FAKE-"), "\(logs.text) \(logs.stderr)")
        // An ended job's output is sealed at rest; the plain text is gone.
        let folder = server.data + "/jobs/\(hello)"
        #expect(!FileManager.default.fileExists(atPath: folder + "/stdout.log"))
        let sealed = try Data(contentsOf: URL(fileURLWithPath: folder + "/stdout.log.sealed"))
        #expect(sealed.prefix(8) == Data("CADSEAL1".utf8) && sealed.range(of: Data("hi FAKE".utf8)) == nil)
        #expect(try session.run(["job", "logs", hello], as: "admin").status != 0, "the platform admin reads no output")

        // Training holds both GPUs; inference needs them: training is preempted and requeued, inference runs.
        let training = try session.id(
            submit + [
                "--class", "training", "--gpus-per-node", "2", "--preemptible", "--", "/bin/sh", "-c",
                "echo started; exec sleep 300",
            ], as: "rita")
        _ = try wait(for: training, in: ["running"], session, as: "rita")
        let inference = try session.id(
            submit + ["--class", "inference", "--gpus-per-node", "2", "--", "/bin/sh", "-c", "sleep 1"], as: "rita")
        let served = try wait(for: inference, in: ["succeeded", "failed"], session, as: "rita")
        #expect(served["state"] as? String == "succeeded", "\(served)")
        // The training job runs again once the inference job's GPUs are scrubbed; then it is cancelled.
        let rerun = try wait(for: training, in: ["running"], session, as: "rita")
        // Following the log of a running job prints what it wrote, and returns once it ends.
        let login = ["CADUCEUS_LOGIN_FILE": scratch.path + "/rita.json"]
        let follower = Task { try CLI.run(["job", "logs", training, "--follow"], environment: login) }
        #expect(rerun["preemptions"] as? Int == 1, "\(rerun)")
        #expect(try session.json(["job", "cancel", training], as: "rita")["state"] as? String == "cancelled")
        let followed = try await follower.value
        #expect(followed.status == 0 && followed.text == "started\nstarted\n", "\(followed.text) \(followed.stderr)")
        let deadline = Date().addingTimeInterval(10)
        while Self.processes(ofJob: training) > 0 && Date() < deadline { usleep(100_000) }
        #expect(Self.processes(ofJob: training) == 0, "the cancelled job's process is still running")

        // A restart in the middle of a job: its process is lost, so it fails with the reason, and nothing of it
        // is left running; it is never started twice.
        let interrupted = try session.id(
            submit + ["--class", "training", "--gpus-per-node", "1", "--", "/bin/sleep", "300"], as: "rita")
        _ = try wait(for: interrupted, in: ["running"], session, as: "rita")
        server.stop()
        // (The flag this time, the environment before.)
        let restarted = try TestServer(
            data: server.data, environment: ["CADUCEUS_STOP_GRACE_SECONDS": "1"], arguments: ["--fake-gpus", "2"])
        defer { restarted.stop() }
        let after = CLISession(scratch: scratch, server: restarted)
        let lost = try wait(for: interrupted, in: ["failed"], after, as: "rita")
        #expect((lost["reason"] as? String)?.contains("restarted") == true, "\(lost)")
        #expect(Self.processes(ofJob: interrupted) == 0)

        // The node goes to another tenant only through sanitisation, which leaves a record.
        let other = try after.id(["tenant", "create", "childrens"], as: "admin")
        let moving = try after.json(["node", "assign", node, "--tenant", other], as: "admin")
        #expect(moving["state"] as? String != "available" || moving["tenant"] as? String != other, "no shortcut")
        let sanitised = Date().addingTimeInterval(30)
        var moved: [String: Any] = [:]
        while Date() < sanitised {
            moved = try after.json(["node", "show", node], as: "admin")
            if moved["state"] as? String == "available" && moved["tenant"] as? String == other { break }
            usleep(100_000)
        }
        #expect(moved["state"] as? String == "available" && moved["tenant"] as? String == other, "\(moved)")
        let records = try after.json(["node", "sanitization-records", node], as: "admin")
        let record = try #require((records["items"] as? [[String: Any]])?.first)
        #expect(((record["record"] as? [String: Any])?["previousTenant"] as? String) == tenant)
        #expect((record["gpus"] as? [[String: Any]])?.count == 2)

        restarted.stop()
        let events = try after.verifiedAuditEvents()
        for action in [
            "node.register", "job.start", "job.succeed", "job.requeue", "gpu.scrub", "job.cancel", "job.logs",
            "job.fail",
            "node.sanitize",
        ] {
            #expect(events.contains(#""action":"\#(action)""#), "\(action)")
        }
    }

    @Test("bench executor prints submit-to-start figures and its executor-only reference")
    func benchExecutor() throws {
        let result = try CLI.run(["bench", "executor", "--jobs", "6", "--gpus", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        let figures = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        for key in [
            "submitToStartP50Milliseconds", "submitToStartP99Milliseconds", "jobsPerSecond",
            "referenceExecutorStartP50Milliseconds",
        ] {
            #expect((figures[key] as? Double ?? 0) > 0, "\(key): \(figures)")
        }
    }

    /// Live processes carrying the job's ID in their environment.
    static func processes(ofJob job: String) -> Int {
        let marker = "CADUCEUS_JOB_ID=\(job)"
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.filter { pid in
            guard Int(pid) != nil, let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ"),
                let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), !stat.contains(") Z ")
            else { return false }
            return environ.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == marker }
        }.count
    }
}
