import ArgumentParser
import ControlPlane
import NIOHTTP1

/// `caduceus cluster status`: replicas, the leader, the database and Slurm, from the server.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "The control plane's own machinery.", subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the replicas, which one leads, the database's and Slurm's health.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await callAPI(client, .GET, "/v1/cluster", as: ClusterStatus.self) { status in
                (["component", "name", "state", "details"], Self.rows(status))
            }
        }

        static func rows(_ status: ClusterStatus) -> [[String]] {
            var rows = status.replicas.map { replica in
                [
                    "replica", replica.id, replica.leader ? "leader" : "follower",
                    "\(replica.host) \(replica.url) v\(replica.version) seen \(replica.lastSeenAt)"
                        + (replica.answering ? " (answering)" : ""),
                ]
            }
            let database = status.database
            rows.append([
                "database", database.engine, database.reachable ? "up" : "down",
                database.problem
                    ?? "\(database.version ?? "") \(database.encrypted == true ? "TLS" : "not encrypted")",
            ])
            if let slurm = status.slurm {
                rows.append([
                    "slurm", slurm.endpoint, slurm.reachable ? "up" : "down",
                    slurm.problem ?? "Slurm \(slurm.release ?? "?"), nodes: \(slurm.nodes.joined(separator: ","))",
                ])
                for (tenant, why) in slurm.refusedTenants.sorted(by: { $0.key < $1.key }) {
                    rows.append(["slurm", tenant, "refused", why])
                }
            }
            return rows
        }
    }
}
