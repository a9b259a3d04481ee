import AuditLog
import CaduceusCore
import Crypto
import Foundation
import Identity
import Logging
import Sealing
import Synchronization

/// What the control plane needs to keep sealed datasets.
public struct DatasetSettings: Sendable {
    public var store: any DatasetStore
    public var root: any RootKeyProvider
    public var files: ObjectFiles
    /// The residency of the storage this control plane writes objects to.
    public var storageResidency: Residency
    /// The audit log's directory and verifier key, for reports checked against the log.
    public var auditDirectory: String
    public var auditVerifierKey: NoteVerifierKey
    /// Signs shredding certificates (the audit log's checkpoint key: one verifier key checks both).
    public var certificateSigner: NoteSigner

    public init(
        store: any DatasetStore, root: any RootKeyProvider, files: ObjectFiles, storageResidency: Residency,
        auditDirectory: String, auditVerifierKey: NoteVerifierKey, certificateSigner: NoteSigner
    ) {
        self.certificateSigner = certificateSigner
        self.store = store
        self.root = root
        self.files = files
        self.storageResidency = storageResidency
        self.auditDirectory = auditDirectory
        self.auditVerifierKey = auditVerifierKey
    }
}

/// Sealed PHI datasets: creating them, their keys, uploading and downloading objects.
///
/// Every dataset has one data key, random, stored only wrapped by the current version of its tenant's KEK
/// (which the root key wraps). Every unwrap of a data key is an audit event saying who, which dataset and
/// why; a download's PHI-read event is durable before its first byte leaves.
extension ControlPlane {
    /// Starts keeping datasets with `settings`; removes what interrupted uploads left.
    public func enableDatasets(_ settings: DatasetSettings) async throws {
        let swept = settings.files.sweepPartials()
        if swept > 0 { logger.notice("removed unfinished uploads", metadata: ["files": "\(swept)"]) }
        // A shredding is done once its key is gone; files a crash left behind go now.
        for dataset in try await settings.store.shreddedDatasets() { settings.files.removeAll(of: dataset) }
        let misplaced = try await sweepMisplaced(settings)
        if misplaced > 0 { logger.notice("removed stray object copies", metadata: ["files": "\(misplaced)"]) }
        datasetSettings.withLock { $0 = settings }
    }

    func datasetContext() throws -> DatasetSettings {
        guard let settings = datasetSettings.withLock({ $0 }) else {
            throw Failure.conflict("this control plane keeps no datasets")
        }
        return settings
    }

    // MARK: Datasets

    /// Creates a dataset in a project, with its data key.
    public func createDataset(_ request: RequestInfo, _ input: CreateDatasetRequest) async throws -> DatasetView {
        let context = try datasetContext()
        let project = try await store.project(id: input.project)
        let id = DatasetID.generate()
        let subject = AuditRecorder.Subject(
            action: "dataset.create", resourceType: "dataset", resourceID: id.rawValue, tenant: project?.tenant)
        guard let project else {
            _ = try await authorize(request, .datasetWrite, in: .platform, subject)
            throw Failure.invalid("project: no project \(input.project)")
        }
        let decision = try await authorize(request, .datasetWrite, in: .project(project.tenant, project.id), subject)
        let principal = try request.requirePrincipal()
        let now = self.now
        do {
            try Names.check(input.name, "name: a dataset name")
            guard (0...100).contains(input.retentionYears) else { throw Failure.invalid("retentionYears: 0 to 100") }
            guard input.residency == context.storageResidency else {
                throw Failure.conflict(
                    "residency \(input.residency.rawValue): this control plane stores objects only in "
                        + "\(context.storageResidency.rawValue)")
            }
            let lifecycle = input.lifecycle ?? LifecycleRule()
            let days = [lifecycle.warmAfterDays, lifecycle.coldAfterDays, lifecycle.archiveAfterDays].compactMap { $0 }
            guard days.allSatisfy({ (1...36_500).contains($0) }), days == days.sorted() else {
                throw Failure.invalid("lifecycle: days 1 to 36500, warm before cold before archive")
            }
            let record = DatasetRecord(
                id: id, tenant: project.tenant, project: project.id, name: input.name,
                classification: input.classification, residency: input.residency, retentionYears: input.retentionYears,
                lifecycle: lifecycle, createdAt: now, createdBy: principal.id)
            let key = try await context.store.transaction { [audit] tx in
                let (version, kek) = try await Self.currentKEK(of: project.tenant, tx, context.root, now: now)
                let keyID = DataKeyID.generate()
                let dataKey = SymmetricKey(size: .bits256)
                let wrapped = try KeyWrap.wrap(
                    dataKey, under: kek,
                    aad: KeyWrap.dataKeyAAD(
                        tenant: project.tenant, dataset: id.rawValue,
                        keyID: Hex.decode(String(keyID.rawValue.dropFirst(3))) ?? [],
                        kekVersion: version))
                let keyRecord = DataKeyRecord(
                    id: keyID, tenant: project.tenant, dataset: id, kekVersion: version, wrapped: wrapped,
                    createdAt: now)
                try await Self.unique("a dataset named '\(input.name)' exists in this project") {
                    try await tx.insertDataset(record)
                }
                try await tx.insertDataKey(keyRecord)
                try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
                return keyRecord
            }
            return DatasetView(record, key: key)
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// Datasets of a tenant or project the caller may see.
    public func listDatasets(
        _ request: RequestInfo, tenant: TenantID?, project: ProjectID?, after cursor: String?, limit: Int
    ) async throws -> ListResponse<DatasetView> {
        let context = try datasetContext()
        var scope = Scope.platform
        if let project, let record = try await store.project(id: project) {
            scope = .project(record.tenant, record.id)
        } else if let tenant {
            scope = .tenant(tenant)
        }
        let subject = AuditRecorder.Subject(
            action: "dataset.list", resourceType: "dataset", resourceID: "all", tenant: scope.tenant)
        let decision = try await authorize(request, .datasetRead, in: scope, subject)
        let page = try await context.store.datasets(
            tenant: tenant, project: project, after: cursor, limit: min(max(limit, 1), 500))
        var items: [DatasetView] = []
        for record in page.items {
            items.append(DatasetView(record, key: try await context.store.dataKey(of: record.id)))
        }
        try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
        return ListResponse(items: items, next: page.next)
    }

    /// A dataset.
    public func showDataset(_ request: RequestInfo, _ id: DatasetID) async throws -> DatasetView {
        let (record, decision, subject) = try await authorizeDataset(request, id, "dataset.show", .datasetRead)
        let key = try await datasetContext().store.dataKey(of: id)
        try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
        return DatasetView(record, key: key)
    }

    /// A dataset's objects (metadata only).
    public func listObjects(
        _ request: RequestInfo, _ id: DatasetID, after cursor: String?, limit: Int
    ) async throws -> ListResponse<ObjectView> {
        let (_, decision, subject) = try await authorizeDataset(request, id, "dataset.objects", .datasetRead)
        let page = try await datasetContext().store.objects(of: id, after: cursor, limit: min(max(limit, 1), 500))
        try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
        return ListResponse(items: page.items.map(ObjectView.init), next: page.next)
    }

    // MARK: Objects

    /// Stores an object: seals `body` as it arrives (never holding the object), checks its length and, when
    /// given, its SHA-256, and records it with the keyed hashes of the patients declared. Nothing is visible
    /// until everything checked out.
    public func uploadObject<Piece>(
        _ request: RequestInfo, dataset id: DatasetID, name: String, length: Int64?, sha256: String?,
        patients: [String], body: some AsyncSequence<Piece, any Error>
    ) async throws -> ObjectView where Piece: DataProtocol & RandomAccessCollection<UInt8> {
        let context = try datasetContext()
        let (dataset, decision, subject) = try await authorizeDataset(
            request, id, "dataset.object.upload", .datasetWrite)
        let principal = try request.requirePrincipal()
        var writer: ObjectWriter?
        do {
            try DatasetRules.checkObjectName(name)
            guard let length, length >= 0 else {
                throw Failure.invalid("the upload needs its length: Content-Length, or X-Caduceus-Length when chunked")
            }
            if let sha256 {
                guard sha256.utf8.count == 64, Hex.decode(sha256) != nil else {
                    throw Failure.invalid("the declared SHA-256 must be 64 hex digits")
                }
            }
            guard patients.count <= 10_000, patients.allSatisfy({ (1...64).contains($0.utf8.count) }) else {
                throw Failure.invalid("patients: up to 10000 identifiers of 1 to 64 characters")
            }
            guard dataset.shreddedAt == nil else { throw Failure.conflict("dataset \(id) was shredded") }
            guard dataset.residency == context.storageResidency else {
                throw Failure.conflict("dataset \(id) may only be stored in \(dataset.residency.rawValue)")
            }
            guard try await context.store.object(dataset: id, name: name) == nil else {
                throw Failure.conflict("an object named '\(name)' exists in dataset \(id)")
            }
            let (keyRecord, dataKey) = try await unwrapDataKey(request, dataset, why: "upload")
            let objectID = ObjectID.generate()
            let sealer = try Sealer(
                dataKey: dataKey, keyID: keyRecord.keyIDBytes, keyVersion: 1, plaintextLength: UInt64(length),
                context: "\(dataset.tenant)/\(dataset.id)/\(objectID)",
                objectID: Hex.decode(String(objectID.rawValue.dropFirst(4))))
            let started = try context.files.writer(objectID, of: id, in: .hot, sealer: sealer)
            writer = started
            var received: Int64 = 0
            for try await piece in body {
                received += Int64(piece.count)
                guard received <= length else { throw Failure.invalid("the body is longer than its Content-Length") }
                try started.write(piece)
            }
            guard received == length else {
                throw Failure.invalid("the body ended after \(received) of \(length) bytes; nothing was stored")
            }
            let digest = try started.commit(expectedSHA256: sha256)
            let indexKey = try await patientIndexKey(of: dataset.tenant, context)
            let hashes = patients.map { Self.patientHash(DatasetRules.normalisedPatient($0), key: indexKey) }
            let object = ObjectRecord(
                id: objectID, dataset: id, name: name, plaintextBytes: length,
                sealedBytes: Int64(started.header.objectSize), sha256: digest, chunkSize: started.header.chunkSize,
                tier: .hot, createdAt: now, createdBy: principal.id, patients: Set(hashes).count)
            do {
                try await context.store.transaction { [audit] tx in
                    try await tx.insertObject(object, patientHashes: hashes)
                    try await audit.record(
                        request,
                        .init(
                            action: subject.action, resourceType: "object", resourceID: objectID.rawValue,
                            tenant: dataset.tenant),
                        outcome: .success, breakGlass: decision.breakGlass,
                        details: .object([
                            "dataset": .string(id.rawValue), "bytes": .integer(length), "sha256": .string(digest),
                            "patients": .integer(Int64(object.patients)),
                        ]))
                }
            } catch {
                unlink(context.files.path(objectID, of: id, in: .hot))
                throw error
            }
            return ObjectView(object)
        } catch {
            writer?.abort()
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// An object opened for reading `range` of its plaintext: the PHI-read event is in the audit trail before
    /// this returns; the caller streams the chunks.
    public func openObject(
        _ request: RequestInfo, dataset id: DatasetID, name: String, range: ByteRange?
    ) async throws -> OpenedObject {
        let context = try datasetContext()
        let found = try await context.store.dataset(id: id)
        let subject = AuditRecorder.Subject(
            action: "dataset.object.read", resourceType: "dataset", resourceID: id.rawValue, tenant: found?.tenant)
        guard let dataset = found else {
            _ = try await authorize(request, .phiRead, in: .platform, subject)
            try await auditFailure(request, subject, Failure.notFound("dataset"))
            throw Failure.notFound("dataset \(id)")
        }
        let principal = try request.requirePrincipal()
        let (decision, purpose) = try await readAccess(principal, dataset)
        guard decision.allowed, !principal.mustChangePassword else {
            try await audit.record(request, subject, outcome: .denied)
            throw principal.mustChangePassword ? Failure.passwordChangeRequired : Failure.forbidden()
        }
        do {
            guard let object = try await context.store.object(dataset: id, name: name) else {
                throw Failure.notFound("object \(name.prefix(64)) in dataset \(id)")
            }
            let wanted = try range?.bounded(by: UInt64(object.plaintextBytes)) ?? 0..<UInt64(object.plaintextBytes)
            let (_, dataKey) = try await unwrapDataKey(request, dataset, why: "read")
            let reader = try ObjectReader(
                path: context.files.path(object.id, of: id, in: object.tier), dataKey: dataKey)
            var read = object
            read.lastReadAt = now
            let touched = read
            try await context.store.transaction { [audit] tx in
                try await tx.updateObject(touched)
                try await audit.record(
                    request,
                    .init(
                        action: "dataset.object.read", resourceType: "object", resourceID: object.id.rawValue,
                        tenant: dataset.tenant),
                    outcome: .success, breakGlass: decision.breakGlass,
                    details: .object([
                        "dataset": .string(id.rawValue), "from": .integer(Int64(wanted.lowerBound)),
                        "to": .integer(Int64(wanted.upperBound)),
                    ]), purpose: purpose)
            }
            return OpenedObject(object: ObjectView(touched), reader: reader, range: wanted)
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    // MARK: Keys

    /// Creates a new KEK version for a tenant and re-wraps every live data key under it, in one transaction;
    /// no object is touched.
    public func rotateKey(_ request: RequestInfo, tenant: TenantID) async throws -> KeyRotationView {
        let context = try datasetContext()
        let subject = AuditRecorder.Subject(
            action: "key.rotate", resourceType: "tenant", resourceID: tenant.rawValue, tenant: tenant)
        let decision = try await authorize(request, .keyManage, in: .tenant(tenant), subject)
        let started = ContinuousClock.now
        let now = self.now
        do {
            guard try await store.tenant(id: tenant) != nil else { throw Failure.notFound("tenant \(tenant)") }
            let (version, count) = try await context.store.transaction { [audit] tx in
                let keys = try await tx.tenantKeys(of: tenant)
                var keks: [Int: SymmetricKey] = [:]
                for key in keys {
                    keks[key.version] = try context.root.unwrapKEK(key.wrapped, tenant: tenant, version: key.version)
                }
                let version = (keys.last?.version ?? 0) + 1
                let kek = SymmetricKey(size: .bits256)
                try await tx.insertTenantKey(
                    TenantKeyRecord(
                        tenant: tenant, version: version,
                        wrapped: try context.root.wrapKEK(kek, tenant: tenant, version: version), createdAt: now))
                let dataKeys = try await tx.dataKeys(of: tenant)
                for var record in dataKeys {
                    guard let wrapped = record.wrapped, let old = keks[record.kekVersion] else {
                        throw CaduceusError(code: "keys.missing", message: "data key \(record.id) has no KEK")
                    }
                    let dataKey = try KeyWrap.unwrap(
                        wrapped, under: old,
                        aad: KeyWrap.dataKeyAAD(
                            tenant: tenant, dataset: record.dataset.rawValue, keyID: record.keyIDBytes,
                            kekVersion: record.kekVersion))
                    record.kekVersion = version
                    record.wrapped = try KeyWrap.wrap(
                        dataKey, under: kek,
                        aad: KeyWrap.dataKeyAAD(
                            tenant: tenant, dataset: record.dataset.rawValue, keyID: record.keyIDBytes,
                            kekVersion: version))
                    try await tx.updateDataKey(record)
                }
                try await audit.record(
                    request, subject, outcome: .success, breakGlass: decision.breakGlass,
                    details: .object([
                        "version": .integer(Int64(version)), "rewrapped": .integer(Int64(dataKeys.count)),
                    ]))
                return (version, dataKeys.count)
            }
            let elapsed = ContinuousClock.now - started
            return KeyRotationView(
                tenant: tenant, version: version, rewrapped: count,
                seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// A tenant's KEK versions and the data keys each wraps.
    public func keyStatus(_ request: RequestInfo, tenant: TenantID) async throws -> KeyStatusView {
        let context = try datasetContext()
        let subject = AuditRecorder.Subject(
            action: "key.status", resourceType: "tenant", resourceID: tenant.rawValue, tenant: tenant)
        let decision = try await authorize(request, .keyRead, in: .tenant(tenant), subject)
        let versions = try await context.store.tenantKeys(of: tenant)
        let dataKeys = try await context.store.dataKeys(of: tenant)
        try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
        return KeyStatusView(
            tenant: tenant,
            versions: versions.map { key in
                KeyStatusView.Version(
                    version: key.version, createdAt: key.createdAt,
                    dataKeys: dataKeys.filter { $0.kekVersion == key.version }.count,
                    current: key.version == versions.last?.version)
            }, dataKeys: dataKeys.count)
    }

    // MARK: Helpers

    func authorizeDataset(
        _ request: RequestInfo, _ id: DatasetID, _ action: String, _ permission: Permission
    ) async throws -> (DatasetRecord, AccessDecision, AuditRecorder.Subject) {
        guard let dataset = try await datasetContext().store.dataset(id: id) else {
            let subject = AuditRecorder.Subject(action: action, resourceType: "dataset", resourceID: id.rawValue)
            _ = try await authorize(request, permission, in: .platform, subject)
            try await auditFailure(request, subject, Failure.notFound("dataset"))
            throw Failure.notFound("dataset \(id)")
        }
        let subject = AuditRecorder.Subject(
            action: action, resourceType: "dataset", resourceID: id.rawValue, tenant: dataset.tenant)
        let decision = try await authorize(request, permission, in: .project(dataset.tenant, dataset.project), subject)
        return (dataset, decision, subject)
    }

    /// Unwraps a dataset's data key, auditing who, which dataset and why.
    func unwrapDataKey(
        _ request: RequestInfo, _ dataset: DatasetRecord, why: String, actor: (id: String, type: String)? = nil
    ) async throws -> (DataKeyRecord, SymmetricKey) {
        let context = try datasetContext()
        guard let record = try await context.store.dataKey(of: dataset.id), let wrapped = record.wrapped else {
            throw Failure.conflict("dataset \(dataset.id) has no data key (it was shredded)")
        }
        guard
            let kek = try await context.store.tenantKeys(of: dataset.tenant).first(where: {
                $0.version == record.kekVersion
            })
        else { throw CaduceusError(code: "keys.missing", message: "the KEK of dataset \(dataset.id) is missing") }
        let key = try KeyWrap.unwrap(
            wrapped, under: try context.root.unwrapKEK(kek.wrapped, tenant: dataset.tenant, version: kek.version),
            aad: KeyWrap.dataKeyAAD(
                tenant: dataset.tenant, dataset: dataset.id.rawValue, keyID: record.keyIDBytes,
                kekVersion: record.kekVersion))
        try await audit.record(
            request,
            .init(
                action: "key.unwrap", resourceType: "dataset", resourceID: dataset.id.rawValue, tenant: dataset.tenant),
            outcome: .success, actorOverride: actor,
            details: .object(["purpose": .string(why), "kekVersion": .integer(Int64(record.kekVersion))]))
        return (record, key)
    }

    /// The tenant's current KEK, creating version 1 on first use.
    static func currentKEK(
        of tenant: TenantID, _ tx: any DatasetStore, _ root: any RootKeyProvider, now: Timestamp
    ) async throws -> (Int, SymmetricKey) {
        if let current = try await tx.tenantKeys(of: tenant).last {
            return (current.version, try root.unwrapKEK(current.wrapped, tenant: tenant, version: current.version))
        }
        let kek = SymmetricKey(size: .bits256)
        try await tx.insertTenantKey(
            TenantKeyRecord(
                tenant: tenant, version: 1, wrapped: try root.wrapKEK(kek, tenant: tenant, version: 1), createdAt: now))
        return (1, kek)
    }

    /// The tenant's patient-index key (created on first use), which keys the hashes of patient identifiers.
    func patientIndexKey(of tenant: TenantID, _ context: DatasetSettings) async throws -> SymmetricKey {
        if let wrapped = try await context.store.patientIndexKey(of: tenant) {
            return try context.root.unwrapKEK(wrapped, tenant: tenant, version: 0)
        }
        let key = SymmetricKey(size: .bits256)
        // Version 0 of the tenant's root-wrapped keys is its index key (KEKs start at 1).
        try await context.store.setPatientIndexKey(
            try context.root.wrapKEK(key, tenant: tenant, version: 0), of: tenant)
        return key
    }

    static func patientHash(_ identifier: String, key: SymmetricKey) -> String {
        Hex.encode(HMAC<SHA256>.authenticationCode(for: Array(identifier.utf8), using: key))
    }
}

/// An object opened for reading: its metadata, the verified reader and the plaintext range to send.
public struct OpenedObject: Sendable {
    public var object: ObjectView
    public var reader: ObjectReader
    public var range: Range<UInt64>
}
