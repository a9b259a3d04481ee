import CaduceusCore
import Sealing

public struct CreateDatasetRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = [
        "project": .string, "name": .string, "classification": .string, "residency": .string,
        "retentionYears": .integer, "lifecycle": FieldSpec(type: "object", required: false, items: "integer"),
    ]
    public var project: ProjectID
    public var name: String
    public var classification: DatasetClassification
    public var residency: Residency
    /// Years the dataset must be kept (0 to 100); nothing of it may be deleted before.
    public var retentionYears: Int
    /// Days since last read after which objects move to the warm, cold and archive tiers.
    public var lifecycle: LifecycleRule?

    public init(
        project: ProjectID, name: String, classification: DatasetClassification, residency: Residency,
        retentionYears: Int, lifecycle: LifecycleRule? = nil
    ) {
        self.project = project
        self.name = name
        self.classification = classification
        self.residency = residency
        self.retentionYears = retentionYears
        self.lifecycle = lifecycle
    }
}

public struct DatasetView: Codable, Sendable, Equatable {
    public var id: DatasetID
    public var tenant: TenantID
    public var project: ProjectID
    public var name: String
    public var classification: DatasetClassification
    public var residency: Residency
    public var retentionYears: Int
    /// The day from which it may be deleted (crypto-shredded).
    public var retainedUntil: Timestamp
    public var lifecycle: LifecycleRule
    public var legalHold: Bool
    public var createdAt: Timestamp
    public var createdBy: UserID
    public var shreddedAt: Timestamp?
    /// Its data key and the version of the tenant KEK that wraps it.
    public var dataKey: DataKeyID?
    public var kekVersion: Int?

    init(_ record: DatasetRecord, key: DataKeyRecord?) {
        id = record.id
        tenant = record.tenant
        project = record.project
        name = record.name
        classification = record.classification
        residency = record.residency
        retentionYears = record.retentionYears
        retainedUntil = DatasetRules.retainedUntil(record)
        lifecycle = record.lifecycle
        legalHold = record.legalHold
        createdAt = record.createdAt
        createdBy = record.createdBy
        shreddedAt = record.shreddedAt
        dataKey = key?.id
        kekVersion = key?.kekVersion
    }
}

public struct ObjectView: Codable, Sendable, Equatable {
    public var id: ObjectID
    public var dataset: DatasetID
    public var name: String
    public var bytes: Int64
    public var sealedBytes: Int64
    public var sha256: String
    public var tier: StorageTier
    public var createdAt: Timestamp
    public var createdBy: UserID
    public var lastReadAt: Timestamp?
    /// How many patients the uploader declared (the identifiers themselves are kept only as keyed hashes).
    public var patients: Int

    init(_ record: ObjectRecord) {
        id = record.id
        dataset = record.dataset
        name = record.name
        bytes = record.plaintextBytes
        sealedBytes = record.sealedBytes
        sha256 = record.sha256
        tier = record.tier
        createdAt = record.createdAt
        createdBy = record.createdBy
        lastReadAt = record.lastReadAt
        patients = record.patients
    }
}

/// A tenant's key versions and how many data keys each wraps.
public struct KeyStatusView: Codable, Sendable, Equatable {
    public struct Version: Codable, Sendable, Equatable {
        public var version: Int
        public var createdAt: Timestamp
        public var dataKeys: Int
        public var current: Bool
    }
    public var tenant: TenantID
    public var versions: [Version]
    public var dataKeys: Int
}

/// What a rotation did.
public struct KeyRotationView: Codable, Sendable, Equatable {
    public var tenant: TenantID
    public var version: Int
    public var rewrapped: Int
    public var seconds: Double
}

public struct PHIAccessReportRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = [
        "tenant": .string, "patient": .string, "from": .optionalString, "to": .optionalString,
    ]
    public var tenant: TenantID
    /// The patient's identifier (e.g. an MRN); compared only as a keyed hash, never stored.
    public var patient: String
    /// RFC 3339 times bounding the report.
    public var from: String?
    public var to: String?

    public init(tenant: TenantID, patient: String, from: String? = nil, to: String? = nil) {
        self.tenant = tenant
        self.patient = patient
        self.from = from
        self.to = to
    }
}

/// Every access to data holding one patient, from the verified audit trail.
public struct PHIAccessReport: Codable, Sendable, Equatable {
    public struct Access: Codable, Sendable, Equatable {
        public var time: Timestamp
        public var actor: String
        public var actorType: String
        /// For a job's read: the person who submitted the job.
        public var onBehalfOf: UserID?
        public var action: String
        public var dataset: DatasetID
        public var object: ObjectID
        public var objectName: String
        public var purpose: String?
        public var outcome: String
        public var breakGlass: Bool
        public var sourceAddress: String?
        public var requestId: String?
        /// The audit log entry it comes from.
        public var logIndex: UInt64
    }
    public var tenant: TenantID
    public var generatedAt: Timestamp
    /// The objects declared to hold the patient.
    public var objects: [ObjectID]
    /// The checkpoint the report was checked against: its size and root hash.
    public var logSize: UInt64
    public var logRootHash: String
    public var accesses: [Access]
}

/// Rules of datasets that need no store.
public enum DatasetRules {
    /// Retention runs from the dataset's creation.
    public static func retainedUntil(_ dataset: DatasetRecord) -> Timestamp {
        dataset.createdAt.adding(
            milliseconds: Int64(dataset.retentionYears) * 365 * 86_400_000 + Int64(dataset.retentionYears / 4)
                * 86_400_000)
    }

    /// Object names: 1–200 of letters, digits, `.`, `_`, `-`, not starting with a dot.
    public static func checkObjectName(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard (1...200).contains(bytes.count), bytes[0] != 46,
            bytes.allSatisfy({
                (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 46 || $0 == 95
                    || $0 == 45
            })
        else {
            throw Failure.invalid(
                "the object name must be 1–200 letters, digits, '.', '_' or '-', not starting with '.'")
        }
    }

    /// A patient identifier as it is hashed: surrounding and inner white space removed, upper case.
    public static func normalisedPatient(_ identifier: String) -> String {
        String(identifier.unicodeScalars.filter { !$0.properties.isWhitespace }).uppercased()
    }
}

/// One range of bytes as a client asks for it (`a-b`, `a-` or the last `n`), resolved once the object's
/// length is known.
public struct ByteRange: Sendable, Equatable {
    public var start: UInt64?
    public var end: UInt64?

    public init(start: UInt64?, end: UInt64?) {
        self.start = start
        self.end = end
    }

    /// The half-open range within an object of `length` bytes; `input.range` when it does not overlap it.
    public func bounded(by length: UInt64) throws -> Range<UInt64> {
        switch (start, end) {
        case (let start?, let end?) where start <= end && start < length: return start..<min(end + 1, length)
        case (let start?, nil) where start < length: return start..<length
        case (nil, let suffix?) where suffix > 0 && length > 0: return (length - min(suffix, length))..<length
        default:
            throw CaduceusError(code: "input.range", message: "the range is not within the object's \(length) bytes")
        }
    }
}

public struct CreateGrantRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["project": .string, "purpose": .string]
    /// The project of the same tenant that may read the dataset.
    public var project: ProjectID
    /// The HL7 purpose of use: TREAT, HRESCH, HOPERAT, PUBHLTH, HQUALIMP, CLINTRCH, PATRQT or HPAYMT.
    public var purpose: String

    public init(project: ProjectID, purpose: String) {
        self.project = project
        self.purpose = purpose
    }

    public static let purposes: Set<String> = [
        "TREAT", "HRESCH", "HOPERAT", "PUBHLTH", "HQUALIMP", "CLINTRCH", "PATRQT", "HPAYMT",
    ]
}

public struct GrantView: Codable, Sendable, Equatable {
    public var id: DatasetGrantID
    public var dataset: DatasetID
    public var project: ProjectID
    public var purpose: String
    public var approvedBy: UserID
    public var approvedAt: Timestamp
    public var revokedAt: Timestamp?

    init(_ record: GrantRecord) {
        id = record.id
        dataset = record.dataset
        project = record.project
        purpose = record.purpose
        approvedBy = record.approvedBy
        approvedAt = record.approvedAt
        revokedAt = record.revokedAt
    }
}

public struct SetHoldRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["hold": FieldSpec(type: "boolean", required: true)]
    public var hold: Bool

    public init(hold: Bool) { self.hold = hold }
}

/// What shredding a dataset left: its certificate, a note signed with the audit log's key.
public struct ShreddingView: Codable, Sendable, Equatable {
    public var dataset: DatasetID
    public var certificate: String

    public init(dataset: DatasetID, certificate: String) {
        self.dataset = dataset
        self.certificate = certificate
    }
}
