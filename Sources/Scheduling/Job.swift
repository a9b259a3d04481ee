import CaduceusCore

/// The class of a job; a higher class is served first and may preempt lower ones.
public enum JobClass: String, Codable, Sendable, CaseIterable, Comparable {
    /// Clinical inference: low latency, reserved; never waits behind training.
    case inference
    /// A person waiting at a notebook or shell.
    case interactive
    /// Model training: long, often a gang, usually preemptible and requeued when preempted.
    case training
    /// Background work that runs when nothing else needs the GPUs.
    case batch

    /// Larger is more important: inference 3, interactive 2, training 1, batch 0.
    public var priority: Int {
        switch self {
        case .inference: 3
        case .interactive: 2
        case .training: 1
        case .batch: 0
        }
    }

    /// Orders by priority, lowest first.
    public static func < (lhs: JobClass, rhs: JobClass) -> Bool { lhs.priority < rhs.priority }
}

/// Where a job is in its life.
public enum JobState: String, Codable, Sendable, CaseIterable {
    case pending, placed, running, preempting, succeeded, failed, cancelled, preempted

    /// Whether the job has ended for good.
    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .preempted: true
        case .pending, .placed, .running, .preempting: false
        }
    }

    /// Whether the job holds GPUs in this state.
    public var holdsGPUs: Bool {
        switch self {
        case .placed, .running, .preempting: true
        case .pending, .succeeded, .failed, .cancelled, .preempted: false
        }
    }

    /// Whether a job may move from this state to `next`.
    public func canMove(to next: JobState) -> Bool {
        switch (self, next) {
        case (.pending, .placed), (.pending, .cancelled): true
        case (.placed, .running), (.placed, .preempting), (.placed, .pending), (.placed, .cancelled),
            (.placed, .failed):
            true
        case (.running, .succeeded), (.running, .failed), (.running, .preempting), (.running, .cancelled): true
        case (.placed, .preempted), (.running, .preempted): true
        case (.preempting, .pending), (.preempting, .preempted), (.preempting, .cancelled),
            (.preempting, .succeeded), (.preempting, .failed):
            true
        default: false
        }
    }
}

/// What a job asks for: where it may run, on how many GPUs, what it runs and for how long.
public struct JobSpec: Hashable, Sendable, Codable {
    /// The tenant whose nodes the job runs on.
    public var tenant: TenantID
    /// The project it is charged to.
    public var project: ProjectID
    /// Its class.
    public var jobClass: JobClass
    /// GPUs it needs on each node.
    public var gpusPerNode: Int
    /// Nodes it needs at the same moment; more than one makes it a gang.
    public var nodeCount: Int
    /// GPU models it may run on; empty means any.
    public var allowedModels: [String]
    /// The residency its data requires, if any.
    public var residency: Residency?
    /// The program to run.
    public var command: String
    /// Its arguments.
    public var arguments: [String]
    /// Its environment.
    public var environment: [String: String]
    /// The longest it may run, in seconds.
    public var maxRuntimeSeconds: Int
    /// How long it runs before it may be preempted, in seconds.
    public var minRuntimeSeconds: Int
    /// Whether it may be preempted at all.
    public var preemptible: Bool
    /// Datasets it reads: their objects are in its scratch (`datasets/<name>/`) before it starts.
    public var datasets: [DatasetID]?

    /// Creates a job spec.
    public init(
        tenant: TenantID, project: ProjectID, jobClass: JobClass, gpusPerNode: Int, nodeCount: Int = 1,
        allowedModels: [String] = [], residency: Residency? = nil, command: String, arguments: [String] = [],
        environment: [String: String] = [:], maxRuntimeSeconds: Int = 86_400, minRuntimeSeconds: Int = 0,
        preemptible: Bool
    ) {
        self.tenant = tenant
        self.project = project
        self.jobClass = jobClass
        self.gpusPerNode = gpusPerNode
        self.nodeCount = nodeCount
        self.allowedModels = allowedModels
        self.residency = residency
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.maxRuntimeSeconds = maxRuntimeSeconds
        self.minRuntimeSeconds = minRuntimeSeconds
        self.preemptible = preemptible
    }

    /// GPUs in all: per node times nodes.
    public var totalGPUs: Int { gpusPerNode * nodeCount }

    /// The longest a job may be allowed to run: 30 days.
    public static let runtimeLimitSeconds = 30 * 86_400

    /// Checks every field; the error names the first field that is wrong.
    public func validate() throws(CaduceusError) {
        func invalid(_ field: String, _ message: String) -> CaduceusError {
            CaduceusError(code: "job.invalid", message: "\(field): \(message)")
        }
        guard (1...64).contains(gpusPerNode) else { throw invalid("gpusPerNode", "must be 1 to 64") }
        guard (1...1024).contains(nodeCount) else { throw invalid("nodeCount", "must be 1 to 1024") }
        guard allowedModels.count <= 32 else { throw invalid("allowedModels", "at most 32 models") }
        for model in allowedModels where !GPUModel.isValidName(model) {
            throw invalid("allowedModels", "'\(model.prefix(40))' is not a GPU model name")
        }
        guard !command.isEmpty, command.utf8.count <= 4096 else {
            throw invalid("command", "must be 1 to 4096 bytes")
        }
        guard arguments.count <= 1024, arguments.allSatisfy({ $0.utf8.count <= 65_536 }) else {
            throw invalid("arguments", "at most 1024 arguments of up to 64 KiB each")
        }
        guard environment.count <= 256 else { throw invalid("environment", "at most 256 variables") }
        for (name, value) in environment {
            guard Self.isValidVariableName(name) else {
                throw invalid("environment", "'\(name.prefix(40))' is not a variable name")
            }
            guard value.utf8.count <= 65_536 else { throw invalid("environment", "'\(name)' is over 64 KiB") }
        }
        guard (60...Self.runtimeLimitSeconds).contains(maxRuntimeSeconds) else {
            throw invalid("maxRuntimeSeconds", "must be 60 to \(Self.runtimeLimitSeconds) (30 days)")
        }
        guard (0...maxRuntimeSeconds).contains(minRuntimeSeconds) else {
            throw invalid("minRuntimeSeconds", "must be 0 to maxRuntimeSeconds")
        }
    }

    private static func isValidVariableName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...256).contains(bytes.count), !(48...57).contains(bytes[0]) else { return false }
        return bytes.allSatisfy {
            (65...90).contains($0) || (97...122).contains($0) || (48...57).contains($0) || $0 == 95
        }
    }
}

/// GPU model names, such as `H200`, `A100-SXM4-80GB` or `V100M32`.
public enum GPUModel {
    /// 1–64 ASCII letters, digits, dashes, dots or underscores.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = name.utf8
        return (1...64).contains(bytes.count)
            && bytes.allSatisfy {
                (65...90).contains($0) || (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 46
                    || $0 == 95
            }
    }
}

/// One GPU of a node.
public struct GPUDevice: Hashable, Sendable, Codable {
    /// Its index on the node (as CUDA and NVML number it).
    public var index: Int
    /// Its model, e.g. `H200`.
    public var model: String
    /// Its memory in MiB.
    public var memoryMiB: Int
    /// Its UUID, e.g. `GPU-5f0c…`.
    public var uuid: String

    /// Creates a GPU description.
    public init(index: Int, model: String, memoryMiB: Int, uuid: String) {
        self.index = index
        self.model = model
        self.memoryMiB = memoryMiB
        self.uuid = uuid
    }
}

/// A project's share of its tenant's GPUs.
public struct ProjectQuota: Hashable, Sendable, Codable {
    /// GPUs the project can always get (reclaimed from borrowers when it needs them).
    public var guaranteedGPUs: Int
    /// The most GPUs the project may hold, borrowing idle capacity beyond its guarantee.
    public var maximumGPUs: Int

    /// Creates a quota.
    public init(guaranteedGPUs: Int, maximumGPUs: Int) {
        self.guaranteedGPUs = guaranteedGPUs
        self.maximumGPUs = maximumGPUs
    }

    /// No guarantee and no limit: what a project without a quota gets.
    public static let unlimited = ProjectQuota(guaranteedGPUs: 0, maximumGPUs: Int.max)

    /// Checks that 0 ≤ guaranteed ≤ maximum ≤ 1,000,000.
    public func validate() throws(CaduceusError) {
        guard guaranteedGPUs >= 0, maximumGPUs >= guaranteedGPUs, maximumGPUs <= 1_000_000 else {
            throw CaduceusError(
                code: "quota.invalid", message: "a quota needs 0 ≤ guaranteed ≤ maximum ≤ 1000000 GPUs")
        }
    }
}
