import AuditLog
import CaduceusCore
import Identity
import Logging
import Scheduling

/// Project quotas: tenant admins set them (`quota.manage`); the project's people and the tenant's admins
/// read them with what the project holds now (`quota.read`).
extension ControlPlane {
    /// Sets a project's guaranteed and maximum GPUs, and reschedules.
    public func setQuota(
        _ request: RequestInfo, project id: ProjectID, _ input: SetQuotaRequest
    ) async throws
        -> QuotaView
    {
        let project = try await knownProject(request, id, action: "quota.set", permission: .quotaManage)
        let subject = AuditRecorder.Subject(
            action: "quota.set", resourceType: "quota", resourceID: id.rawValue, tenant: project.tenant)
        let decision = try await authorize(request, .quotaManage, in: .project(project.tenant, id), subject)
        let by = request.principal?.id
        let view = try await fleetChange(request, subject, decision: decision) { [now] scheduler, tx in
            let quota = ProjectQuota(guaranteedGPUs: input.guaranteedGPUs, maximumGPUs: input.maximumGPUs)
            try quota.validate()
            let record = QuotaRecord(tenant: project.tenant, project: id, quota: quota, updatedAt: now, updatedBy: by)
            try await tx.setQuota(record)
            scheduler.setQuota(quota, tenant: project.tenant, project: id)
            return QuotaView(
                tenant: project.tenant, project: id, record: record,
                inUse: scheduler.usage(tenant: project.tenant, project: id).inUse)
        }
        await reschedule(after: request)
        return view
    }

    /// Shows a project's quota and the GPUs it holds now (no quota: no guarantee and no limit).
    public func showQuota(_ request: RequestInfo, project id: ProjectID) async throws -> QuotaView {
        let project = try await knownProject(request, id, action: "quota.show", permission: .quotaRead)
        let subject = AuditRecorder.Subject(
            action: "quota.show", resourceType: "quota", resourceID: id.rawValue, tenant: project.tenant)
        let decision = try await authorize(request, .quotaRead, in: .project(project.tenant, id), subject)
        return try await read(request, subject, decision: decision) { [fleet, scheduling] _ in
            let record = try await fleet.quota(project: id)
            let inUse = try await scheduling.snapshot().usage(tenant: project.tenant, project: id).inUse
            return QuotaView(tenant: project.tenant, project: id, record: record, inUse: inUse)
        }
    }

    /// Lists the quotas set in one tenant, or in all.
    public func listQuotas(
        _ request: RequestInfo, tenant: TenantID?, after cursor: String?, limit: Int
    ) async throws -> ListResponse<QuotaView> {
        let subject = AuditRecorder.Subject(
            action: "quota.list", resourceType: "quota", resourceID: "all", tenant: tenant)
        let decision = try await authorize(request, .quotaRead, in: tenant.map { .tenant($0) } ?? .platform, subject)
        return try await read(request, subject, decision: decision) { [fleet, scheduling] _ in
            let page = try await fleet.quotas(of: tenant, after: cursor, limit: limit)
            let scheduler = try await scheduling.snapshot()
            return ListResponse(
                items: page.items.map {
                    QuotaView(
                        tenant: $0.tenant, project: $0.project, record: $0,
                        inUse: scheduler.usage(tenant: $0.tenant, project: $0.project).inUse)
                }, next: page.next)
        }
    }

    /// The project, or — after checking the caller may act platform-wide and auditing — a 404.
    func knownProject(
        _ request: RequestInfo, _ id: ProjectID, action: String, permission: Permission
    ) async throws -> ProjectRecord {
        if let project = try await store.project(id: id) { return project }
        let subject = AuditRecorder.Subject(action: action, resourceType: "project", resourceID: id.rawValue)
        _ = try await authorize(request, permission, in: .platform, subject)
        try await auditFailure(request, subject, Failure.notFound("project"))
        throw Failure.notFound("project \(id)")
    }
}
