import ArgumentParser
import CaduceusCore
import ControlPlane
import ControlPlaneHTTP
import EmbeddedAgent
import Foundation
import Identity
import Logging
import NIOHTTP1
import NodeAgent
import Scheduling

/// `caduceus bench executor`: from submission to a running process, through the whole control plane.
struct BenchExecutor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "executor",
        abstract: "Time from job submission to process start, and job throughput, on the local executor.",
        discussion: """
            Starts a server with fake GPUs on a scratch data directory, gives its local node to a tenant, and \
            submits --jobs trivial one-GPU jobs as a service account through the HTTPS API. Each job writes the \
            time its process started; the figures are submission to start (p50, p99) and jobs finished per \
            second. The reference, measured in the same run, is the local executor alone starting the same \
            program the same number of times.
            """
    )

    @Option(help: "Jobs to submit.")
    var jobs: Int = 200

    @Option(help: "Fake GPUs on the local node.")
    var gpus: Int = 8

    @Option(help: "Directory to create the scratch data directory in (default: the system temporary directory).")
    var directory: String?

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let base = (directory ?? FileManager.default.temporaryDirectory.path) + "/caduceus-bench-executor-\(getpid())"
        let data = base + "/data"
        let marks = base + "/marks"
        try FileManager.default.createDirectory(atPath: marks, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let reference = try await Self.reference(root: base + "/reference", count: jobs)

        let configuration = try ServerConfiguration.resolve(
            file: nil,
            overrides: [
                "dataDirectory": data, "listen": "127.0.0.1:0", "fakeGPUs": "\(gpus)", "stopGraceSeconds": "1",
                "agentListen": "off",
            ])
        var logger = Logger(label: "caduceus.bench")
        logger.logLevel = .warning
        let quiet = logger
        let settings = EmbeddedAgent.Settings(
            dataDirectory: data, fakeGPUs: gpus, residency: Residency(rawValue: "US")!,
            nodeName: "bench", graceSeconds: 1)
        let (started, continuation) = AsyncStream.makeStream(of: CaduceusServer.Started.self)
        let server = Task {
            try await CaduceusServer.run(
                configuration: configuration, logger: quiet,
                runner: { plane in try await EmbeddedAgent.start(plane: plane, settings: settings, logger: quiet) }
            ) { continuation.yield($0) }
        }
        defer { server.cancel() }
        var iterator = started.makeAsyncIterator()
        guard let info = await iterator.next() else { throw CLIError("the server did not start") }
        let (api, project) = try await Self.serviceAccount(info)
        defer { Task { await api.shutdown() } }

        var submitted: [JobID: Int64] = [:]
        let script = #"date +%s%N > "$BENCH_MARKS/$CADUCEUS_JOB_ID""#
        let begin = Self.nanoseconds()
        for _ in 0..<jobs {
            let request = SubmitJobRequest(
                project: project, jobClass: .batch, gpusPerNode: 1, command: "/bin/sh", arguments: ["-c", script],
                environment: ["BENCH_MARKS": marks])
            let time = Self.nanoseconds()
            let job = try await api.post("/v1/jobs", request, as: JobView.self)
            submitted[job.id] = time
        }
        var finished = 0
        while finished < jobs {
            let page = try await api.get(
                "/v1/jobs?project=\(project)&state=succeeded&limit=500", as: ListResponse<JobView>.self)
            finished = page.items.count
            let failed = try await api.get(
                "/v1/jobs?project=\(project)&state=failed&limit=1", as: ListResponse<JobView>.self)
            if let job = failed.items.first { throw CLIError("job \(job.id) failed: \(job.reason ?? "")") }
            if finished < jobs { try await Task.sleep(for: .milliseconds(50)) }
        }
        let elapsed = Double(Self.nanoseconds() - begin) / 1e9
        var latencies = LatencyHistogram()
        for (job, time) in submitted {
            let text = try String(contentsOfFile: marks + "/" + job.rawValue, encoding: .utf8)
            guard let start = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw CLIError("job \(job) left no start time")
            }
            latencies.record(UInt64(max(0, start - time)))
        }
        let fields: [(String, String)] = [
            ("jobs", "\(jobs)"), ("fakeGPUs", "\(gpus)"),
            ("submitToStartP50Milliseconds", Self.milliseconds(latencies.percentile(0.5))),
            ("submitToStartP99Milliseconds", Self.milliseconds(latencies.percentile(0.99))),
            ("jobsPerSecond", String(format: "%.1f", Double(jobs) / elapsed)),
            ("referenceExecutorStartP50Milliseconds", Self.milliseconds(reference.percentile(0.5))),
            ("referenceExecutorStartP99Milliseconds", Self.milliseconds(reference.percentile(0.99))),
        ]
        server.cancel()
        _ = await server.result
        StandardStreams.line("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    /// The local executor alone: time from `run` to the process running, for the same program.
    static func reference(root: String, count: Int) async throws -> LatencyHistogram {
        let executor = LocalExecutor(settings: .init(root: root, graceSeconds: 1))
        var histogram = LatencyHistogram()
        for _ in 0..<count {
            let request = ExecutionRequest(
                job: .generate(), tenant: TenantID(unchecked: "tnt-bench"), project: ProjectID(unchecked: "prj-bench"),
                command: "/bin/sh", arguments: ["-c", "true"], maxRuntimeSeconds: 60)
            let before = nanoseconds()
            let mark = Mark()
            _ = await executor.run(request) { _ in mark.set(nanoseconds()) }
            histogram.record(UInt64(max(0, mark.value - before)))
        }
        return histogram
    }

    /// Logs in as the bootstrap administrator, creates a tenant, a project and a service account with a
    /// token, and gives the local node to the tenant; returns a client acting as the service account.
    static func serviceAccount(_ info: CaduceusServer.Started) async throws -> (APIClient, ProjectID) {
        let bench = try await BenchTenant.make(
            url: info.url, caCertificate: info.caCertificatePath, bootstrapFile: info.bootstrapFile)
        let nodes = try await bench.admin.get("/v1/nodes", as: ListResponse<NodeView>.self)
        guard let node = nodes.items.first else {
            await bench.admin.shutdown()
            throw CLIError("the server registered no local node")
        }
        try await bench.give(node.id)
        await bench.admin.shutdown()
        return (bench.client, bench.project)
    }

    static func nanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    static func milliseconds(_ nanoseconds: UInt64) -> String { String(format: "%.2f", Double(nanoseconds) / 1e6) }
}

/// A time set from another task.
private final class Mark: @unchecked Sendable {
    // Safe: set once by the executor's start callback before `run` returns, read after.
    private let lock = NSLock()
    private var stored: Int64 = 0

    func set(_ value: Int64) { lock.withLock { stored = value } }
    var value: Int64 { lock.withLock { stored } }
}
