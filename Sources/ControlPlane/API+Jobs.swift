import CaduceusCore
import Scheduling

public struct SubmitJobRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = [
        "project": .string, "class": .string, "gpusPerNode": .integer, "nodeCount": .optionalInteger,
        "allowedModels": .optionalStrings, "residency": .optionalString, "command": .string,
        "arguments": .optionalStrings, "environment": .optionalStringMap, "maxRuntimeSeconds": .optionalInteger,
        "minRuntimeSeconds": .optionalInteger, "preemptible": .optionalBoolean, "datasets": .optionalStrings,
    ]
    /// The project it is charged to (its tenant's nodes run it).
    public var project: ProjectID
    public var jobClass: JobClass
    public var gpusPerNode: Int
    /// Nodes at once (default 1); more than one makes a gang.
    public var nodeCount: Int?
    public var allowedModels: [String]?
    public var residency: Residency?
    public var command: String
    public var arguments: [String]?
    public var environment: [String: String]?
    /// Default one day.
    public var maxRuntimeSeconds: Int?
    /// Default 0.
    public var minRuntimeSeconds: Int?
    /// Default: training and batch yes, inference and interactive no.
    public var preemptible: Bool?
    /// Datasets the job reads (its project's own, or granted to it); it then runs only where they reside.
    public var datasets: [DatasetID]?

    enum CodingKeys: String, CodingKey {
        case project, jobClass = "class", gpusPerNode, nodeCount, allowedModels, residency, command, arguments
        case environment, maxRuntimeSeconds, minRuntimeSeconds, preemptible, datasets
    }

    public init(
        project: ProjectID, jobClass: JobClass, gpusPerNode: Int, nodeCount: Int? = nil,
        allowedModels: [String]? = nil, residency: Residency? = nil, command: String, arguments: [String]? = nil,
        environment: [String: String]? = nil, maxRuntimeSeconds: Int? = nil, minRuntimeSeconds: Int? = nil,
        preemptible: Bool? = nil, datasets: [DatasetID]? = nil
    ) {
        self.datasets = datasets
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

    /// The spec, with defaults filled in, for a job of `tenant`.
    func spec(tenant: TenantID) -> JobSpec {
        var spec = JobSpec(
            tenant: tenant, project: project, jobClass: jobClass, gpusPerNode: gpusPerNode, nodeCount: nodeCount ?? 1,
            allowedModels: allowedModels ?? [], residency: residency, command: command, arguments: arguments ?? [],
            environment: environment ?? [:], maxRuntimeSeconds: maxRuntimeSeconds ?? 86_400,
            minRuntimeSeconds: minRuntimeSeconds ?? 0,
            preemptible: preemptible ?? (jobClass == .training || jobClass == .batch))
        spec.datasets = datasets.flatMap { $0.isEmpty ? nil : $0 }
        return spec
    }
}

public struct JobView: Codable, Sendable, Equatable {
    public var id: JobID
    public var tenant: TenantID
    public var project: ProjectID
    public var jobClass: JobClass
    public var gpusPerNode: Int
    public var nodeCount: Int
    public var allowedModels: [String]
    public var residency: Residency?
    /// What it runs; nil for callers who may not see it (`job.inspect`).
    public var command: String?
    public var arguments: [String]?
    public var environment: [String: String]?
    public var maxRuntimeSeconds: Int
    public var minRuntimeSeconds: Int
    public var preemptible: Bool
    public var state: JobState
    public var submittedBy: UserID
    public var submittedAt: Timestamp
    public var assignments: [GPUAssignment]
    public var startedAt: Timestamp?
    public var endedAt: Timestamp?
    public var preemptions: Int
    public var reason: String?

    enum CodingKeys: String, CodingKey {
        case id, tenant, project, jobClass = "class", gpusPerNode, nodeCount, allowedModels, residency, command
        case arguments, environment, maxRuntimeSeconds, minRuntimeSeconds, preemptible, state, submittedBy
        case submittedAt, assignments, startedAt, endedAt, preemptions, reason
    }

    init(_ record: JobRecord, inspect: Bool) {
        id = record.id
        tenant = record.spec.tenant
        project = record.spec.project
        jobClass = record.spec.jobClass
        gpusPerNode = record.spec.gpusPerNode
        nodeCount = record.spec.nodeCount
        allowedModels = record.spec.allowedModels
        residency = record.spec.residency
        command = inspect ? record.spec.command : nil
        arguments = inspect ? record.spec.arguments : nil
        environment = inspect ? record.spec.environment : nil
        maxRuntimeSeconds = record.spec.maxRuntimeSeconds
        minRuntimeSeconds = record.spec.minRuntimeSeconds
        preemptible = record.spec.preemptible
        state = record.state
        submittedBy = record.submittedBy
        submittedAt = record.submittedAt
        assignments = record.assignments
        startedAt = record.startedAt
        endedAt = record.endedAt
        preemptions = record.preemptions
        reason = record.reason
    }
}

/// Why a job is where it is, in words, with the structured reason when it waits.
public struct JobWhyView: Codable, Sendable, Equatable {
    public var job: JobID
    public var state: JobState
    /// Whether it waits for GPUs.
    public var pending: Bool
    /// The explanation, in plain words.
    public var reason: String
    /// The structured reason it waits, once the scheduler has considered it.
    public var detail: PendingReason?
}

/// A piece of a job's log.
public struct JobLogView: Codable, Sendable, Equatable {
    public var job: JobID
    /// `stdout` or `stderr`.
    public var stream: String
    /// Where this piece starts, and where the next one does.
    public var offset: Int
    public var nextOffset: Int
    /// The log's size now.
    public var size: Int
    /// The bytes, as UTF-8 text.
    public var text: String
    /// Whether the job has ended and this piece reaches the end of its log.
    public var complete: Bool
}
