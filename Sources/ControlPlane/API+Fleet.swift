import CaduceusCore
import Scheduling

public struct CreateRegionRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["name": .string, "residency": .string]
    public var name: String
    /// The data residency of everything in the region, e.g. `US`.
    public var residency: Residency

    public init(name: String, residency: Residency) {
        self.name = name
        self.residency = residency
    }
}

public struct RegionView: Codable, Sendable, Equatable {
    public var id: RegionID
    public var name: String
    public var residency: Residency
    public var createdAt: Timestamp

    init(_ record: RegionRecord) {
        id = record.id
        name = record.name
        residency = record.residency
        createdAt = record.createdAt
    }
}

public struct CreateSiteRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["name": .string, "region": .string]
    public var name: String
    public var region: RegionID

    public init(name: String, region: RegionID) {
        self.name = name
        self.region = region
    }
}

public struct SiteView: Codable, Sendable, Equatable {
    public var id: SiteID
    public var name: String
    public var region: RegionID
    public var createdAt: Timestamp

    init(_ record: SiteRecord) {
        id = record.id
        name = record.name
        region = record.region
        createdAt = record.createdAt
    }
}

public struct CreateFabricRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["name": .string, "site": .string]
    public var name: String
    public var site: SiteID

    public init(name: String, site: SiteID) {
        self.name = name
        self.site = site
    }
}

public struct FabricView: Codable, Sendable, Equatable {
    public var id: FabricID
    public var name: String
    public var site: SiteID
    public var createdAt: Timestamp

    init(_ record: FabricRecord) {
        id = record.id
        name = record.name
        site = record.site
        createdAt = record.createdAt
    }
}

public struct CreateNodeRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["name": .string, "fabric": .string, "gpus": .objects]
    /// The node's host name.
    public var name: String
    /// Its fabric (the site follows from it).
    public var fabric: FabricID
    /// Its GPUs: 1 to 64, indexes 0…n−1, all of one model, unique UUIDs.
    public var gpus: [GPUDevice]

    public init(name: String, fabric: FabricID, gpus: [GPUDevice]) {
        self.name = name
        self.fabric = fabric
        self.gpus = gpus
    }
}

public struct AssignNodeRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["tenant": .string]
    public var tenant: TenantID

    public init(tenant: TenantID) { self.tenant = tenant }
}

public struct NodeView: Codable, Sendable, Equatable {
    public var id: NodeID
    public var name: String
    public var site: SiteID
    public var fabric: FabricID
    public var gpuModel: String
    public var gpuCount: Int
    public var gpus: [GPUDevice]
    public var state: NodeState
    public var tenant: TenantID?
    /// The tenant the node is moving to (through draining and sanitising).
    public var nextTenant: TenantID?
    /// The tenant whose work has run on it since it was last sanitised.
    public var heldWorkOf: TenantID?
    public var lastSanitization: SanitizationID?
    /// Whether the scheduler may place work on it now.
    public var schedulable: Bool
    /// Since when its remote agent has not answered (nil: it answers, or the node has no remote agent).
    public var unreachableSince: Timestamp?
    /// Its remote agent, if one has enrolled.
    public var agent: AgentView?
    /// The jobs holding GPUs on it.
    public var jobs: [JobID]
    public var createdAt: Timestamp
    /// Each GPU's last scrub since the control plane started (its agent scrubs all GPUs at start-up), by
    /// GPU index; empty for nodes no agent of this control plane serves.
    public var lastScrubs: [GPUScrubView] = []

    init(_ record: NodeRecord, jobs: [JobID]) {
        id = record.id
        name = record.name
        site = record.site
        fabric = record.fabric
        gpuModel = record.gpuModel
        gpuCount = record.gpus.count
        gpus = record.gpus
        state = record.lifecycle.state
        tenant = record.lifecycle.tenant
        nextTenant = record.lifecycle.nextTenant
        heldWorkOf = record.lifecycle.heldWorkOf
        lastSanitization = record.lifecycle.lastSanitization
        schedulable = record.schedulable
        unreachableSince = record.unreachableSince
        self.jobs = jobs
        createdAt = record.createdAt
    }
}

public struct SetQuotaRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["guaranteedGPUs": .integer, "maximumGPUs": .integer]
    /// GPUs the project can always get.
    public var guaranteedGPUs: Int
    /// The most GPUs it may hold, borrowing idle ones beyond its guarantee.
    public var maximumGPUs: Int

    public init(guaranteedGPUs: Int, maximumGPUs: Int) {
        self.guaranteedGPUs = guaranteedGPUs
        self.maximumGPUs = maximumGPUs
    }
}

public struct QuotaView: Codable, Sendable, Equatable {
    public var tenant: TenantID
    public var project: ProjectID
    public var guaranteedGPUs: Int
    /// Nil: no limit (the project has no quota).
    public var maximumGPUs: Int?
    /// GPUs the project holds now.
    public var inUseGPUs: Int
    public var updatedAt: Timestamp?
    public var updatedBy: UserID?

    init(tenant: TenantID, project: ProjectID, record: QuotaRecord?, inUse: Int) {
        self.tenant = tenant
        self.project = project
        let quota = record?.quota ?? .unlimited
        guaranteedGPUs = quota.guaranteedGPUs
        maximumGPUs = quota.maximumGPUs == ProjectQuota.unlimited.maximumGPUs ? nil : quota.maximumGPUs
        inUseGPUs = inUse
        updatedAt = record?.updatedAt
        updatedBy = record?.updatedBy
    }
}

/// A node's remote agent: where it enrolled from, its certificate, and whether it is connected now.
public struct AgentView: Codable, Sendable, Equatable {
    public var hostName: String?
    public var enrolledAt: Timestamp?
    public var certificateSerial: String?
    public var certificateExpiresAt: Timestamp?
    /// Whether it has synchronised with this control plane since it started and within the heartbeat timeout.
    public var connected: Bool
    /// When it was last heard from since this control plane started.
    public var lastSeen: Timestamp?
}

/// One GPU's last memory scrub.
public struct GPUScrubView: Codable, Sendable, Equatable {
    public var index: Int
    public var uuid: String
    public var at: Timestamp
    public var passed: Bool
    public var bytesOverwritten: UInt64
    public var bytesVerified: UInt64
    public var seconds: Double
    public var failure: String?
    public var fake: Bool

    init(_ report: GPUScrubReport, at time: Timestamp) {
        index = report.gpuIndex
        uuid = report.gpuUUID
        at = time
        passed = report.succeeded
        bytesOverwritten = report.bytesOverwritten
        bytesVerified = report.bytesVerified
        seconds = report.seconds
        failure = report.failure
        fake = report.fake
    }
}
