import CaduceusCore
import SQLKit
import Scheduling

extension SQLFleetStore {
    // MARK: Quotas

    public func setQuota(_ quota: QuotaRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO quotas (project_id, tenant_id, guaranteed_gpus, maximum_gpus, updated_at, updated_by)
                VALUES (\(bind: quota.project.rawValue), \(bind: quota.tenant.rawValue),
                    \(bind: quota.quota.guaranteedGPUs), \(bind: quota.quota.maximumGPUs),
                    \(bind: quota.updatedAt.millisecondsSinceEpoch), \(bind: quota.updatedBy?.rawValue))
                ON CONFLICT (project_id) DO UPDATE SET guaranteed_gpus = excluded.guaranteed_gpus,
                    maximum_gpus = excluded.maximum_gpus, updated_at = excluded.updated_at,
                    updated_by = excluded.updated_by
                """
            ).run()
        }
    }

    public func quota(project: ProjectID) async throws -> QuotaRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM quotas WHERE project_id = \(bind: project.rawValue)").first()
                .map(Self.quota)
        }
    }

    public func quotas(of tenant: TenantID?, after cursor: String?, limit: Int) async throws -> Page<QuotaRecord> {
        try await run { db in
            let rows = try await db.raw(
                """
                SELECT * FROM quotas WHERE (\(bind: tenant?.rawValue) IS NULL OR tenant_id = \(bind: tenant?.rawValue))
                    AND project_id > \(bind: cursor ?? "") ORDER BY project_id LIMIT \(bind: limit + 1)
                """
            ).all().map(Self.quota)
            return SQLIdentityStore.page(rows, limit: limit, id: \.project.rawValue)
        }
    }

    public func allQuotas() async throws -> [QuotaRecord] {
        try await run { db in
            try await db.raw("SELECT * FROM quotas ORDER BY project_id").all().map(Self.quota)
        }
    }

    static func quota(_ row: any SQLRow) throws -> QuotaRecord {
        QuotaRecord(
            tenant: TenantID(unchecked: try row.decode(column: "tenant_id", as: String.self)),
            project: ProjectID(unchecked: try row.decode(column: "project_id", as: String.self)),
            quota: ProjectQuota(
                guaranteedGPUs: try row.decode(column: "guaranteed_gpus", as: Int.self),
                maximumGPUs: try row.decode(column: "maximum_gpus", as: Int.self)),
            updatedAt: try SQLIdentityStore.time(row, "updated_at"),
            updatedBy: try row.decode(column: "updated_by", as: String?.self).map(UserID.init(unchecked:)))
    }

    // MARK: Jobs

    public func insertJob(_ job: JobRecord) async throws {
        let spec = try SQLIdentityStore.json(job.spec)
        let assignments = try SQLIdentityStore.json(job.assignments)
        try await run { db in
            try await db.raw(
                """
                INSERT INTO jobs (id, tenant_id, project_id, spec, state, submitted_by, submitted_at, assignments,
                    started_at, ended_at, preemptions, reason)
                VALUES (\(bind: job.id.rawValue), \(bind: job.spec.tenant.rawValue), \(bind: job.spec.project.rawValue),
                    \(bind: spec), \(bind: job.state.rawValue), \(bind: job.submittedBy.rawValue),
                    \(bind: job.submittedAt.millisecondsSinceEpoch), \(bind: assignments),
                    \(bind: job.startedAt?.millisecondsSinceEpoch), \(bind: job.endedAt?.millisecondsSinceEpoch),
                    \(bind: job.preemptions), \(bind: job.reason))
                """
            ).run()
        }
    }

    public func updateJob(_ job: JobRecord) async throws {
        let assignments = try SQLIdentityStore.json(job.assignments)
        try await run { db in
            try await db.raw(
                """
                UPDATE jobs SET state = \(bind: job.state.rawValue), assignments = \(bind: assignments),
                    started_at = \(bind: job.startedAt?.millisecondsSinceEpoch),
                    ended_at = \(bind: job.endedAt?.millisecondsSinceEpoch), preemptions = \(bind: job.preemptions),
                    reason = \(bind: job.reason)
                WHERE id = \(bind: job.id.rawValue)
                """
            ).run()
        }
    }

    public func job(id: JobID) async throws -> JobRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM jobs WHERE id = \(bind: id.rawValue)").first().map(Self.job)
        }
    }

    public func jobs(matching filter: JobFilter, after cursor: String?, limit: Int) async throws -> Page<JobRecord> {
        let tenant = filter.tenant?.rawValue
        let project = filter.project?.rawValue
        let state = filter.state?.rawValue
        return try await run { db in
            let rows = try await db.raw(
                """
                SELECT * FROM jobs
                WHERE (\(bind: tenant) IS NULL OR tenant_id = \(bind: tenant))
                    AND (\(bind: project) IS NULL OR project_id = \(bind: project))
                    AND (\(bind: state) IS NULL OR state = \(bind: state))
                    AND id > \(bind: cursor ?? "") ORDER BY id LIMIT \(bind: limit + 1)
                """
            ).all().map(Self.job)
            return SQLIdentityStore.page(rows, limit: limit, id: \.id.rawValue)
        }
    }

    public func unfinishedJobs() async throws -> [JobRecord] {
        let final = JobState.allCases.filter(\.isFinal).map(\.rawValue)
        return try await run { db in
            try await db.raw(
                """
                SELECT * FROM jobs WHERE state NOT IN (\(binds: final)) ORDER BY submitted_at, id
                """
            ).all().map(Self.job)
        }
    }

    /// Job specs and placements as decoded before, by their stored text: the execution service reads every
    /// unfinished job after each change, and decoding them anew each time cost more than the change itself.
    static let specs = DecodedJSONCache<JobSpec>()
    static let assignments = DecodedJSONCache<[GPUAssignment]>()

    static func job(_ row: any SQLRow) throws -> JobRecord {
        let stateText = try row.decode(column: "state", as: String.self)
        guard let state = JobState(rawValue: stateText) else {
            throw CaduceusError(code: "store.corrupt", message: "job state '\(stateText)' is malformed")
        }
        return JobRecord(
            id: JobID(unchecked: try row.decode(column: "id", as: String.self)),
            spec: try specs.decode(row, "spec"), state: state,
            submittedBy: UserID(unchecked: try row.decode(column: "submitted_by", as: String.self)),
            submittedAt: try SQLIdentityStore.time(row, "submitted_at"),
            assignments: try assignments.decode(row, "assignments"),
            startedAt: try SQLIdentityStore.optionalTime(row, "started_at"),
            endedAt: try SQLIdentityStore.optionalTime(row, "ended_at"),
            preemptions: try row.decode(column: "preemptions", as: Int.self),
            reason: try row.decode(column: "reason", as: String?.self))
    }
}
