import AsyncHTTPClient
import CaduceusCore
import ControlPlane
import Foundation
import Identity
import NIOHTTP1
import Scheduling
import SlurmExecutor

/// The Slurm half of `bench scale`: jobs submitted through Caduceus into Slurm, beside plain `sbatch`.
extension BenchScale {
    /// Submits `count` one-GPU jobs through Caduceus (a service account, as fast as the API takes them) and
    /// times their acceptance, their arrival in Slurm (a job waiting for GPUs waits there, held) and their
    /// completion on the node's 8 GPUs; then `count` plain `sbatch --wrap true`.
    func slurm(
        socket: String, node: String, partition: String, count: Int, scratch: String
    ) async throws
        -> [(String, String)]
    {
        guard let sbatch = BenchAPI.which("sbatch") else { throw CLIError("sbatch is not installed") }
        let server = try ServeProcess(
            data: scratch + "/data", database: nil,
            environment: [
                "CADUCEUS_SLURM_URL": "unix:\(socket)", "CADUCEUS_SLURM_PARTITIONS": "bench=\(partition)",
                "CADUCEUS_SLURM_SPOOL": scratch + "/spool",
            ])
        defer { server.stop() }
        let (client, project) = try await Self.slurmTenant(server, node: node)
        let request = SubmitJobRequest(
            project: project, jobClass: .batch, gpusPerNode: 1, command: "/bin/true", maxRuntimeSeconds: 600)
        let started = Date()
        let submitted = try await withThrowingTaskGroup(of: [JobID].self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var ids: [JobID] = []
                    for _ in stride(from: worker, to: count, by: 8) {
                        ids.append(try await client.post("/v1/jobs", request, as: JobView.self).id)
                    }
                    return ids
                }
            }
            return try await group.reduce(into: Set<String>()) { all, ids in
                all.formUnion(ids.map { "caduceus-\($0.rawValue)-0" })
            }
        }
        let accepted = Date().timeIntervalSince(started)
        let arrived = try await Self.waitForSlurm(names: submitted, since: started)
        let intoSlurm = Date().timeIntervalSince(started)
        guard arrived >= count else {
            await client.shutdown()
            throw CLIError("only \(arrived) of \(count) jobs reached Slurm in 600 s")
        }
        let completed = try await Self.waitForSlurm(names: submitted, since: started, state: "COMPLETED")
        let ran = Date().timeIntervalSince(started)
        await client.shutdown()
        guard completed >= count else { throw CLIError("only \(completed) of \(count) jobs completed in 600 s") }

        // A shell loop, timed by the shell itself: Foundation's `waitUntilExit` wakes at 50 ms steps, which
        // would time the waiting rather than sbatch.
        let loop = """
            start=$(date +%s%N); i=0
            while [ $i -lt \(count) ]; do
                '\(sbatch)' --parsable --partition '\(partition)' --output /dev/null --wrap true >/dev/null || exit 1
                i=$((i + 1))
            done
            echo $(( $(date +%s%N) - start ))
            """
        let elapsed = try Self.run("/bin/sh", ["-c", loop]).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let nanoseconds = Double(elapsed), nanoseconds > 0 else { throw CLIError("sbatch failed: \(elapsed)") }
        let sbatchRate = Double(count) / (nanoseconds / 1e9)
        return [
            ("slurmJobs", "\(count)"),
            ("caduceusAcceptedPerSecond", BenchAPI.number(Double(count) / accepted)),
            ("caduceusIntoSlurmPerSecond", BenchAPI.number(Double(count) / intoSlurm)),
            ("referenceSbatchPerSecond", BenchAPI.number(sbatchRate)),
            ("caduceusIntoSlurmOverSbatch", BenchAPI.number(Double(count) / intoSlurm / sbatchRate)),
            ("caduceusCompletedPerSecond", BenchAPI.number(Double(count) / ran)),
        ]
    }

    /// Polls Slurm (`squeue`, which is cheaper for slurmctld than slurmrestd's full job list, so that the
    /// polling slows the submissions it times as little as it can) until every job named in `names` is in
    /// Slurm (in `state`, when given), or 600 s pass; returns how many are.
    static func waitForSlurm(names: Set<String>, since started: Date, state: String? = nil) async throws -> Int {
        guard let squeue = BenchAPI.which("squeue") else { throw CLIError("squeue is not installed") }
        var arrived = 0
        while arrived < names.count && Date().timeIntervalSince(started) < 600 {
            let listed = try run(squeue, ["--noheader", "--states", "all", "--format", "%j %T"])
            arrived =
                listed.split(separator: "\n").filter { line in
                    let words = line.split(separator: " ")
                    return words.count == 2 && names.contains(String(words[0]))
                        && (state.map { words[1] == $0 } ?? true)
                }.count
            try await Task.sleep(for: .milliseconds(50))
        }
        return arrived
    }

    /// Runs a program to its end; returns its standard output. It waits for the exit by polling every
    /// millisecond rather than with `waitUntilExit`, whose 50 ms steps would add to what is timed.
    static func run(_ program: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        while process.isRunning { usleep(1000) }
        guard process.terminationStatus == 0 else {
            throw CLIError("\(program) exited with status \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A tenant `bench` with a project, a service account and the Slurm node (8 H200s) as its node.
    static func slurmTenant(_ server: ServeProcess, node name: String) async throws -> (APIClient, ProjectID) {
        let bench = try await BenchTenant.make(
            url: server.url, caCertificate: server.data + "/tls/ca.pem",
            bootstrapFile: server.data + "/bootstrap-admin.json")
        let admin = bench.admin
        let region = try await admin.post(
            "/v1/regions", CreateRegionRequest(name: "bench", residency: Residency(rawValue: "US")!),
            as: RegionView.self)
        let site = try await admin.post(
            "/v1/sites", CreateSiteRequest(name: "bench", region: region.id), as: SiteView.self)
        let fabric = try await admin.post(
            "/v1/fabrics", CreateFabricRequest(name: "bench", site: site.id), as: FabricView.self)
        let gpus = (0..<8).map { GPUDevice(index: $0, model: "H200", memoryMiB: 143_771, uuid: "GPU-bench-\($0)") }
        let node = try await admin.post(
            "/v1/nodes", CreateNodeRequest(name: name, fabric: fabric.id, gpus: gpus), as: NodeView.self)
        try await bench.give(node.id)
        await admin.shutdown()
        return (bench.client, bench.project)
    }
}

/// What the job benchmarks run as: a tenant `bench`, its project, and a service account with a token.
struct BenchTenant {
    /// The bootstrap administrator's client (the caller shuts it down).
    let admin: APIClient
    let tenant: TenantID
    let project: ProjectID
    /// The service account's client.
    let client: APIClient

    static func make(url: String, caCertificate: String, bootstrapFile: String?) async throws -> BenchTenant {
        let token = try await BenchAPI.adminSession(
            url: url, caCertificate: caCertificate, bootstrapFile: bootstrapFile)
        let admin = try APIClient(server: url, token: token, caCertificate: caCertificate)
        let tenant = try await admin.post("/v1/tenants", CreateTenantRequest(name: "bench"), as: TenantView.self)
        let project = try await admin.post(
            "/v1/projects", CreateProjectRequest(tenant: tenant.id, name: "bench"), as: ProjectView.self)
        let service = try await admin.post(
            "/v1/users", CreateUserRequest(name: "bench-service", kind: .service), as: CreateUserResponse.self)
        let scope = Scope.project(tenant.id, project.id)
        _ = try await admin.send(
            .POST, "/v1/role-bindings", body: GrantRoleRequest(user: service.user.id, role: .service, scope: scope))
        let issued = try await admin.post(
            "/v1/tokens", CreateTokenRequest(user: service.user.id, name: "bench", scope: scope),
            as: CreateTokenResponse.self)
        return BenchTenant(
            admin: admin, tenant: tenant.id, project: project.id,
            client: try APIClient(server: url, token: issued.token, caCertificate: caCertificate))
    }

    /// Gives `node` to the tenant and puts it into service.
    func give(_ node: NodeID) async throws {
        _ = try await admin.send(.POST, "/v1/nodes/\(node)/assign", body: AssignNodeRequest(tenant: tenant))
        _ = try await admin.send(.POST, "/v1/nodes/\(node)/activate", body: Optional<String>.none)
    }
}
