import ArgumentParser
import CaduceusCore
import ControlPlane
import NIOHTTP1
import Scheduling

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "GPU nodes: register, assign to a tenant, and move through their lifecycle.",
        subcommands: [
            Create.self, List.self, Show.self, Activate.self, Cordon.self, Uncordon.self, Drain.self, Assign.self,
            Retire.self, SanitizationRecords.self, JoinToken.self,
        ])

    static let columns = ["name", "id", "state", "tenant", "gpus", "jobs", "next tenant", "last scrubs", "agent"]
    static func row(_ node: NodeView) -> [String] {
        let passed = node.lastScrubs.filter(\.passed).count
        return [
            node.name, node.id.rawValue, node.state.rawValue, node.tenant?.rawValue ?? "",
            "\(node.gpuCount)× \(node.gpuModel)", "\(node.jobs.count)", node.nextTenant?.rawValue ?? "",
            node.lastScrubs.isEmpty ? "" : "\(passed) of \(node.lastScrubs.count) passed",
            node.unreachableSince.map { "unreachable since \($0)" }
                ?? node.agent.map { $0.connected ? "connected" : "not connected" } ?? "",
        ]
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a node with its GPUs (it takes no work until assigned and activated).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The fabric's ID.") var fabric: String
        @Option(help: "The GPU model, e.g. H200.") var model: String
        @Option(name: .customLong("memory-mib"), help: "Memory per GPU in MiB.") var memoryMiB: Int
        @Option(name: .customLong("uuid"), help: "A GPU's UUID, once per GPU in index order.") var uuids: [String]
        @Argument(help: "The node's host name.") var name: String

        func run() async throws {
            let gpus = uuids.enumerated().map { GPUDevice(index: $0, model: model, memoryMiB: memoryMiB, uuid: $1) }
            let request = CreateNodeRequest(name: name, fabric: try typedID(FabricID.self, fabric), gpus: gpus)
            try await callAPI(client, .POST, "/v1/nodes", body: request, as: NodeView.self) {
                (NodeCommand.columns, [NodeCommand.row($0)])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List nodes.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions
        @Option(help: "Only this tenant's nodes (and those moving to it).") var tenant: String?

        func run() async throws {
            let path = adding(
                "tenant", try tenant.map { try typedID(TenantID.self, $0).rawValue },
                to: "/v1/nodes" + query(after: page.after, limit: page.limit))
            try await callAPI(client, .GET, path, as: ListResponse<NodeView>.self) {
                (NodeCommand.columns, $0.items.map(NodeCommand.row))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a node and the jobs on it.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The node's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .GET, "/v1/nodes/\(try typedID(NodeID.self, id))", as: NodeView.self) {
                (NodeCommand.columns, [NodeCommand.row($0)])
            }
        }
    }

    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a registered node into service.")
        @OptionGroup var action: NodeAction
        func run() async throws { try await action.run("activate") }
    }

    struct Cordon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop new work on a node; what runs keeps running.")
        @OptionGroup var action: NodeAction
        func run() async throws { try await action.run("cordon") }
    }

    struct Uncordon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let new work onto a cordoned node again.")
        @OptionGroup var action: NodeAction
        func run() async throws { try await action.run("uncordon") }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move the work off a node (training is requeued); a node that held work then awaits sanitising.")
        @OptionGroup var action: NodeAction
        func run() async throws { try await action.run("drain") }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take an empty node out of service for good.")
        @OptionGroup var action: NodeAction
        func run() async throws { try await action.run("retire") }
    }

    struct Assign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a node to a tenant; one that held another tenant's work is drained and sanitised first.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The tenant's ID.") var tenant: String
        @Argument(help: "The node's ID.") var id: String

        func run() async throws {
            try await callAPI(
                client, .POST, "/v1/nodes/\(try typedID(NodeID.self, id))/assign",
                body: AssignNodeRequest(tenant: try typedID(TenantID.self, tenant)), as: NodeView.self
            ) { (NodeCommand.columns, [NodeCommand.row($0)]) }
        }
    }
}

/// The arguments of a node lifecycle action: the client options and the node.
struct NodeAction: ParsableArguments {
    @OptionGroup var client: ClientOptions
    @Argument(help: "The node's ID.") var id: String

    func run(_ verb: String) async throws {
        try await callAPI(client, .POST, "/v1/nodes/\(try typedID(NodeID.self, id))/\(verb)", as: NodeView.self) {
            (NodeCommand.columns, [NodeCommand.row($0)])
        }
    }
}

extension NodeCommand {
    struct SanitizationRecords: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sanitization-records",
            abstract: "List a node's sanitisations (GPUs scrubbed, scratch erased).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The node's ID.") var id: String
        @Option(help: "Start after this record ID.") var after: String?
        @Option(help: "At most this many.") var limit: Int?

        func run() async throws {
            let path =
                "/v1/nodes/\(try typedID(NodeID.self, id))/sanitization-records" + query(after: after, limit: limit)
            try await callAPI(client, .GET, path, as: ListResponse<SanitizationEntry>.self) { page in
                (
                    ["record", "completed", "previous tenant", "GPUs scrubbed", "scratch files erased"],
                    page.items.map {
                        [
                            $0.record.id.rawValue, $0.record.completedAt.description,
                            $0.record.previousTenant?.rawValue ?? "-",
                            "\($0.gpus.filter(\.passed).count) of \($0.gpus.count)", "\($0.scratchFilesErased)",
                        ]
                    }
                )
            }
        }
    }
}

extension NodeCommand {
    struct JoinToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "join-token",
            abstract: "Create a one-time token that enrols the node's agent (caduceus agent --join-token).")
        @OptionGroup var client: ClientOptions
        @Option(help: "Minutes the token stays usable (1 to 10080; default 60).") var expiresInMinutes: Int?
        @Argument(help: "The node's ID.") var id: String

        func run() async throws {
            try await callAPI(
                client, .POST, "/v1/nodes/\(try typedID(NodeID.self, id))/join-token",
                body: CreateJoinTokenRequest(expiresInMinutes: expiresInMinutes), as: JoinTokenView.self
            ) { view in
                (
                    ["node", "join token (shown once)", "expires"],
                    [[view.node.rawValue, view.joinToken, "\(view.expiresAt)"]]
                )
            }
        }
    }
}
