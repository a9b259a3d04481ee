import AuditLog
import CaduceusCore
import Scheduling

extension SchedulingService {
    /// Persists and audits one decision of a pass.
    func apply(
        _ decision: Decision, scheduler: inout Scheduler, _ tx: any FleetStore, at now: Timestamp,
        request: RequestID?
    ) async throws {
        switch decision {
        case .pending:
            // Reasons stay in the scheduler's memory; `job why` reads them there.
            return
        case .preempt(let winner, let victims):
            for victim in victims {
                guard var job = try await tx.job(id: victim.job) else { continue }
                try Self.takeGPUs(
                    from: &job, requeue: victim.requeued, at: now,
                    reason: "preempted for job \(winner), which has a higher class or a guarantee to reclaim")
                try await tx.updateJob(job)
                try await record(victim.requeued ? "job.requeue" : "job.preempt", job: job, request: request)
            }
        case .place(let id, let assignments):
            guard var job = try await tx.job(id: id) else {
                throw CaduceusError(code: "store.corrupt", message: "the scheduler placed unknown job \(id)")
            }
            try Self.move(&job, to: .placed)
            job.assignments = assignments
            job.startedAt = now
            job.reason = nil
            try await tx.updateJob(job)
            for assignment in assignments {
                guard var node = try await tx.node(id: assignment.node) else { continue }
                // The node now holds this tenant's work: it must be sanitised before it serves another.
                guard node.lifecycle.heldWorkOf != job.spec.tenant else { continue }
                let jobs = scheduler.jobs(on: node.id).count
                _ = try node.lifecycle.handle(.workPlaced, jobsOnNode: jobs)
                try await tx.updateNode(node)
            }
            try await record("job.place", job: job, request: request)
        }
    }

    /// Moves every job off a node: training goes back to the queue, other work ends as preempted (or, when
    /// the node was lost, as failed).
    func evictWork(
        from node: NodeRecord, scheduler: inout Scheduler, _ tx: any FleetStore, at now: Timestamp,
        request: RequestID?, reason: String? = nil, lost: Bool = false
    ) async throws {
        for victim in scheduler.evict(node: node.id, at: now) {
            guard var job = try await tx.job(id: victim.job) else { continue }
            try Self.takeGPUs(
                from: &job, requeue: victim.requeued, at: now, reason: reason ?? "node \(node.name) was drained",
                endAs: lost ? .failed : .preempted)
            try await tx.updateJob(job)
            let ended = lost ? "job.fail" : "job.preempt"
            try await record(
                victim.requeued ? "job.requeue" : ended, job: job, request: request,
                outcome: victim.requeued || !lost ? .success : .error)
        }
    }

    /// A job loses its GPUs: back to pending (counted as a preemption) or ended as preempted.
    static func takeGPUs(
        from job: inout JobRecord, requeue: Bool, at now: Timestamp, reason: String, endAs: JobState = .preempted
    ) throws {
        try move(&job, to: requeue ? .pending : endAs)
        job.assignments = []
        job.preemptions += 1
        job.reason = requeue ? reason + "; requeued" : reason
        if requeue {
            job.startedAt = nil
        } else {
            job.endedAt = now
        }
    }

    /// Moves a job to `target`, through `preempting` where the job state machine asks for it.
    static func move(_ job: inout JobRecord, to target: JobState) throws {
        if job.state.canMove(to: target) {
            job.state = target
        } else if job.state.canMove(to: .preempting) && JobState.preempting.canMove(to: target) {
            job.state = target
        } else {
            throw CaduceusError(
                code: "job.transition", message: "job \(job.id) is \(job.state.rawValue) and cannot become \(target)")
        }
    }
}
