import AuditLog
import CaduceusCore
import Identity
import Logging
import Scheduling
import Synchronization

/// Jobs: researchers and services submit, read and cancel them in their projects; a job that could never
/// run is refused at submission with the reason, and `why` says in words why a job waits.
extension ControlPlane {
    /// Submits a job: validates it, refuses it if it could never run, queues it and runs a pass.
    public func submitJob(_ request: RequestInfo, _ input: SubmitJobRequest) async throws -> JobView {
        let id = JobID.generate()
        guard let project = try await store.project(id: input.project) else {
            let subject = AuditRecorder.Subject(action: "job.submit", resourceType: "job", resourceID: id.rawValue)
            _ = try request.requirePrincipal()
            try await auditFailure(request, subject, Failure.invalid("project"))
            throw Failure.invalid("project: no project \(input.project)")
        }
        var requested = input.spec(tenant: project.tenant)
        let subject = AuditRecorder.Subject(
            action: "job.submit", resourceType: "job", resourceID: id.rawValue, tenant: project.tenant)
        let decision = try await authorize(request, .jobSubmit, in: .project(project.tenant, project.id), subject)
        do {
            requested.residency = try await inputResidency(of: requested)
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
        let spec = requested
        let principal = try request.requirePrincipal()
        let record = JobRecord(id: id, spec: spec, state: .pending, submittedBy: principal.id, submittedAt: now)
        try await fleetChange(request, subject, decision: decision) { scheduler, tx in
            try spec.validate()
            if let reason = scheduler.infeasibility(of: record.queued) {
                throw CaduceusError(code: "job.infeasible", message: "the job can never run: \(reason)")
            }
            try await tx.insertJob(record)
            try scheduler.submit(record.queued)
        }
        await reschedule(after: request)
        return view(try await fleet.job(id: id) ?? record, for: principal)
    }

    /// Lists jobs of a project, of a tenant, or (platform-wide readers) of all, optionally in one state.
    public func listJobs(
        _ request: RequestInfo, project: ProjectID?, tenant: TenantID?, state: JobState?, after cursor: String?,
        limit: Int
    ) async throws -> ListResponse<JobView> {
        var scope: Scope = tenant.map { .tenant($0) } ?? .platform
        if let project {
            guard let record = try await store.project(id: project), tenant == nil || tenant == record.tenant else {
                _ = try request.requirePrincipal()
                let subject = AuditRecorder.Subject(action: "job.list", resourceType: "job", resourceID: "all")
                try await auditFailure(request, subject, Failure.invalid("project"))
                throw Failure.invalid("project: no project \(project)\(tenant.map { " in tenant \($0)" } ?? "")")
            }
            scope = .project(record.tenant, project)
        }
        let subject = AuditRecorder.Subject(
            action: "job.list", resourceType: "job", resourceID: "all", tenant: scope.tenant)
        let decision = try await authorize(request, .jobRead, in: scope, subject)
        let principal = try request.requirePrincipal()
        let filter = JobFilter(tenant: scope.tenant, project: project, state: state)
        return try await read(request, subject, decision: decision) { [fleet] _ in
            let page = try await fleet.jobs(matching: filter, after: cursor, limit: limit)
            return ListResponse(items: page.items.map { self.view($0, for: principal) }, next: page.next)
        }
    }

    /// Shows a job (its command, arguments and environment only to callers with `job.inspect`).
    public func showJob(_ request: RequestInfo, _ id: JobID) async throws -> JobView {
        let (job, decision, subject) = try await authorizeJob(request, id, "job.show", .jobRead)
        let principal = try request.requirePrincipal()
        return try await read(request, subject, decision: decision) { _ in self.view(job, for: principal) }
    }

    /// Cancels a job that has not ended, releasing its GPUs, and reschedules.
    public func cancelJob(_ request: RequestInfo, _ id: JobID) async throws -> JobView {
        let (_, decision, subject) = try await authorizeJob(request, id, "job.cancel", .jobCancel)
        let principal = try request.requirePrincipal()
        let job = try await fleetChange(request, subject, decision: decision) { [now] scheduler, tx in
            guard var job = try await tx.job(id: id) else { throw Failure.notFound("job \(id)") }
            guard !job.state.isFinal else {
                throw CaduceusError(code: "job.transition", message: "job \(id) has ended already (\(job.state))")
            }
            try SchedulingService.move(&job, to: .cancelled)
            scheduler.remove(job: id, at: now)
            job.assignments = []
            job.endedAt = now
            job.reason = "cancelled by \(principal.id)"
            try await tx.updateJob(job)
            return job
        }
        await reschedule(after: request)
        return view(job, for: principal)
    }

    /// A piece of a job's output (it may hold PHI: only its project's people and services read it, and every
    /// read is audited).
    public func jobLogs(
        _ request: RequestInfo, _ id: JobID, stderr: Bool, offset: Int, limit: Int
    ) async throws -> JobLogView {
        let (job, decision, subject) = try await authorizeJob(request, id, "job.logs", .jobInspect)
        guard offset >= 0, (1...1 << 20).contains(limit) else {
            try await auditFailure(request, subject, Failure.invalid("offset"))
            throw Failure.invalid("offset must be 0 or more and limit 1 to 1048576")
        }
        let runner = self.runner.withLock { $0 }
        return try await read(request, subject, decision: decision) { _ in
            // Sealed once the job ended; plain text before (a log being sealed is read again sealed).
            var chunk = try await self.readSealedLog(job, stderr: stderr, from: offset, limit: limit)
            if chunk == nil {
                chunk = await runner?.readLog(id, stderr: stderr, from: offset, limit: limit).map {
                    ($0.bytes, $0.size)
                }
            }
            if chunk == nil { chunk = try await self.readSealedLog(job, stderr: stderr, from: offset, limit: limit) }
            let bytes = chunk?.0 ?? []
            let size = chunk?.1 ?? 0
            let next = min(size, offset) + bytes.count
            return JobLogView(
                job: id, stream: stderr ? "stderr" : "stdout", offset: offset, nextOffset: next, size: size,
                text: String(decoding: bytes, as: UTF8.self), complete: job.state.isFinal && next >= size)
        }
    }

    /// Says why a job is where it is: for a waiting job, the scheduler's reason in plain words.
    public func whyJob(_ request: RequestInfo, _ id: JobID) async throws -> JobWhyView {
        let (job, decision, subject) = try await authorizeJob(request, id, "job.why", .jobRead)
        return try await read(request, subject, decision: decision) { [scheduling] _ in
            Self.why(job, try await scheduling.snapshot())
        }
    }

    static func why(_ job: JobRecord, _ scheduler: Scheduler) -> JobWhyView {
        var why = JobWhyView(job: job.id, state: job.state, pending: job.state == .pending, reason: "", detail: nil)
        switch job.state {
        case .pending:
            if let reason = scheduler.pendingReason(job.id) {
                why.reason = reason.description
                why.detail = reason
            } else {
                why.reason = "the scheduler has not considered this job yet; it will at its next pass"
            }
            if job.preemptions > 0, let last = job.reason {
                why.reason +=
                    " (it has lost its GPUs \(job.preemptions) time\(job.preemptions == 1 ? "" : "s"); "
                    + "last: \(last))"
            }
        case .placed, .running, .preempting:
            let nodes = job.assignments.map { "\($0.node) (GPUs \($0.gpus.map(String.init).joined(separator: ",")))" }
            why.reason = "the job is not waiting: it is \(job.state.rawValue) on \(nodes.joined(separator: ", "))"
        case .succeeded, .failed, .cancelled, .preempted:
            why.reason = "the job has ended: \(job.state.rawValue)" + (job.reason.map { " (\($0))" } ?? "")
        }
        return why
    }

    /// Loads a job and authorises `permission` in its project; an unknown job is a 404 after a platform check.
    private func authorizeJob(
        _ request: RequestInfo, _ id: JobID, _ action: String, _ permission: Permission
    ) async throws -> (JobRecord, AccessDecision, AuditRecorder.Subject) {
        guard let job = try await fleet.job(id: id) else {
            let subject = AuditRecorder.Subject(action: action, resourceType: "job", resourceID: id.rawValue)
            _ = try await authorize(request, permission, in: .platform, subject)
            try await auditFailure(request, subject, Failure.notFound("job"))
            throw Failure.notFound("job \(id)")
        }
        let subject = AuditRecorder.Subject(
            action: action, resourceType: "job", resourceID: id.rawValue, tenant: job.spec.tenant)
        let decision = try await authorize(
            request, permission, in: .project(job.spec.tenant, job.spec.project), subject)
        return (job, decision, subject)
    }

    /// The job as `principal` may see it: what it runs only with `job.inspect` in its project.
    func view(_ job: JobRecord, for principal: Principal) -> JobView {
        let scope = Scope.project(job.spec.tenant, job.spec.project)
        return JobView(job, inspect: AccessPolicy.decide(principal, .jobInspect, in: scope, at: now).allowed)
    }
}
