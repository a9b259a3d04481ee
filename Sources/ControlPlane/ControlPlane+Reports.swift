import AuditLog
import CaduceusCore
import Foundation
import Identity
import Scheduling
import Sealing

extension ControlPlane {
    /// The actions that touch a dataset object's contents.
    static let objectAccessActions: Set<String> = ["dataset.object.upload", "dataset.object.read"]

    /// Every access to objects declared to hold a patient, from the audit trail, which is verified first
    /// (every entry up to its newest checkpoint, against the log's verifier key) and is the only source.
    public func phiAccessReport(_ request: RequestInfo, _ input: PHIAccessReportRequest) async throws -> PHIAccessReport
    {
        let context = try datasetContext()
        let subject = AuditRecorder.Subject(
            action: "report.phi-access", resourceType: "tenant", resourceID: input.tenant.rawValue, tenant: input.tenant
        )
        let decision = try await authorize(request, .auditRead, in: .tenant(input.tenant), subject)
        do {
            let patient = DatasetRules.normalisedPatient(input.patient)
            guard (1...64).contains(patient.utf8.count) else { throw Failure.invalid("patient: 1 to 64 characters") }
            let from = try input.from.map { text in
                guard let time = RFC3339.parse(text) else { throw Failure.invalid("from: not an RFC 3339 time") }
                return time
            }
            let to = try input.to.map { text in
                guard let time = RFC3339.parse(text) else { throw Failure.invalid("to: not an RFC 3339 time") }
                return time
            }
            let key = try await patientIndexKey(of: input.tenant, context)
            let objects = try await context.store.objects(
                tenant: input.tenant, patientHash: Self.patientHash(patient, key: key))
            let names = Dictionary(uniqueKeysWithValues: objects.map { ($0.id.rawValue, $0) })
            guard let trail = audit.trail else {
                throw Failure.auditUnavailable(
                    CaduceusError(
                        code: "audit.notHere", message: "the audit log is read where it is sequenced: the leader"))
            }
            try await trail.log.sync()
            let verified = try await LogVerifier(directory: context.auditDirectory, key: context.auditVerifierKey)
                .verify()
            var accesses: [PHIAccessReport.Access] = []
            if !names.isEmpty {
                let reader = TileReader(
                    directory: context.auditDirectory, size: verified.checkpoint.size, cacheLimit: 2)
                let decoder = JSONDecoder()
                var index: UInt64 = 0
                for bundle in 0..<((verified.checkpoint.size + 255) / 256) {
                    for entry in try reader.entries(bundle: bundle) {
                        defer { index += 1 }
                        guard let event = try? decoder.decode(AuditEvent.self, from: Data(entry)),
                            event.resource.type == "object", let object = names[event.resource.id],
                            Self.objectAccessActions.contains(event.action), let time = RFC3339.parse(event.time)
                        else { continue }
                        if let from, time < from { continue }
                        if let to, to < time { continue }
                        accesses.append(
                            PHIAccessReport.Access(
                                time: time, actor: event.actor.id, actorType: event.actor.type,
                                onBehalfOf: try await submitter(of: event.actor.id), action: event.action,
                                dataset: object.dataset, object: object.id, objectName: object.name,
                                purpose: event.purposeOfUse, outcome: event.outcome.rawValue,
                                breakGlass: event.breakGlass, sourceAddress: event.sourceAddress,
                                requestId: event.requestId, logIndex: index))
                    }
                }
            }
            try await audit.record(
                request, subject, outcome: .success, breakGlass: decision.breakGlass,
                details: .object([
                    "objects": .integer(Int64(objects.count)), "accesses": .integer(Int64(accesses.count)),
                ]))
            return PHIAccessReport(
                tenant: input.tenant, generatedAt: now, objects: objects.map(\.id),
                logSize: verified.checkpoint.size, logRootHash: verified.checkpoint.root.base64, accesses: accesses)
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// The person who submitted a job, when `actor` is a job.
    private func submitter(of actor: String) async throws -> UserID? {
        guard let job = JobID(rawValue: actor) else { return nil }
        return try await fleet.job(id: job)?.submittedBy
    }
}
