import CaduceusCore
import ControlPlane
import Foundation
import Scheduling

/// What a run's Slurm job is made of: its partition, GRES, folders, placement file and submission.
extension SlurmRunner {
    func partition(for tenantName: String) -> String { settings.partitions[tenantName] ?? tenantName }

    /// The partition of the tenant holding `node`.
    func partition(of node: FleetNode) throws -> String {
        guard let tenantName = node.tenantName else {
            throw CaduceusError(code: "slurm.partition", message: "node \(node.name) is held by no tenant")
        }
        return partition(for: tenantName)
    }

    /// `gpu:<model>:N` for the GPUs a run holds.
    static func gres(_ gpus: [GPUDevice]) -> String? {
        gpus.first.map { "gpu:\($0.model.lowercased()):\(gpus.count)" }
    }

    /// The file a run's script reads what depends on its placement from (the GPUs Caduceus chose): written
    /// when it is placed, so that a job handed to Slurm before then learns it when it starts.
    func placementPath(_ key: LaunchKey) -> String {
        settings.spool + "/placements/\(key.job.rawValue)-\(key.attempt)"
    }

    /// The job's scratch (its working directory) and log folder.
    func makeFolders(_ key: LaunchKey) throws {
        for folder in ["scratch", "logs"] {
            try FileManager.default.createDirectory(
                atPath: settings.spool + "/\(folder)/\(key.job.rawValue)", withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        }
    }

    /// Writes the placement file and makes the job's folders, before its Slurm job may start.
    func writePlacement(_ launch: JobLaunch) throws {
        try makeFolders(launch.key)
        let uuids = Self.shellQuoted(launch.gpus.map(\.uuid).joined(separator: ","))
        try Data("export CADUCEUS_GPU_UUIDS=\(uuids)\n".utf8).write(
            to: URL(fileURLWithPath: placementPath(launch.key)), options: .atomic)
    }

    /// A run's Slurm job in `partition`: placed on `node` with `gpus`, or, without them, held until released.
    func makeSubmission(
        _ run: WaitingRun, partition: String, on node: FleetNode? = nil, gpus: [GPUDevice] = []
    ) throws -> SlurmSubmission {
        let scratch = settings.spool + "/scratch/\(run.key.job.rawValue)"
        let logs = settings.spool + "/logs/\(run.key.job.rawValue)"
        // A held job needs its folders only once it is released (`writePlacement` makes them then).
        if node != nil { try makeFolders(run.key) }
        var environment = run.environment
        environment["PATH"] = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        environment["CADUCEUS_JOB_ID"] = run.key.job.rawValue
        environment["CADUCEUS_TENANT_ID"] = run.tenant.rawValue
        environment["CADUCEUS_PROJECT_ID"] = run.project.rawValue
        let command = ([run.command] + run.arguments).map(Self.shellQuoted).joined(separator: " ")
        let placement = Self.shellQuoted(placementPath(run.key))
        let held = node == nil
        return SlurmSubmission(
            script: "#!/bin/sh\n# Caduceus job \(run.key)\nif [ -r \(placement) ]; then . \(placement); fi\n"
                + "exec \(command)\n",
            job: .init(
                name: Self.jobNamePrefix(run.key.job) + String(run.key.attempt), partition: partition,
                nodelist: node?.name,
                gres: Self.gres(gpus), hold: held ? true : nil,
                comment: held ? "waiting in Caduceus's queue: released when Caduceus places it" : nil,
                environment: environment, current_working_directory: scratch, standard_output: logs + "/stdout.log",
                standard_error: logs + "/stderr.log",
                time_limit: run.maxRuntimeSeconds > 0 ? (run.maxRuntimeSeconds + 59) / 60 : nil,
                requeue: false))
    }

    static func shellQuoted(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
