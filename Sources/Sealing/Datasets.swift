import CaduceusCore

/// How sensitive a dataset is.
public enum DatasetClassification: String, Codable, Sendable, CaseIterable {
    case phi, deidentified, `public`
}

/// Where sealed objects live, from the fastest storage to the cheapest.
public enum StorageTier: String, Codable, Sendable, CaseIterable, Comparable {
    case hot, warm, cold, archive

    public static func < (lhs: StorageTier, rhs: StorageTier) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// When a dataset's objects move to cheaper tiers: days since an object was last read.
public struct LifecycleRule: Codable, Sendable, Equatable {
    public var warmAfterDays: Int?
    public var coldAfterDays: Int?
    public var archiveAfterDays: Int?

    public init(warmAfterDays: Int? = nil, coldAfterDays: Int? = nil, archiveAfterDays: Int? = nil) {
        self.warmAfterDays = warmAfterDays
        self.coldAfterDays = coldAfterDays
        self.archiveAfterDays = archiveAfterDays
    }

    /// The tier an object idle for `days` belongs in.
    public func tier(idleDays days: Int) -> StorageTier {
        if let archive = archiveAfterDays, days >= archive { return .archive }
        if let cold = coldAfterDays, days >= cold { return .cold }
        if let warm = warmAfterDays, days >= warm { return .warm }
        return .hot
    }
}

/// A dataset: a project's sealed objects under one data key, with its classification, residency and how long
/// it must be kept.
public struct DatasetRecord: Codable, Sendable, Equatable {
    public var id: DatasetID
    public var tenant: TenantID
    public var project: ProjectID
    public var name: String
    public var classification: DatasetClassification
    public var residency: Residency
    public var retentionYears: Int
    public var lifecycle: LifecycleRule
    public var legalHold: Bool
    public var createdAt: Timestamp
    public var createdBy: UserID
    /// When it was crypto-shredded (its keys destroyed, its bytes removed).
    public var shreddedAt: Timestamp?

    public init(
        id: DatasetID, tenant: TenantID, project: ProjectID, name: String, classification: DatasetClassification,
        residency: Residency, retentionYears: Int, lifecycle: LifecycleRule, legalHold: Bool = false,
        createdAt: Timestamp, createdBy: UserID, shreddedAt: Timestamp? = nil
    ) {
        self.id = id
        self.tenant = tenant
        self.project = project
        self.name = name
        self.classification = classification
        self.residency = residency
        self.retentionYears = retentionYears
        self.lifecycle = lifecycle
        self.legalHold = legalHold
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.shreddedAt = shreddedAt
    }
}

/// A version of a tenant's key-encryption key, wrapped by the root key.
public struct TenantKeyRecord: Codable, Sendable, Equatable {
    public var tenant: TenantID
    public var version: Int
    public var wrapped: [UInt8]
    public var createdAt: Timestamp

    public init(tenant: TenantID, version: Int, wrapped: [UInt8], createdAt: Timestamp) {
        self.tenant = tenant
        self.version = version
        self.wrapped = wrapped
        self.createdAt = createdAt
    }
}

/// A dataset's data key, wrapped by a version of its tenant's KEK (nil once destroyed).
public struct DataKeyRecord: Codable, Sendable, Equatable {
    public var id: DataKeyID
    public var tenant: TenantID
    public var dataset: DatasetID
    public var kekVersion: Int
    public var wrapped: [UInt8]?
    public var createdAt: Timestamp

    public init(
        id: DataKeyID, tenant: TenantID, dataset: DatasetID, kekVersion: Int, wrapped: [UInt8]?, createdAt: Timestamp
    ) {
        self.id = id
        self.tenant = tenant
        self.dataset = dataset
        self.kekVersion = kekVersion
        self.wrapped = wrapped
        self.createdAt = createdAt
    }

    /// The 16 bytes of the key id, as the sealed header holds them.
    public var keyIDBytes: [UInt8] { Hex.decode(String(id.rawValue.dropFirst(3))) ?? [] }
}

/// A sealed object of a dataset.
public struct ObjectRecord: Codable, Sendable, Equatable {
    public var id: ObjectID
    public var dataset: DatasetID
    public var name: String
    public var plaintextBytes: Int64
    public var sealedBytes: Int64
    /// SHA-256 of the plaintext, lower-case hex.
    public var sha256: String
    public var chunkSize: Int
    public var tier: StorageTier
    public var createdAt: Timestamp
    public var createdBy: UserID
    public var lastReadAt: Timestamp?
    /// How many patients the uploader declared it holds.
    public var patients: Int

    public init(
        id: ObjectID, dataset: DatasetID, name: String, plaintextBytes: Int64, sealedBytes: Int64, sha256: String,
        chunkSize: Int, tier: StorageTier, createdAt: Timestamp, createdBy: UserID, lastReadAt: Timestamp? = nil,
        patients: Int
    ) {
        self.id = id
        self.dataset = dataset
        self.name = name
        self.plaintextBytes = plaintextBytes
        self.sealedBytes = sealedBytes
        self.sha256 = sha256
        self.chunkSize = chunkSize
        self.tier = tier
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.lastReadAt = lastReadAt
        self.patients = patients
    }
}

/// A project's permission to read a dataset of another project of its tenant, for a purpose of use.
public struct GrantRecord: Codable, Sendable, Equatable {
    public var id: DatasetGrantID
    public var dataset: DatasetID
    public var tenant: TenantID
    public var project: ProjectID
    /// The HL7 purpose-of-use code (`HRESCH`, `TREAT`, …).
    public var purpose: String
    public var approvedBy: UserID
    public var approvedAt: Timestamp
    public var revokedAt: Timestamp?

    public init(
        id: DatasetGrantID, dataset: DatasetID, tenant: TenantID, project: ProjectID, purpose: String,
        approvedBy: UserID, approvedAt: Timestamp, revokedAt: Timestamp? = nil
    ) {
        self.id = id
        self.dataset = dataset
        self.tenant = tenant
        self.project = project
        self.purpose = purpose
        self.approvedBy = approvedBy
        self.approvedAt = approvedAt
        self.revokedAt = revokedAt
    }
}

/// Where datasets, their keys and their objects' metadata are kept (the bytes are files; see `ObjectFiles`).
/// Implemented in `Persistence` over SQL, on the same connection and lock as the other stores.
public protocol DatasetStore: Sendable {
    func transaction<T: Sendable>(_ body: @Sendable (any DatasetStore) async throws -> T) async throws -> T

    // Tenant keys
    func insertTenantKey(_ key: TenantKeyRecord) async throws
    /// Every KEK version of a tenant, oldest first.
    func tenantKeys(of tenant: TenantID) async throws -> [TenantKeyRecord]
    /// The tenant's per-tenant patient-index key, wrapped by the root key.
    func patientIndexKey(of tenant: TenantID) async throws -> [UInt8]?
    func setPatientIndexKey(_ wrapped: [UInt8], of tenant: TenantID) async throws

    // Datasets and their data keys
    func insertDataset(_ dataset: DatasetRecord) async throws
    func updateDataset(_ dataset: DatasetRecord) async throws
    func dataset(id: DatasetID) async throws -> DatasetRecord?
    func datasets(
        tenant: TenantID?, project: ProjectID?, after cursor: String?, limit: Int
    ) async throws -> Page<
        DatasetRecord
    >
    func insertDataKey(_ key: DataKeyRecord) async throws
    func updateDataKey(_ key: DataKeyRecord) async throws
    func dataKey(of dataset: DatasetID) async throws -> DataKeyRecord?
    /// Every live data key of a tenant (to re-wrap them under a new KEK version).
    func dataKeys(of tenant: TenantID) async throws -> [DataKeyRecord]

    // Shredding
    func saveShreddingCertificate(_ note: String, of dataset: DatasetID) async throws
    func shreddingCertificate(of dataset: DatasetID) async throws -> String?
    /// Every shredded dataset (their files are removed at start-up if a crash left some).
    func shreddedDatasets() async throws -> [DatasetID]

    // Grants
    func insertGrant(_ grant: GrantRecord) async throws
    func updateGrant(_ grant: GrantRecord) async throws
    func grant(id: DatasetGrantID) async throws -> GrantRecord?
    func grants(of dataset: DatasetID) async throws -> [GrantRecord]

    // Objects and the patient index
    func insertObject(_ object: ObjectRecord, patientHashes: [String]) async throws
    func updateObject(_ object: ObjectRecord) async throws
    func deleteObject(_ id: ObjectID) async throws
    func object(dataset: DatasetID, name: String) async throws -> ObjectRecord?
    func object(id: ObjectID) async throws -> ObjectRecord?
    func objects(of dataset: DatasetID, after cursor: String?, limit: Int) async throws -> Page<ObjectRecord>
    /// The objects declared to hold the patient whose keyed hash is `hash`, in `tenant`.
    func objects(tenant: TenantID, patientHash hash: String) async throws -> [ObjectRecord]
}
