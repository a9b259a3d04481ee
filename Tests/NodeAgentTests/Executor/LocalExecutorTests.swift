import CaduceusCore
import Foundation
import NodeAgent
import Testing

/// The local executor against real child processes: every way a program can misbehave ends in a clear final
/// state with nothing of it left running and nothing left in its scratch folder.
final class LocalExecutorTests: Sendable {
    let root: String
    let executor: LocalExecutor

    init() throws {
        root = FileManager.default.temporaryDirectory.path + "/caduceus-executor-\(UUID().uuidString)"
        executor = LocalExecutor(settings: .init(root: root, graceSeconds: 0.5, logLimitBytes: 1 << 20))
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func request(_ script: String, maxRuntime: Int = 60, gpus: [String] = ["GPU-a", "GPU-b"]) -> ExecutionRequest {
        ExecutionRequest(
            job: .generate(), tenant: TenantID(unchecked: "tnt-1"), project: ProjectID(unchecked: "prj-1"),
            command: "/bin/sh", arguments: ["-c", script], environment: ["GREETING": "hello"], gpuUUIDs: gpus,
            maxRuntimeSeconds: maxRuntime)
    }

    func log(_ job: JobID, _ stream: KeyPath<(stdout: String, stderr: String), String> = \.stdout) throws -> String {
        try String(contentsOfFile: executor.logPaths(of: job)[keyPath: stream], encoding: .utf8)
    }

    /// Processes carrying the job's ID in their environment.
    func survivors(_ job: JobID) -> Int {
        let marker = "CADUCEUS_JOB_ID=\(job.rawValue)"
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.filter { pid in
            guard Int(pid) != nil, let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ"),
                let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), !stat.contains(") Z ")
            else { return false }
            return environ.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == marker }
        }.count
    }

    @Test func runsWithItsEnvironmentScratchAndLogs() async throws {
        let job = request(
            #"echo "$GREETING $CUDA_VISIBLE_DEVICES $CADUCEUS_TENANT $CADUCEUS_PROJECT"; pwd; "#
                + #"stat -c %a "$TMPDIR"; echo secret > "$TMPDIR/data"; echo oops >&2; exit 3"#)
        let result = await executor.run(job)
        #expect(result.end == .exited(3) && !result.end.succeeded)
        let out = try log(job.job).split(separator: "\n")
        #expect(out.first == "hello GPU-a,GPU-b tnt-1 prj-1")
        #expect(out.dropFirst().first == Substring(executor.folder(of: job.job) + "/scratch"))
        #expect(out.dropFirst(2).first == "700")
        #expect(try log(job.job, \.stderr) == "oops\n")
        let mode = try FileManager.default.attributesOfItem(atPath: executor.logPaths(of: job.job).stdout)[
            .posixPermissions]
        #expect(mode as? Int == 0o600)
        #expect(result.scratchFilesErased == 1)
        #expect(!FileManager.default.fileExists(atPath: executor.folder(of: job.job) + "/scratch"))
    }

    @Test func aCommandThatDoesNotExistNeverStarts() async {
        var job = request("")
        job.command = "/nonexistent/program"
        let result = await executor.run(job)
        guard case .failedToStart(let reason) = result.end else {
            Issue.record("expected failedToStart, got \(result.end)")
            return
        }
        #expect(reason.contains("No such file"))
        job.command = "no-such-program-anywhere"
        #expect(await executor.run(job).end != .exited(0))
    }

    @Test func aProgramThatExitsAtOnceSucceeds() async {
        let result = await executor.run(request("true"))
        #expect(result.end == .exited(0) && result.end.succeeded && result.pid > 0)
    }

    @Test func floodedOutputIsCutAtTheLimitWithoutBlockingTheJob() async throws {
        let job = request("head -c 5000000 /dev/zero; echo done >&2")
        let result = await executor.run(job)
        #expect(result.end == .exited(0))
        #expect(result.stdoutBytes == 5_000_000 && result.truncated)
        let size = try FileManager.default.attributesOfItem(atPath: executor.logPaths(of: job.job).stdout)[.size]
        #expect(size as? Int == 1 << 20)
        #expect(try log(job.job, \.stderr) == "done\n")
    }

    @Test func aJobIgnoringSIGTERMIsKilledAfterTheGracePeriod() async {
        let job = request("trap '' TERM; echo ready; while true; do sleep 1; done")
        async let result = executor.run(job)
        try? await Task.sleep(for: .milliseconds(300))
        let stopped = ContinuousClock.now
        await executor.stop(job.job, reason: .cancelled)
        let end = await result
        #expect(end.end == .cancelled)
        #expect(ContinuousClock.now - stopped >= .milliseconds(400))
        #expect(survivors(job.job) == 0)
    }

    @Test func childrenAndEscapedDescendantsAreKilledToo() async {
        // Background children in the group, and one that leaves it with setsid; the program itself exits.
        let job = request("sleep 300 & sleep 300 & setsid sleep 300 & sleep 0.2; exit 0")
        let result = await executor.run(job)
        #expect(result.end == .exited(0))
        #expect(result.leftoversKilled >= 3)
        #expect(survivors(job.job) == 0)
    }

    @Test func preemptionStopsTheWholeGroup() async {
        let job = request("sleep 300 & sleep 300 & wait")
        async let result = executor.run(job)
        try? await Task.sleep(for: .milliseconds(200))
        #expect(executor.isRunning(job.job))
        await executor.stop(job.job, reason: .preempted)
        #expect(await result.end == .preempted)
        #expect(survivors(job.job) == 0 && !executor.isRunning(job.job))
    }

    @Test func theMaximumRunTimeIsEnforced() async {
        let job = request("sleep 300", maxRuntime: 1)
        let result = await executor.run(job)
        #expect(result.end == .timedOut)
        #expect(survivors(job.job) == 0)
    }

    @Test func aCrashIsReportedAsTheSignal() async {
        let result = await executor.run(request("kill -SEGV $$"))
        #expect(result.end == .signalled(11))
    }

    @Test func scratchIsErasedThroughDeepFoldersAndLinksAreNotFollowed() async throws {
        let outside = root + "-outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try "keep".write(toFile: outside + "/keep", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let job = request(
            #"mkdir -p a/b/c && head -c 100000 /dev/urandom > a/b/c/weights && echo x > top && ln -s "#
                + outside + " link")
        let result = await executor.run(job)
        #expect(result.end == .exited(0) && result.scratchFilesErased == 2)
        #expect(try String(contentsOfFile: outside + "/keep", encoding: .utf8) == "keep")
    }
}

extension LocalExecutorTests {
    @Test func aJobInheritsNoDescriptorOfTheExecutor() async throws {
        // A file this process holds open, without close-on-exec, must not reach the job.
        let path = root + "-secret"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("secret".utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let job = request("ls /proc/self/fd | sort -n | tr '\\n' ' '")
        let result = await executor.run(job)
        #expect(result.end == .exited(0))
        // 0, 1, 2, and the descriptor ls opens to read the folder.
        let listed = try log(job.job)
        #expect(listed.split(separator: " ").count <= 4, "\(listed)")
    }
}
