import AuditLog
import CaduceusCore
import CaduceusTesting
import ControlPlane
import Identity
import Scheduling
import Testing

struct JobTests {
    func refusal(_ body: () async throws -> Any) async -> CaduceusError? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error as? CaduceusError
        }
    }

    @Test("a job is placed at once; jobs that could never run are refused with the reason and never stored")
    func submitAndRefuse() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            _ = try await f.node("gpu-01")
            _ = try await f.node("gpu-02")
            let job = try await f.submit(.training, gpus: 8, nodes: 2)
            #expect(job.state == .placed)
            #expect(job.assignments.count == 2 && job.assignments.allSatisfy { $0.gpus == Array(0..<8) })

            let cases: [(SubmitJobRequest, String)] = [
                (
                    .init(project: f.project.id, jobClass: .training, gpusPerNode: 8, nodeCount: 3, command: "x"),
                    "3 nodes"
                ),
                (
                    .init(
                        project: f.project.id, jobClass: .training, gpusPerNode: 1, allowedModels: ["A100"],
                        command: "x"), "A100"
                ),
                (
                    .init(
                        project: f.project.id, jobClass: .training, gpusPerNode: 1,
                        residency: Residency(rawValue: "EU"), command: "x"), "residency EU"
                ),
            ]
            for (input, words) in cases {
                let error = await refusal { try await h.plane.submitJob(FleetFixture.again(f.researcher), input) }
                #expect(error?.code == "job.infeasible")
                #expect(error?.message.contains(words) == true, "\(error?.message ?? "")")
            }
            let invalid: [(SubmitJobRequest, String)] = [
                (.init(project: f.project.id, jobClass: .training, gpusPerNode: 0, command: "x"), "gpusPerNode"),
                (
                    .init(project: f.project.id, jobClass: .training, gpusPerNode: 1, nodeCount: -2, command: "x"),
                    "nodeCount"
                ),
                (
                    .init(
                        project: f.project.id, jobClass: .training, gpusPerNode: 1, allowedModels: ["H 200"],
                        command: "x"), "allowedModels"
                ),
                (.init(project: f.project.id, jobClass: .training, gpusPerNode: 1, command: ""), "command"),
                (
                    .init(
                        project: f.project.id, jobClass: .training, gpusPerNode: 1, command: "x", maxRuntimeSeconds: 10),
                    "maxRuntimeSeconds"
                ),
                (.init(project: .generate(), jobClass: .training, gpusPerNode: 1, command: "x"), "project"),
            ]
            for (input, field) in invalid {
                let error = await refusal { try await h.plane.submitJob(FleetFixture.again(f.researcher), input) }
                #expect(error?.message.hasPrefix(field + ":") == true, "\(error?.message ?? "accepted")")
            }
            let stored = try await h.plane.listJobs(
                f.researcher, project: f.project.id, tenant: nil, state: nil, after: nil, limit: 100)
            #expect(stored.items.map(\.id) == [job.id])
            let events = try await h.events()
            #expect(
                events.filter { $0.action == "job.submit" && $0.outcome == .error }.count == cases.count + invalid.count
            )
            #expect(
                events.contains {
                    $0.action == "job.place" && $0.actor.id == "scheduler" && $0.resource.id == job.id.rawValue
                })
        }
    }

    @Test("only the project's people see what a job runs; tenant admins set quotas, researchers cannot")
    func leastPrivilege() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            _ = try await f.node("gpu-01")
            let job = try await f.submit()
            #expect(try await h.plane.showJob(f.researcher, job.id).environment?["WANDB_API_KEY"] == "secret-value")
            let seenByAdmin = try await h.plane.showJob(f.admin, job.id)
            #expect(seenByAdmin.command == nil && seenByAdmin.environment == nil && seenByAdmin.arguments == nil)
            #expect(try await h.plane.showJob(f.tenantAdmin, job.id).command == nil)
            let outsider = try await h.userRequest(
                "olga", role: .researcher, scope: .project(f.tenant.id, f.otherProject.id), admin: f.admin)
            await #expect(throws: CaduceusError.self) { try await h.plane.showJob(outsider, job.id) }
            await #expect(throws: CaduceusError.self) { try await h.plane.cancelJob(outsider, job.id) }
            await #expect(throws: CaduceusError.self) {
                try await h.plane.setQuota(
                    f.researcher, project: f.project.id, SetQuotaRequest(guaranteedGPUs: 8, maximumGPUs: 8))
            }
            await #expect(throws: CaduceusError.self) { try await f.submit(as: f.tenantAdmin) }
            await #expect(throws: CaduceusError.self) { try await f.submit(as: f.admin) }
            let quota = try await h.plane.setQuota(
                f.tenantAdmin, project: f.project.id, SetQuotaRequest(guaranteedGPUs: 8, maximumGPUs: 16))
            #expect(quota.inUseGPUs == 8 && quota.maximumGPUs == 16)
            let error = await refusal {
                try await h.plane.setQuota(
                    FleetFixture.again(f.tenantAdmin), project: f.project.id,
                    SetQuotaRequest(guaranteedGPUs: 9, maximumGPUs: 4))
            }
            #expect(error?.code == "quota.invalid")
            #expect(try await h.plane.showQuota(f.researcher, project: f.project.id).guaranteedGPUs == 8)
        }
    }

    @Test("why: a borrowing job waits for GPUs reserved to another project's guarantee, in plain words")
    func borrowingVisibleThroughWhy() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            _ = try await f.node("gpu-01")
            _ = try await h.plane.setQuota(
                f.tenantAdmin, project: f.project.id, SetQuotaRequest(guaranteedGPUs: 2, maximumGPUs: 8))
            _ = try await h.plane.setQuota(
                FleetFixture.again(f.tenantAdmin), project: f.otherProject.id,
                SetQuotaRequest(guaranteedGPUs: 6, maximumGPUs: 8))
            let oncologist = try await h.userRequest(
                "omar", role: .researcher, scope: .project(f.tenant.id, f.otherProject.id), admin: f.admin)
            let first = try await f.submit(.batch, gpus: 4)
            #expect(first.state == .placed)
            let big = try await f.submit(.batch, gpus: 8, project: f.otherProject.id, as: oncologist)
            #expect(big.state == .pending)
            let borrower = try await f.submit(.batch, gpus: 2)
            #expect(borrower.state == .pending)
            let why = try await h.plane.whyJob(f.researcher, borrower.id)
            guard case .borrowingReserved(_, let inUse, let guaranteed, _, _, let reservedFor) = why.detail else {
                Issue.record("expected a borrowing reason, got \(why)")
                return
            }
            #expect(inUse == 4 && guaranteed == 2 && reservedFor == [f.otherProject.id])
            #expect(why.reason.contains("reserved for project \(f.otherProject.id)"))
            #expect(try await h.plane.whyJob(f.researcher, first.id).reason.contains("not waiting"))
            let bigWhy = try await h.plane.whyJob(oncologist, big.id)
            #expect(bigWhy.pending && bigWhy.reason.hasPrefix("waiting for 8 free GPUs on one node"))
        }
    }

    @Test("cancelling releases GPUs to the next job; a cancelled job cannot be cancelled again")
    func cancel() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            _ = try await f.node("gpu-01")
            let first = try await f.submit(.training, gpus: 8)
            let second = try await f.submit(.training, gpus: 8)
            #expect(second.state == .pending)
            let cancelled = try await h.plane.cancelJob(f.researcher, first.id)
            #expect(cancelled.state == .cancelled && cancelled.assignments.isEmpty && cancelled.endedAt != nil)
            #expect(try await h.plane.showJob(f.researcher, second.id).state == .placed)
            let again = await refusal { try await h.plane.cancelJob(FleetFixture.again(f.researcher), first.id) }
            #expect(again?.code == "job.transition")
            #expect(try await h.plane.whyJob(f.researcher, first.id).reason.hasPrefix("the job has ended: cancelled"))
        }
    }

    @Test("inference preempts training at once; the training job is requeued and says so")
    func preemption() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            _ = try await f.node("gpu-01")
            let training = try await f.submit(.training, gpus: 8)
            let inference = try await f.submit(.inference, gpus: 4)
            #expect(inference.state == .placed)
            let requeued = try await h.plane.showJob(f.researcher, training.id)
            #expect(requeued.state == .pending && requeued.preemptions == 1)
            let why = try await h.plane.whyJob(f.researcher, training.id)
            #expect(why.reason.contains("lost its GPUs 1 time"))
            #expect(
                try await h.events().contains { $0.action == "job.requeue" && $0.resource.id == training.id.rawValue })
        }
    }

    @Test("a restart rebuilds the scheduler from the store: placed jobs keep their GPUs, waiting jobs wait")
    func restartRebuilds() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            _ = try await f.node("gpu-01")
            let placed = try await f.submit(.training, gpus: 6)
            let waiting = try await f.submit(.training, gpus: 4)
            #expect(placed.state == .placed && waiting.state == .pending)

            let restarted = try h.restartedPlane()
            let before = try await restarted.whyJob(FleetFixture.again(f.researcher), waiting.id)
            #expect(before.reason.contains("not considered"))
            try await restarted.startScheduling()
            let after = try await restarted.whyJob(FleetFixture.again(f.researcher), waiting.id)
            #expect(after.pending && after.reason.contains("2 GPUs are free"), "\(after.reason)")
            // The restored job still holds its GPUs: a 2-GPU job fits beside it, another 4-GPU one does not.
            let small = try await restarted.submitJob(
                FleetFixture.again(f.researcher),
                SubmitJobRequest(project: f.project.id, jobClass: .training, gpusPerNode: 2, command: "x"))
            #expect(small.state == .placed && small.assignments.first?.gpus == [6, 7])
            _ = try await restarted.cancelJob(FleetFixture.again(f.researcher), placed.id)
            #expect(try await restarted.showJob(FleetFixture.again(f.researcher), waiting.id).state == .placed)
        }
    }
}
