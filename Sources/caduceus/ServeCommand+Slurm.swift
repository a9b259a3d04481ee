import AsyncHTTPClient
import CaduceusCore
import ControlPlane
import ControlPlaneHTTP
import Logging
import Scheduling
import SlurmExecutor
import Synchronization

/// The Slurm runner `serve` adds when `slurmURL` is set: jobs on nodes Slurm knows run through slurmrestd.
final class SlurmSetup: Sendable {
    let runner: SlurmRunner
    private let http: HTTPClient
    private let plane = PlaneReference()

    /// Nil when no Slurm is configured; throws when the Slurm settings are unusable.
    init?(_ configuration: ServerConfiguration, logger: Logger) throws {
        guard !configuration.slurmURL.isEmpty else { return nil }
        let endpoint = try SlurmEndpoint(
            configuration.slurmURL, userName: configuration.slurmUser.isEmpty ? nil : configuration.slurmUser,
            tokenFile: configuration.slurmTokenFile.isEmpty ? nil : configuration.slurmTokenFile,
            caCertificateFile: configuration.slurmCACertificate.isEmpty ? nil : configuration.slurmCACertificate)
        http = try SlurmClient.makeHTTPClient(for: endpoint)
        let plane = self.plane
        runner = SlurmRunner(
            settings: .init(
                endpoint: endpoint, partitions: try configuration.slurmPartitionMap(),
                spool: configuration.slurmSpoolDirectory, gpuProgram: configuration.slurmGPUProgram,
                gpuOptions: configuration.slurmGPUOptions.split(separator: " ").map(String.init),
                queueAhead: configuration.slurmQueueAhead),
            client: SlurmClient(endpoint: endpoint, http: http), logger: logger,
            fleet: {
                guard let plane = plane.value.withLock({ $0 }) else { return [] }
                return try await plane.nodeDirectory().map { entry in
                    SlurmRunner.FleetNode(
                        id: entry.node.id, name: entry.node.name, tenant: entry.node.lifecycle.tenant,
                        tenantName: entry.tenantName, gpus: entry.node.gpus)
                }
            })
    }

    /// The runner, once the control plane it reads nodes from is up.
    func runner(for plane: ControlPlane) -> SlurmRunner {
        self.plane.value.withLock { $0 = plane }
        return runner
    }

    /// What `cluster status` shows of Slurm.
    func status() -> ClusterStatus.Slurm {
        let health = runner.health
        return ClusterStatus.Slurm(
            endpoint: "\(runner.settings.endpoint)", reachable: health.reachable, release: health.release,
            nodes: health.nodes, refusedTenants: health.refusedTenants, problem: health.problem)
    }

    /// What `/readyz` says of Slurm.
    func readiness() -> [String: String?] {
        let health = runner.health
        return ["slurm": health.reachable ? nil : "unavailable"]
    }

    func shutdown() async {
        try? await http.shutdown()
    }
}

/// The control plane, once it exists (the runner is made before it).
private final class PlaneReference: Sendable {
    let value = Mutex<ControlPlane?>(nil)
}
