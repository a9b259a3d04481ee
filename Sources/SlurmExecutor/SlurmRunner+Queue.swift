import CaduceusCore
import ControlPlane
import Foundation
import Logging
import Scheduling
import Synchronization

/// Jobs waiting in Caduceus's queue, handed to Slurm ahead of placement: each is a held Slurm job (priority
/// 0, no node), which the launch releases onto the node and GPUs the scheduler chose.
extension SlurmRunner {
    /// Where a run's Slurm job stands before its launch sends it.
    enum Holding: Sendable, Equatable {
        /// Held in Slurm, waiting to be released.
        case held(Int)
        /// Already released or submitted (found by its name after an answer was lost).
        case submitted(Int)
        /// Slurm refused the held job (or none was found): the launch submits it anew.
        case refused
        /// slurmrestd did not answer: Slurm may or may not hold it; the launch looks for it by name.
        case uncertain
    }

    public func waiting(_ jobs: [WaitingRun]) async {
        guard settings.queueAhead > 0 else { return }
        do {
            try await inherit()
        } catch {
            logger.warning(
                "cannot list Slurm's held jobs; waiting jobs are not handed over", metadata: ["error": "\(error)"])
            return
        }
        let waiting = Set(jobs.map { $0.key })
        let (withdrawn, orphans) = state.withLock { state -> ([(LaunchKey, Task<Holding, Never>)], [Int]) in
            var withdrawn: [(LaunchKey, Task<Holding, Never>)] = []
            for (key, task) in state.queued where !waiting.contains(key) {
                withdrawn.append((key, task))
                state.queued[key] = nil
            }
            var orphans: [Int] = []
            for (key, id) in state.inherited ?? [:] where state.launches[key] == nil {
                // A launch of this run takes its held job when it sends it; a waiting run takes it now.
                state.inherited?[key] = nil
                if waiting.contains(key) && state.queued[key] == nil {
                    state.queued[key] = Task { .held(id) }
                } else {
                    orphans.append(id)
                }
            }
            var tenants: [TenantID: String] = [:]
            for node in state.served.values {
                if let tenant = node.tenant, let name = node.tenantName { tenants[tenant] = name }
            }
            for job in jobs where state.queued.count < settings.queueAhead {
                guard state.queued[job.key] == nil, state.launches[job.key] == nil, !state.ending.contains(job.key),
                    state.refusals[job.tenant] == nil, let tenantName = tenants[job.tenant]
                else { continue }
                let partition = partition(for: tenantName)
                state.queued[job.key] = Task { await self.hold(job, in: partition) }
            }
            return (withdrawn, orphans)
        }
        for (key, task) in withdrawn { Task { await self.withdraw(key, task) } }
        for id in orphans { Task { await self.cancelHeld(id) } }
    }

    /// Lists, once, the held Slurm jobs of Caduceus's in the partitions of the tenants this runner serves.
    func inherit() async throws {
        guard settings.queueAhead > 0 else { return }
        try await inheriting.withLock {
            guard state.withLock({ $0.inherited == nil }) else { return }
            let partitions = state.withLock { state in
                Set(state.served.values.compactMap { $0.tenantName.map(partition(for:)) })
            }
            var found: [LaunchKey: Int] = [:]
            var duplicates: [Int] = []
            for job in try await client.jobs() where job.isHeld && partitions.contains(job.partition ?? "") {
                guard let key = Self.launchKey(named: job.name ?? "") else { continue }
                if found[key] == nil { found[key] = job.job_id } else { duplicates.append(job.job_id) }
            }
            state.withLock { $0.inherited = found }
            if !found.isEmpty {
                logger.notice(
                    "found waiting jobs Slurm holds for Caduceus", metadata: ["jobs": "\(found.count)"])
            }
            for id in duplicates { await cancelHeld(id) }
        }
    }

    /// The run a Slurm job's name (`caduceus-<job>-<attempt>`) names.
    static func launchKey(named name: String) -> LaunchKey? {
        guard name.hasPrefix("caduceus-"), let dash = name.lastIndex(of: "-") else { return nil }
        let start = name.index(name.startIndex, offsetBy: "caduceus-".count)
        guard start < dash, let job = JobID(rawValue: String(name[start..<dash])),
            let attempt = Int(name[name.index(after: dash)...]), attempt >= 0
        else { return nil }
        return LaunchKey(job: job, attempt: attempt)
    }

    /// Hands a waiting run to Slurm, held.
    private func hold(_ run: WaitingRun, in partition: String) async -> Holding {
        do {
            let id = try await client.submit(try makeSubmission(run, partition: partition))
            logger.debug("handed to Slurm, held", metadata: ["job": "\(run.key)", "slurm": "\(id)"])
            return .held(id)
        } catch let error as CaduceusError where error.code == "slurm.unavailable" {
            return .uncertain
        } catch {
            logger.warning(
                "Slurm refused a waiting job; it is submitted when placed",
                metadata: ["job": "\(run.key)", "error": "\(error)"])
            return .refused
        }
    }

    /// Cancels the held Slurm job of a run that no longer waits and was not launched here (cancelled, or placed
    /// elsewhere).
    func withdraw(_ key: LaunchKey, _ task: Task<Holding, Never>) async {
        switch await task.value {
        case .held(let id), .submitted(let id):
            await cancelHeld(id)
        case .uncertain:
            let name = Self.jobNamePrefix(key.job) + String(key.attempt)
            do {
                for job in try await client.jobs() where job.name == name && job.isHeld { await cancelHeld(job.job_id) }
            } catch {
                logger.warning(
                    "cannot look for a withdrawn job in Slurm", metadata: ["job": "\(key)", "error": "\(error)"])
            }
        case .refused:
            break
        }
    }

    func cancelHeld(_ id: Int) async {
        do {
            try await client.cancel(id)
        } catch {
            logger.warning("cannot cancel a held Slurm job", metadata: ["slurm": "\(id)", "error": "\(error)"])
        }
    }

    /// Releases a run's held job onto its node and GPUs; when Slurm no longer holds it (cancelled by hand),
    /// the run is submitted anew.
    func releaseOrResubmit(_ held: Int, _ launch: JobLaunch, node: FleetNode) async throws -> Int {
        do {
            try await client.release(held, nodelist: node.name, gres: Self.gres(launch.gpus))
            return held
        } catch let error as CaduceusError where error.code == "slurm.error" {
            logger.warning(
                "Slurm would not release a held job; submitting it anew",
                metadata: ["job": "\(launch.key)", "slurm": "\(held)", "error": "\(error)"])
            await cancelHeld(held)
            return try await client.submit(
                try makeSubmission(launch.waitingRun, partition: try partition(of: node), on: node, gpus: launch.gpus))
        }
    }
}
