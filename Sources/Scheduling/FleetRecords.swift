import CaduceusCore

/// A region: where sites sit, with the one data residency they all have.
public struct RegionRecord: Sendable, Equatable, Codable {
    public var id: RegionID
    public var name: String
    public var residency: Residency
    public var createdAt: Timestamp

    /// Creates a record.
    public init(id: RegionID, name: String, residency: Residency, createdAt: Timestamp) {
        self.id = id
        self.name = name
        self.residency = residency
        self.createdAt = createdAt
    }
}

/// A site (a data centre or machine room) in a region.
public struct SiteRecord: Sendable, Equatable, Codable {
    public var id: SiteID
    public var name: String
    public var region: RegionID
    public var createdAt: Timestamp

    /// Creates a record.
    public init(id: SiteID, name: String, region: RegionID, createdAt: Timestamp) {
        self.id = id
        self.name = name
        self.region = region
        self.createdAt = createdAt
    }
}

/// A fabric (an NVLink or InfiniBand domain) in a site.
public struct FabricRecord: Sendable, Equatable, Codable {
    public var id: FabricID
    public var name: String
    public var site: SiteID
    public var createdAt: Timestamp

    /// Creates a record.
    public init(id: FabricID, name: String, site: SiteID, createdAt: Timestamp) {
        self.id = id
        self.name = name
        self.site = site
        self.createdAt = createdAt
    }
}

/// A GPU node: where it is, its GPUs, and its lifecycle (state, tenant, whose work it has held).
public struct NodeRecord: Sendable, Equatable, Codable {
    public var id: NodeID
    public var name: String
    public var site: SiteID
    public var fabric: FabricID
    /// Its GPUs, by index; all of one model.
    public var gpus: [GPUDevice]
    /// Its state machine, restored from the stored fields.
    public var lifecycle: NodeLifecycle
    public var createdAt: Timestamp
    /// Since when its remote agent has not been heard from (nil: reachable, or served in-process). An
    /// unreachable node takes no work.
    public var unreachableSince: Timestamp? = nil

    /// Creates a record.
    public init(
        id: NodeID, name: String, site: SiteID, fabric: FabricID, gpus: [GPUDevice], lifecycle: NodeLifecycle,
        createdAt: Timestamp
    ) {
        self.id = id
        self.name = name
        self.site = site
        self.fabric = fabric
        self.gpus = gpus
        self.lifecycle = lifecycle
        self.createdAt = createdAt
    }

    /// The model of its GPUs.
    public var gpuModel: String { gpus.first?.model ?? "" }

    /// Whether the scheduler may place work on it: its lifecycle takes work and its agent answers.
    public var schedulable: Bool { lifecycle.acceptsWork && unreachableSince == nil }
}

/// The node agent of a remote node: its pending join token and the client certificate it enrolled with.
public struct AgentRecord: Sendable, Equatable, Codable {
    public var node: NodeID
    /// SHA-256 (hex) of the join token not yet used, if any.
    public var joinTokenHash: String?
    public var joinTokenExpiresAt: Timestamp?
    /// The serial number (hex) of the one client certificate the node may present; a new enrolment
    /// replaces it, so an older certificate is refused.
    public var certificateSerial: String?
    public var certificateExpiresAt: Timestamp?
    /// When the agent last enrolled.
    public var enrolledAt: Timestamp?
    /// The host name the agent reported at enrolment.
    public var hostName: String?

    /// Creates a record.
    public init(
        node: NodeID, joinTokenHash: String? = nil, joinTokenExpiresAt: Timestamp? = nil,
        certificateSerial: String? = nil, certificateExpiresAt: Timestamp? = nil, enrolledAt: Timestamp? = nil,
        hostName: String? = nil
    ) {
        self.node = node
        self.joinTokenHash = joinTokenHash
        self.joinTokenExpiresAt = joinTokenExpiresAt
        self.certificateSerial = certificateSerial
        self.certificateExpiresAt = certificateExpiresAt
        self.enrolledAt = enrolledAt
        self.hostName = hostName
    }
}

/// A project's share of its tenant's GPUs, and who set it last.
public struct QuotaRecord: Sendable, Equatable, Codable {
    public var tenant: TenantID
    public var project: ProjectID
    public var quota: ProjectQuota
    public var updatedAt: Timestamp
    public var updatedBy: UserID?

    /// Creates a record.
    public init(
        tenant: TenantID, project: ProjectID, quota: ProjectQuota, updatedAt: Timestamp, updatedBy: UserID?
    ) {
        self.tenant = tenant
        self.project = project
        self.quota = quota
        self.updatedAt = updatedAt
        self.updatedBy = updatedBy
    }
}

/// A job: what was asked for, where it is in its life, and where it runs.
public struct JobRecord: Sendable, Equatable, Codable {
    public var id: JobID
    public var spec: JobSpec
    public var state: JobState
    public var submittedBy: UserID
    public var submittedAt: Timestamp
    /// The GPUs it holds (empty unless its state holds GPUs).
    public var assignments: [GPUAssignment]
    /// When it was last placed.
    public var startedAt: Timestamp?
    /// When it reached a final state.
    public var endedAt: Timestamp?
    /// How often it lost its GPUs to other work or a drain.
    public var preemptions: Int
    /// Why it ended, or why it was last sent back to the queue.
    public var reason: String?

    /// Creates a record.
    public init(
        id: JobID, spec: JobSpec, state: JobState, submittedBy: UserID, submittedAt: Timestamp,
        assignments: [GPUAssignment] = [], startedAt: Timestamp? = nil, endedAt: Timestamp? = nil,
        preemptions: Int = 0, reason: String? = nil
    ) {
        self.id = id
        self.spec = spec
        self.state = state
        self.submittedBy = submittedBy
        self.submittedAt = submittedAt
        self.assignments = assignments
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.preemptions = preemptions
        self.reason = reason
    }

    /// The job as the scheduler queues it.
    public var queued: QueuedJob { QueuedJob(id: id, spec: spec, submittedAt: submittedAt) }
}

/// Which jobs a list returns; nil fields do not filter.
public struct JobFilter: Sendable, Equatable {
    public var tenant: TenantID?
    public var project: ProjectID?
    public var state: JobState?

    /// Creates a filter.
    public init(tenant: TenantID? = nil, project: ProjectID? = nil, state: JobState? = nil) {
        self.tenant = tenant
        self.project = project
        self.state = state
    }
}

/// A node's sanitisation as kept: the record the lifecycle accepted, and what was scrubbed and erased.
public struct SanitizationEntry: Sendable, Equatable, Codable {
    /// The record.
    public var record: SanitizationRecord
    /// Each GPU's scrub.
    public var gpus: [SanitizedGPU]
    /// Files overwritten and removed from the node's job scratch folders.
    public var scratchFilesErased: Int

    /// Creates an entry.
    public init(record: SanitizationRecord, gpus: [SanitizedGPU], scratchFilesErased: Int) {
        self.record = record
        self.gpus = gpus
        self.scratchFilesErased = scratchFilesErased
    }
}

/// One GPU's part in a sanitisation.
public struct SanitizedGPU: Sendable, Equatable, Codable {
    public var uuid: String
    public var bytesOverwritten: UInt64
    public var bytesVerified: UInt64
    public var passed: Bool

    /// Creates a GPU's part.
    public init(uuid: String, bytesOverwritten: UInt64, bytesVerified: UInt64, passed: Bool) {
        self.uuid = uuid
        self.bytesOverwritten = bytesOverwritten
        self.bytesVerified = bytesVerified
        self.passed = passed
    }
}
