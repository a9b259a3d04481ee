import CaduceusCore
import Foundation
import Identity
import SQLKit
import Sealing

/// Datasets, their keys (wrapped) and their objects' metadata over SQL, through the shared `SQLEngine`.
/// Wrapped keys are stored as base64url text, so that both engines keep them alike.
public final class SQLDatasetStore: DatasetStore {
    let engine: any SQLEngine
    /// The connection of the transaction this store is bound to, if any.
    let pinned: (any SQLDatabase)?

    init(engine: any SQLEngine, pinned: (any SQLDatabase)?) {
        self.engine = engine
        self.pinned = pinned
    }

    func run<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await SQLTransaction.statement(engine, pinned: pinned, body)
    }

    public func transaction<T: Sendable>(_ body: @Sendable (any DatasetStore) async throws -> T) async throws -> T {
        try await SQLTransaction.run(
            engine, pinned: pinned, current: self as any DatasetStore,
            inner: { [engine] db in SQLDatasetStore(engine: engine, pinned: db) }, body)
    }

    // MARK: Tenant keys

    public func insertTenantKey(_ key: TenantKeyRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO tenant_keys (tenant_id, version, wrapped, created_at)
                VALUES (\(bind: key.tenant.rawValue), \(bind: key.version), \(bind: Base64URL.encode(key.wrapped)),
                    \(bind: key.createdAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func tenantKeys(of tenant: TenantID) async throws -> [TenantKeyRecord] {
        try await run { db in
            try await db.raw(
                "SELECT * FROM tenant_keys WHERE tenant_id = \(bind: tenant.rawValue) ORDER BY version"
            ).all().map { row in
                TenantKeyRecord(
                    tenant: TenantID(unchecked: try row.decode(column: "tenant_id", as: String.self)),
                    version: try row.decode(column: "version", as: Int.self),
                    wrapped: try Self.bytes(row, "wrapped"), createdAt: try SQLIdentityStore.time(row, "created_at"))
            }
        }
    }

    public func patientIndexKey(of tenant: TenantID) async throws -> [UInt8]? {
        try await run { db in
            try await db.raw(
                "SELECT wrapped FROM patient_index_keys WHERE tenant_id = \(bind: tenant.rawValue)"
            ).first().map { try Self.bytes($0, "wrapped") }
        }
    }

    public func setPatientIndexKey(_ wrapped: [UInt8], of tenant: TenantID) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO patient_index_keys (tenant_id, wrapped)
                VALUES (\(bind: tenant.rawValue), \(bind: Base64URL.encode(wrapped)))
                """
            ).run()
        }
    }

    // MARK: Datasets and data keys

    public func insertDataset(_ dataset: DatasetRecord) async throws {
        let lifecycle = try SQLIdentityStore.json(dataset.lifecycle)
        try await run { db in
            try await db.raw(
                """
                INSERT INTO datasets (id, tenant_id, project_id, name, classification, residency, retention_years,
                    lifecycle, legal_hold, created_at, created_by, shredded_at)
                VALUES (\(bind: dataset.id.rawValue), \(bind: dataset.tenant.rawValue),
                    \(bind: dataset.project.rawValue), \(bind: dataset.name), \(bind: dataset.classification.rawValue),
                    \(bind: dataset.residency.rawValue), \(bind: dataset.retentionYears), \(bind: lifecycle),
                    \(bind: dataset.legalHold ? 1 : 0), \(bind: dataset.createdAt.millisecondsSinceEpoch),
                    \(bind: dataset.createdBy.rawValue), \(bind: dataset.shreddedAt?.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func updateDataset(_ dataset: DatasetRecord) async throws {
        let lifecycle = try SQLIdentityStore.json(dataset.lifecycle)
        try await run { db in
            try await db.raw(
                """
                UPDATE datasets SET lifecycle = \(bind: lifecycle), legal_hold = \(bind: dataset.legalHold ? 1 : 0),
                    retention_years = \(bind: dataset.retentionYears),
                    shredded_at = \(bind: dataset.shreddedAt?.millisecondsSinceEpoch)
                WHERE id = \(bind: dataset.id.rawValue)
                """
            ).run()
        }
    }

    public func dataset(id: DatasetID) async throws -> DatasetRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM datasets WHERE id = \(bind: id.rawValue)").first().map(Self.dataset)
        }
    }

    public func datasets(
        tenant: TenantID?, project: ProjectID?, after cursor: String?, limit: Int
    ) async throws -> Page<DatasetRecord> {
        try await run { db in
            let rows = try await db.raw(
                """
                SELECT * FROM datasets
                WHERE (\(bind: tenant?.rawValue) IS NULL OR tenant_id = \(bind: tenant?.rawValue))
                    AND (\(bind: project?.rawValue) IS NULL OR project_id = \(bind: project?.rawValue))
                    AND id > \(bind: cursor ?? "") ORDER BY id LIMIT \(bind: limit + 1)
                """
            ).all().map(Self.dataset)
            return SQLIdentityStore.page(rows, limit: limit, id: \.id.rawValue)
        }
    }

    public func insertDataKey(_ key: DataKeyRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO data_keys (id, tenant_id, dataset_id, kek_version, wrapped, created_at)
                VALUES (\(bind: key.id.rawValue), \(bind: key.tenant.rawValue), \(bind: key.dataset.rawValue),
                    \(bind: key.kekVersion), \(bind: key.wrapped.map(Base64URL.encode)),
                    \(bind: key.createdAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func updateDataKey(_ key: DataKeyRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                UPDATE data_keys SET kek_version = \(bind: key.kekVersion), wrapped = \(bind: key.wrapped.map(Base64URL.encode))
                WHERE id = \(bind: key.id.rawValue)
                """
            ).run()
        }
    }

    public func dataKey(of dataset: DatasetID) async throws -> DataKeyRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM data_keys WHERE dataset_id = \(bind: dataset.rawValue)").first()
                .map(Self.dataKey)
        }
    }

    public func dataKeys(of tenant: TenantID) async throws -> [DataKeyRecord] {
        try await run { db in
            try await db.raw(
                "SELECT * FROM data_keys WHERE tenant_id = \(bind: tenant.rawValue) AND wrapped IS NOT NULL ORDER BY id"
            ).all().map(Self.dataKey)
        }
    }

    // MARK: Objects

    public func insertObject(_ object: ObjectRecord, patientHashes: [String]) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO dataset_objects (id, dataset_id, name, plaintext_bytes, sealed_bytes, sha256, chunk_size,
                    tier, created_at, created_by, last_read_at, patients)
                VALUES (\(bind: object.id.rawValue), \(bind: object.dataset.rawValue), \(bind: object.name),
                    \(bind: object.plaintextBytes), \(bind: object.sealedBytes), \(bind: object.sha256),
                    \(bind: object.chunkSize), \(bind: object.tier.rawValue),
                    \(bind: object.createdAt.millisecondsSinceEpoch), \(bind: object.createdBy.rawValue),
                    \(bind: object.lastReadAt?.millisecondsSinceEpoch), \(bind: object.patients))
                """
            ).run()
            guard !patientHashes.isEmpty else { return }
            let tenant = try await db.raw(
                "SELECT tenant_id FROM datasets WHERE id = \(bind: object.dataset.rawValue)"
            ).first()?.decode(column: "tenant_id", as: String.self)
            for hash in Set(patientHashes).sorted() {
                try await db.raw(
                    """
                    INSERT INTO object_patients (tenant_id, patient_hash, object_id)
                    VALUES (\(bind: tenant), \(bind: hash), \(bind: object.id.rawValue))
                    """
                ).run()
            }
        }
    }

    public func updateObject(_ object: ObjectRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                UPDATE dataset_objects SET tier = \(bind: object.tier.rawValue),
                    last_read_at = \(bind: object.lastReadAt?.millisecondsSinceEpoch)
                WHERE id = \(bind: object.id.rawValue)
                """
            ).run()
        }
    }

    public func deleteObject(_ id: ObjectID) async throws {
        try await run { db in
            try await db.raw("DELETE FROM object_patients WHERE object_id = \(bind: id.rawValue)").run()
            try await db.raw("DELETE FROM dataset_objects WHERE id = \(bind: id.rawValue)").run()
        }
    }

    public func object(dataset: DatasetID, name: String) async throws -> ObjectRecord? {
        try await run { db in
            try await db.raw(
                "SELECT * FROM dataset_objects WHERE dataset_id = \(bind: dataset.rawValue) AND name = \(bind: name)"
            ).first().map(Self.object)
        }
    }

    public func object(id: ObjectID) async throws -> ObjectRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM dataset_objects WHERE id = \(bind: id.rawValue)").first().map(Self.object)
        }
    }

    public func objects(of dataset: DatasetID, after cursor: String?, limit: Int) async throws -> Page<ObjectRecord> {
        try await run { db in
            let rows = try await db.raw(
                """
                SELECT * FROM dataset_objects WHERE dataset_id = \(bind: dataset.rawValue) AND name > \(bind: cursor ?? "")
                ORDER BY name LIMIT \(bind: limit + 1)
                """
            ).all().map(Self.object)
            return SQLIdentityStore.page(rows, limit: limit, id: \.name)
        }
    }

    public func objects(tenant: TenantID, patientHash hash: String) async throws -> [ObjectRecord] {
        try await run { db in
            try await db.raw(
                """
                SELECT o.* FROM dataset_objects o JOIN object_patients p ON p.object_id = o.id
                WHERE p.tenant_id = \(bind: tenant.rawValue) AND p.patient_hash = \(bind: hash) ORDER BY o.id
                """
            ).all().map(Self.object)
        }
    }

    // MARK: Shredding

    public func saveShreddingCertificate(_ note: String, of dataset: DatasetID) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO shredding_certificates (dataset_id, note) VALUES (\(bind: dataset.rawValue), \(bind: note))
                """
            ).run()
        }
    }

    public func shreddingCertificate(of dataset: DatasetID) async throws -> String? {
        try await run { db in
            try await db.raw(
                "SELECT note FROM shredding_certificates WHERE dataset_id = \(bind: dataset.rawValue)"
            ).first()?.decode(column: "note", as: String.self)
        }
    }

    public func shreddedDatasets() async throws -> [DatasetID] {
        try await run { db in
            try await db.raw("SELECT id FROM datasets WHERE shredded_at IS NOT NULL ORDER BY id").all().map {
                DatasetID(unchecked: try $0.decode(column: "id", as: String.self))
            }
        }
    }

    // MARK: Grants

    public func insertGrant(_ grant: GrantRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO dataset_grants (id, dataset_id, tenant_id, project_id, purpose, approved_by, approved_at,
                    revoked_at)
                VALUES (\(bind: grant.id.rawValue), \(bind: grant.dataset.rawValue), \(bind: grant.tenant.rawValue),
                    \(bind: grant.project.rawValue), \(bind: grant.purpose), \(bind: grant.approvedBy.rawValue),
                    \(bind: grant.approvedAt.millisecondsSinceEpoch), \(bind: grant.revokedAt?.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func updateGrant(_ grant: GrantRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                UPDATE dataset_grants SET revoked_at = \(bind: grant.revokedAt?.millisecondsSinceEpoch)
                WHERE id = \(bind: grant.id.rawValue)
                """
            ).run()
        }
    }

    public func grant(id: DatasetGrantID) async throws -> GrantRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM dataset_grants WHERE id = \(bind: id.rawValue)").first().map(Self.grant)
        }
    }

    public func grants(of dataset: DatasetID) async throws -> [GrantRecord] {
        try await run { db in
            try await db.raw(
                "SELECT * FROM dataset_grants WHERE dataset_id = \(bind: dataset.rawValue) ORDER BY id"
            ).all().map(Self.grant)
        }
    }

    static func grant(_ row: any SQLRow) throws -> GrantRecord {
        GrantRecord(
            id: DatasetGrantID(unchecked: try row.decode(column: "id", as: String.self)),
            dataset: DatasetID(unchecked: try row.decode(column: "dataset_id", as: String.self)),
            tenant: TenantID(unchecked: try row.decode(column: "tenant_id", as: String.self)),
            project: ProjectID(unchecked: try row.decode(column: "project_id", as: String.self)),
            purpose: try row.decode(column: "purpose", as: String.self),
            approvedBy: UserID(unchecked: try row.decode(column: "approved_by", as: String.self)),
            approvedAt: try SQLIdentityStore.time(row, "approved_at"),
            revokedAt: try SQLIdentityStore.optionalTime(row, "revoked_at"))
    }

    // MARK: Rows

    static func bytes(_ row: any SQLRow, _ column: String) throws -> [UInt8] {
        guard let bytes = Base64URL.decode(try row.decode(column: column, as: String.self)) else {
            throw CaduceusError(code: "store.corrupt", message: "the stored \(column) is malformed")
        }
        return bytes
    }

    static func dataset(_ row: any SQLRow) throws -> DatasetRecord {
        let classification = try row.decode(column: "classification", as: String.self)
        let residency = try row.decode(column: "residency", as: String.self)
        guard let kind = DatasetClassification(rawValue: classification), let region = Residency(rawValue: residency)
        else { throw CaduceusError(code: "store.corrupt", message: "a stored dataset is malformed") }
        return DatasetRecord(
            id: DatasetID(unchecked: try row.decode(column: "id", as: String.self)),
            tenant: TenantID(unchecked: try row.decode(column: "tenant_id", as: String.self)),
            project: ProjectID(unchecked: try row.decode(column: "project_id", as: String.self)),
            name: try row.decode(column: "name", as: String.self), classification: kind, residency: region,
            retentionYears: try row.decode(column: "retention_years", as: Int.self),
            lifecycle: try SQLFleetStore.decodeJSON(LifecycleRule.self, row, "lifecycle"),
            legalHold: try row.decode(column: "legal_hold", as: Int.self) != 0,
            createdAt: try SQLIdentityStore.time(row, "created_at"),
            createdBy: UserID(unchecked: try row.decode(column: "created_by", as: String.self)),
            shreddedAt: try SQLIdentityStore.optionalTime(row, "shredded_at"))
    }

    static func dataKey(_ row: any SQLRow) throws -> DataKeyRecord {
        DataKeyRecord(
            id: DataKeyID(unchecked: try row.decode(column: "id", as: String.self)),
            tenant: TenantID(unchecked: try row.decode(column: "tenant_id", as: String.self)),
            dataset: DatasetID(unchecked: try row.decode(column: "dataset_id", as: String.self)),
            kekVersion: try row.decode(column: "kek_version", as: Int.self),
            wrapped: try row.decode(column: "wrapped", as: String?.self).map { text in
                guard let bytes = Base64URL.decode(text) else {
                    throw CaduceusError(code: "store.corrupt", message: "a stored data key is malformed")
                }
                return bytes
            }, createdAt: try SQLIdentityStore.time(row, "created_at"))
    }

    static func object(_ row: any SQLRow) throws -> ObjectRecord {
        let tier = try row.decode(column: "tier", as: String.self)
        guard let storage = StorageTier(rawValue: tier) else {
            throw CaduceusError(code: "store.corrupt", message: "a stored object's tier is malformed")
        }
        return ObjectRecord(
            id: ObjectID(unchecked: try row.decode(column: "id", as: String.self)),
            dataset: DatasetID(unchecked: try row.decode(column: "dataset_id", as: String.self)),
            name: try row.decode(column: "name", as: String.self),
            plaintextBytes: try row.decode(column: "plaintext_bytes", as: Int64.self),
            sealedBytes: try row.decode(column: "sealed_bytes", as: Int64.self),
            sha256: try row.decode(column: "sha256", as: String.self),
            chunkSize: try row.decode(column: "chunk_size", as: Int.self), tier: storage,
            createdAt: try SQLIdentityStore.time(row, "created_at"),
            createdBy: UserID(unchecked: try row.decode(column: "created_by", as: String.self)),
            lastReadAt: try SQLIdentityStore.optionalTime(row, "last_read_at"),
            patients: try row.decode(column: "patients", as: Int.self))
    }
}
