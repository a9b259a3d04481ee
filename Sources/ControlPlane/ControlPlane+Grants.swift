import AuditLog
import CaduceusCore
import Identity
import Scheduling
import Sealing

/// Grants: a dataset is read by its own project, and by another project of its tenant only through a grant
/// with a purpose of use, given by a tenant admin; every read through a grant carries its purpose into the
/// audit trail.
extension ControlPlane {
    /// Grants a project the reading of a dataset (tenant admins).
    public func createGrant(
        _ request: RequestInfo, _ id: DatasetID, _ input: CreateGrantRequest
    ) async throws -> GrantView {
        let context = try datasetContext()
        let dataset = try await context.store.dataset(id: id)
        let grantID = DatasetGrantID.generate()
        let subject = AuditRecorder.Subject(
            action: "dataset.grant", resourceType: "dataset", resourceID: id.rawValue, tenant: dataset?.tenant)
        let decision = try await authorize(
            request, .datasetGrant, in: dataset.map { .tenant($0.tenant) } ?? .platform, subject)
        let principal = try request.requirePrincipal()
        do {
            guard let dataset else { throw Failure.notFound("dataset \(id)") }
            guard CreateGrantRequest.purposes.contains(input.purpose) else {
                throw Failure.invalid("purpose: one of \(CreateGrantRequest.purposes.sorted().joined(separator: ", "))")
            }
            guard let project = try await store.project(id: input.project), project.tenant == dataset.tenant else {
                throw Failure.invalid("project: no project \(input.project) in tenant \(dataset.tenant)")
            }
            guard project.id != dataset.project else { throw Failure.invalid("project: it owns the dataset") }
            let grant = GrantRecord(
                id: grantID, dataset: id, tenant: dataset.tenant, project: project.id, purpose: input.purpose,
                approvedBy: principal.id, approvedAt: now)
            try await context.store.transaction { [audit] tx in
                try await tx.insertGrant(grant)
                try await audit.record(
                    request, subject, outcome: .success, breakGlass: decision.breakGlass,
                    details: .object([
                        "grant": .string(grantID.rawValue), "project": .string(project.id.rawValue),
                        "purpose": .string(input.purpose),
                    ]))
            }
            return GrantView(grant)
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// Ends a grant at once (tenant admins).
    public func revokeGrant(_ request: RequestInfo, _ id: DatasetGrantID) async throws -> GrantView {
        let context = try datasetContext()
        let grant = try await context.store.grant(id: id)
        let subject = AuditRecorder.Subject(
            action: "dataset.grant.revoke", resourceType: "grant", resourceID: id.rawValue, tenant: grant?.tenant)
        let decision = try await authorize(
            request, .datasetGrant, in: grant.map { .tenant($0.tenant) } ?? .platform, subject)
        do {
            guard var grant else { throw Failure.notFound("grant \(id)") }
            guard grant.revokedAt == nil else { throw Failure.conflict("grant \(id) was revoked already") }
            grant.revokedAt = now
            let revoked = grant
            try await context.store.transaction { [audit] tx in
                try await tx.updateGrant(revoked)
                try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
            }
            return GrantView(revoked)
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
    }

    /// A dataset's grants.
    public func listGrants(_ request: RequestInfo, _ id: DatasetID) async throws -> ListResponse<GrantView> {
        let (_, decision, subject) = try await authorizeDataset(request, id, "dataset.grant.list", .datasetRead)
        let grants = try await datasetContext().store.grants(of: id)
        try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
        return ListResponse(items: grants.map(GrantView.init), next: nil)
    }

    /// Whether `principal` may read `dataset`'s contents: in its own project, or in a project holding a live
    /// grant (whose purpose of use comes back).
    func readAccess(_ principal: Principal, _ dataset: DatasetRecord) async throws -> (AccessDecision, String?) {
        let permission: Permission = dataset.classification == .phi ? .phiRead : .datasetRead
        let own = AccessPolicy.decide(principal, permission, in: .project(dataset.tenant, dataset.project), at: now)
        if own.allowed { return (own, nil) }
        for grant in try await datasetContext().store.grants(of: dataset.id) where grant.revokedAt == nil {
            let granted = AccessPolicy.decide(
                principal, permission, in: .project(dataset.tenant, grant.project), at: now)
            if granted.allowed { return (granted, grant.purpose) }
        }
        return (own, nil)
    }

    /// The purpose under which `project` reads `dataset` (nil: its own), or nil when it may not.
    func projectReads(_ project: ProjectID, _ dataset: DatasetRecord) async throws -> (allowed: Bool, purpose: String?)
    {
        if dataset.project == project { return (true, nil) }
        let grant = try await datasetContext().store.grants(of: dataset.id).first {
            $0.project == project && $0.revokedAt == nil
        }
        return (grant != nil, grant?.purpose)
    }

    /// The residency a job must run in for the datasets it reads (each must be readable by its project, and
    /// all of one residency, which an explicit residency must match).
    func inputResidency(of spec: JobSpec) async throws -> Residency? {
        guard let ids = spec.datasets, !ids.isEmpty else { return spec.residency }
        guard ids.count <= 64, Set(ids).count == ids.count else {
            throw Failure.invalid("datasets: up to 64, each once")
        }
        let context = try datasetContext()
        var residency = spec.residency
        for id in ids {
            guard let dataset = try await context.store.dataset(id: id), dataset.tenant == spec.tenant,
                dataset.shreddedAt == nil
            else { throw Failure.invalid("datasets: no dataset \(id) in this tenant") }
            guard try await projectReads(spec.project, dataset).allowed else {
                throw Failure.forbidden("project \(spec.project) holds no grant to read dataset \(id)")
            }
            guard residency == nil || residency == dataset.residency else {
                throw Failure.invalid(
                    "datasets: dataset \(id) resides in \(dataset.residency.rawValue); the job must run there")
            }
            residency = dataset.residency
        }
        return residency
    }
}
