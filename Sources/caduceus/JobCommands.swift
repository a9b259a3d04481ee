import ArgumentParser
import CaduceusCore
import ControlPlane
import NIOHTTP1
import Scheduling

struct QuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota", abstract: "Project quotas: guaranteed and maximum GPUs.",
        subcommands: [Set.self, Show.self, List.self])

    static let columns = ["project", "tenant", "guaranteed", "maximum", "in use"]
    static func row(_ quota: QuotaView) -> [String] {
        [
            quota.project.rawValue, quota.tenant.rawValue, "\(quota.guaranteedGPUs)",
            quota.maximumGPUs.map(String.init) ?? "unlimited", "\(quota.inUseGPUs)",
        ]
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a project's quota (tenant admins).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The project's ID.") var project: String
        @Option(help: "GPUs the project can always get.") var guaranteed: Int
        @Option(help: "The most GPUs it may hold, borrowing idle ones.") var maximum: Int

        func run() async throws {
            try await callAPI(
                client, .PUT, "/v1/quotas/\(try typedID(ProjectID.self, project))",
                body: SetQuotaRequest(guaranteedGPUs: guaranteed, maximumGPUs: maximum), as: QuotaView.self
            ) { (QuotaCommand.columns, [QuotaCommand.row($0)]) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a project's quota and what it uses now.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The project's ID.") var project: String

        func run() async throws {
            try await callAPI(
                client, .GET, "/v1/quotas/\(try typedID(ProjectID.self, project))", as: QuotaView.self
            ) { (QuotaCommand.columns, [QuotaCommand.row($0)]) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the quotas set in a tenant.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions
        @Option(help: "The tenant's ID.") var tenant: String?

        func run() async throws {
            let path = adding(
                "tenant", try tenant.map { try typedID(TenantID.self, $0).rawValue },
                to: "/v1/quotas" + query(after: page.after, limit: page.limit))
            try await callAPI(client, .GET, path, as: ListResponse<QuotaView>.self) {
                (QuotaCommand.columns, $0.items.map(QuotaCommand.row))
            }
        }
    }
}

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Jobs: submit, list, show, cancel, and ask why one waits.",
        subcommands: [Submit.self, List.self, Show.self, Cancel.self, Why.self, Logs.self])

    static let columns = ["id", "project", "class", "gpus", "state", "submitted", "reason"]
    static func row(_ job: JobView) -> [String] {
        [
            job.id.rawValue, job.project.rawValue, job.jobClass.rawValue, "\(job.nodeCount)×\(job.gpusPerNode)",
            job.state.rawValue, job.submittedAt.description, job.reason ?? "",
        ]
    }

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a job; one that could never run is refused with the reason.",
            usage: "caduceus job submit --project <id> --gpus-per-node <n> [<options>] -- <command> [<argument> ...]")
        @OptionGroup var client: ClientOptions
        @Option(help: "The project's ID.") var project: String
        @Option(name: .customLong("class"), help: "inference, interactive, training or batch.")
        var jobClass: String = "training"
        @Option(help: "GPUs on each node (1–64).") var gpusPerNode: Int
        @Option(help: "Nodes at once; more than one makes a gang.") var nodes: Int = 1
        @Option(name: .customLong("model"), help: "An allowed GPU model (repeatable; none: any).")
        var models: [String] = []
        @Option(help: "The residency its data requires, e.g. US.") var residency: String?
        @Option(help: "The longest it may run, in seconds.") var maxRuntime: Int?
        @Option(help: "How long it runs before it may be preempted, in seconds.") var minRuntime: Int?
        @Flag(inversion: .prefixedNo, help: "Whether it may be preempted (default: training and batch may).")
        var preemptible: Bool?
        @Option(name: .customLong("env"), help: "An environment variable, NAME=VALUE (repeatable).")
        var environment: [String] = []
        @Option(
            name: .customLong("dataset"),
            help: "A dataset it reads, placed in its scratch under datasets/<name>/ (repeatable).")
        var datasets: [String] = []
        @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String]

        func run() async throws {
            guard let jobClass = JobClass(rawValue: jobClass) else {
                throw CLIError("--class must be inference, interactive, training or batch")
            }
            guard let program = command.first else { throw CLIError("give the command to run after --") }
            var variables: [String: String] = [:]
            for pair in environment {
                guard let equals = pair.firstIndex(of: "=") else { throw CLIError("--env takes NAME=VALUE") }
                variables[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            let required = try residency.map { text in
                guard let value = Residency(rawValue: text) else { throw CLIError("'\(text)' is not a residency") }
                return value
            }
            let request = SubmitJobRequest(
                project: try typedID(ProjectID.self, project), jobClass: jobClass, gpusPerNode: gpusPerNode,
                nodeCount: nodes, allowedModels: models.isEmpty ? nil : models, residency: required, command: program,
                arguments: Array(command.dropFirst()), environment: variables.isEmpty ? nil : variables,
                maxRuntimeSeconds: maxRuntime, minRuntimeSeconds: minRuntime, preemptible: preemptible,
                datasets: datasets.isEmpty ? nil : try datasets.map { try typedID(DatasetID.self, $0) })
            try await callAPI(client, .POST, "/v1/jobs", body: request, as: JobView.self) {
                (JobCommand.columns, [JobCommand.row($0)])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs of a project, a tenant, or all.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions
        @Option(help: "Only this project's jobs.") var project: String?
        @Option(help: "Only this tenant's jobs.") var tenant: String?
        @Option(help: "Only jobs in this state (pending, placed, running, …).") var state: String?

        func run() async throws {
            var path = "/v1/jobs" + query(after: page.after, limit: page.limit)
            path = adding("project", try project.map { try typedID(ProjectID.self, $0).rawValue }, to: path)
            path = adding("tenant", try tenant.map { try typedID(TenantID.self, $0).rawValue }, to: path)
            if let state, JobState(rawValue: state) == nil { throw CLIError("'\(state)' is not a job state") }
            path = adding("state", state, to: path)
            try await callAPI(client, .GET, path, as: ListResponse<JobView>.self) {
                (JobCommand.columns, $0.items.map(JobCommand.row))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a job.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The job's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .GET, "/v1/jobs/\(try typedID(JobID.self, id))", as: JobView.self) {
                (JobCommand.columns, [JobCommand.row($0)])
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a job, releasing its GPUs.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The job's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .POST, "/v1/jobs/\(try typedID(JobID.self, id))/cancel", as: JobView.self) {
                (JobCommand.columns, [JobCommand.row($0)])
            }
        }
    }

    struct Why: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Say why a job waits, in plain words.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The job's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .GET, "/v1/jobs/\(try typedID(JobID.self, id))/why", as: JobWhyView.self) {
                (["job", "state", "why"], [[$0.job.rawValue, $0.state.rawValue, $0.reason]])
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a job's output; with --follow, keep printing until the job ends.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The job's ID.") var id: String
        @Flag(help: "Standard error instead of standard output.") var stderr = false
        @Flag(help: "Keep printing new output until the job has ended.") var follow = false

        func run() async throws {
            let job = try typedID(JobID.self, id)
            let api = try client.client()
            defer { Task { await api.shutdown() } }
            var offset = 0
            while true {
                let path = "/v1/jobs/\(job)/logs?stream=\(stderr ? "stderr" : "stdout")&offset=\(offset)&limit=262144"
                let piece = try await api.get(path, as: JobLogView.self)
                if !piece.text.isEmpty { StandardStreams.write(Array(piece.text.utf8)) }
                offset = piece.nextOffset
                if piece.complete || (!follow && offset >= piece.size) { return }
                if offset >= piece.size { try await Task.sleep(for: .milliseconds(500)) }
            }
        }
    }
}
