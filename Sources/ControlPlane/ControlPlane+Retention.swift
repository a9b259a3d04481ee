import AuditLog
import CaduceusCore
import Crypto
import Foundation
import Identity
import Sealing

/// Retention, legal hold and crypto-shredding: nothing under retention or hold is deleted (the refusal names
/// the day it becomes deletable); after retention a dataset is shredded by destroying its wrapped data key
/// (the commit point: from then on no byte of it opens), then its files; a certificate of the shredding,
/// signed with the audit log's key, is kept and can be exported.
extension ControlPlane {
    /// Sets or clears a dataset's legal hold.
    public func setLegalHold(_ request: RequestInfo, _ id: DatasetID, hold: Bool) async throws -> DatasetView {
        let context = try datasetContext()
        let found = try await context.store.dataset(id: id)
        let subject = AuditRecorder.Subject(
            action: hold ? "dataset.hold.set" : "dataset.hold.clear", resourceType: "dataset", resourceID: id.rawValue,
            tenant: found?.tenant)
        let decision = try await authorize(
            request, .datasetGovern, in: found.map { .tenant($0.tenant) } ?? .platform, subject)
        do {
            guard var dataset = found else { throw Failure.notFound("dataset \(id)") }
            guard dataset.shreddedAt == nil else { throw Failure.conflict("dataset \(id) was shredded") }
            dataset.legalHold = hold
            let updated = dataset
            try await context.store.transaction { [audit] tx in
                try await tx.updateDataset(updated)
                try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
            }
            return DatasetView(updated, key: try await context.store.dataKey(of: id))
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// Deletes an object once its retention is over and no hold applies.
    public func deleteObject(_ request: RequestInfo, dataset id: DatasetID, name: String) async throws {
        let context = try datasetContext()
        let (dataset, decision, subject) = try await authorizeDataset(
            request, id, "dataset.object.delete", .datasetWrite)
        do {
            guard let object = try await context.store.object(dataset: id, name: name) else {
                throw Failure.notFound("object \(name.prefix(64)) in dataset \(id)")
            }
            try checkDeletable(dataset, until: Self.retainedUntil(object, of: dataset))
            try await context.store.transaction { [audit] tx in
                try await tx.deleteObject(object.id)
                try await audit.record(
                    request,
                    .init(
                        action: subject.action, resourceType: "object", resourceID: object.id.rawValue,
                        tenant: dataset.tenant),
                    outcome: .success, breakGlass: decision.breakGlass,
                    details: .object(["sha256": .string(object.sha256), "bytes": .integer(object.plaintextBytes)]))
            }
            unlink(context.files.path(object.id, of: id, in: object.tier))
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// Crypto-shreds a dataset whose retention is over: destroys its wrapped data key, removes its objects, and
    /// keeps a signed certificate; returns the certificate (a signed note).
    public func shredDataset(_ request: RequestInfo, _ id: DatasetID) async throws -> String {
        let context = try datasetContext()
        let found = try await context.store.dataset(id: id)
        let subject = AuditRecorder.Subject(
            action: "dataset.shred", resourceType: "dataset", resourceID: id.rawValue, tenant: found?.tenant)
        let decision = try await authorize(
            request, .datasetGovern, in: found.map { .tenant($0.tenant) } ?? .platform, subject)
        let principal = try request.requirePrincipal()
        do {
            guard var dataset = found else { throw Failure.notFound("dataset \(id)") }
            guard dataset.shreddedAt == nil else { throw Failure.conflict("dataset \(id) was shredded already") }
            var listed: [ObjectRecord] = []
            var cursor: String?
            repeat {
                let page = try await context.store.objects(of: id, after: cursor, limit: 500)
                listed += page.items
                cursor = page.next
            } while cursor != nil
            let objects = listed
            let until = objects.map { Self.retainedUntil($0, of: dataset) }.reduce(DatasetRules.retainedUntil(dataset))
            {
                max($0, $1)
            }
            try checkDeletable(dataset, until: until)
            guard var key = try await context.store.dataKey(of: id) else {
                throw CaduceusError(code: "keys.missing", message: "dataset \(id) has no data key")
            }
            let now = self.now
            dataset.shreddedAt = now
            key.wrapped = nil
            let shredded = dataset
            let destroyed = key
            var lines = [
                "caduceus shredding certificate v1", "dataset \(id)", "tenant \(dataset.tenant)",
                "project \(dataset.project)", "key \(key.id) destroyed", "time \(RFC3339.format(now))",
                "actor \(principal.id)", "objects \(objects.count)",
            ]
            lines += objects.map { "object \($0.id) sha256:\($0.sha256) \($0.plaintextBytes)" }
            let note = try context.certificateSigner.sign(lines.joined(separator: "\n") + "\n")
            try await context.store.transaction { [audit] tx in
                // The commit point: with the wrapped key gone, nothing of the dataset opens again.
                try await tx.updateDataKey(destroyed)
                try await tx.updateDataset(shredded)
                for object in objects { try await tx.deleteObject(object.id) }
                try await tx.saveShreddingCertificate(note, of: id)
                try await audit.record(
                    request, subject, outcome: .success, breakGlass: decision.breakGlass,
                    details: .object([
                        "key": .string(destroyed.id.rawValue), "objects": .integer(Int64(objects.count)),
                        "certificateSHA256": .string(Hex.encode(SHA256.hash(data: Array(note.utf8)))),
                    ]))
            }
            context.files.removeAll(of: id)
            return note
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// A shredded dataset's certificate (a signed note the audit verifier key checks).
    public func shreddingCertificate(_ request: RequestInfo, _ id: DatasetID) async throws -> String {
        let (_, decision, subject) = try await authorizeDataset(request, id, "dataset.certificate", .datasetRead)
        guard let note = try await datasetContext().store.shreddingCertificate(of: id) else {
            try await auditFailure(request, subject, Failure.notFound("certificate"))
            throw Failure.notFound("shredding certificate of dataset \(id) (it was not shredded)")
        }
        try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
        return note
    }

    /// Objects are kept for the retention period from their upload.
    static func retainedUntil(_ object: ObjectRecord, of dataset: DatasetRecord) -> Timestamp {
        var shifted = dataset
        shifted.createdAt = object.createdAt
        return DatasetRules.retainedUntil(shifted)
    }

    private func checkDeletable(_ dataset: DatasetRecord, until: Timestamp) throws {
        guard !dataset.legalHold else {
            throw Failure.conflict("dataset \(dataset.id) is under legal hold; nothing of it may be deleted")
        }
        guard now >= until else {
            throw Failure.conflict(
                "dataset \(dataset.id) is under retention until \(RFC3339.format(until)); it may be deleted from then")
        }
    }
}
