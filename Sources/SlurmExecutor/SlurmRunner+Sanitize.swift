import CaduceusCore
import ControlPlane
import Foundation
import Logging
import Scheduling
import Synchronization

extension SlurmRunner {
    /// Sanitises a Slurm node between tenants: one exclusive Slurm job on it, holding every GPU, scrubs them
    /// all with `caduceus-gpu scrub --all` and erases the node's Caduceus scratch; its record comes back
    /// through the spool. Returns nil while that job runs (it is submitted once), then the result.
    func sanitize(_ node: FleetNode, reporter: any JobReporter) async -> NodeSanitization? {
        let record = settings.spool + "/sanitize/\(node.id.rawValue).json"
        do {
            if let id = state.withLock({ $0.sanitizing[node.id] }) {
                let job = try await client.job(id)
                guard job == nil || Self.isFinal(job?.job_state ?? "") else { return nil }
                state.withLock { _ = $0.sanitizing.removeValue(forKey: node.id) }
                return await sanitized(node, record: record, slurmState: job?.job_state, reporter: reporter)
            }
            try? FileManager.default.removeItem(atPath: record)
            guard let partition = node.tenantName.map(partition(for:)) ?? settings.partitions.values.first else {
                return nil
            }
            let scrub =
                ([settings.gpuProgram, "scrub", "--all", "--no-reference", "--node", node.id.rawValue]
                + settings.gpuOptions)
                .map(Self.shellQuoted).joined(separator: " ")
            let script = """
                #!/bin/sh
                # Caduceus: sanitise node \(node.name) (\(node.id.rawValue)) before it changes tenant.
                \(scrub) > \(Self.shellQuoted(record + ".partial"))
                status=$?
                mv \(Self.shellQuoted(record + ".partial")) \(Self.shellQuoted(record))
                exit $status
                """
            let logs = settings.spool + "/sanitize"
            let gres = node.gpus.first.map { "gpu:\($0.model.lowercased()):\(node.gpus.count)" }
            let id = try await client.submit(
                SlurmSubmission(
                    script: script,
                    job: .init(
                        name: "caduceus-sanitize-\(node.id.rawValue)", partition: partition, nodelist: node.name,
                        gres: gres, environment: ["PATH": "/usr/local/bin:/usr/bin:/bin"],
                        current_working_directory: logs, standard_output: logs + "/\(node.id.rawValue).out",
                        standard_error: logs + "/\(node.id.rawValue).err", time_limit: 60, requeue: false)))
            state.withLock { $0.sanitizing[node.id] = id }
            logger.info("sanitising a Slurm node", metadata: ["node": "\(node.name)", "slurm": "\(id)"])
        } catch {
            logger.error("cannot sanitise a Slurm node", metadata: ["node": "\(node.name)", "error": "\(error)"])
        }
        return nil
    }

    private func sanitized(
        _ node: FleetNode, record: String, slurmState: String?, reporter: any JobReporter
    ) async -> NodeSanitization? {
        guard let data = FileManager.default.contents(atPath: record) else {
            logger.error(
                "a sanitising job left no scrub record; it will run again",
                metadata: ["node": "\(node.name)", "state": "\(slurmState ?? "gone")"])
            return nil
        }
        let document =
            "{\"host\":\(Self.jsonString(node.name)),\"scrub\":" + String(decoding: data, as: UTF8.self) + "}"
        let scrubs = scrubReports(from: Data(document.utf8), file: record)
        for scrub in scrubs { await reporter.scrubbed(scrub) }
        let scratch = settings.spool + "/scratch"
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? []
        let running = state.withLock { Set($0.launches.keys.map(\.job.rawValue)) }
        var erased = 0
        for folder in leftovers where !running.contains(folder) {
            if (try? FileManager.default.removeItem(atPath: scratch + "/" + folder)) != nil { erased += 1 }
        }
        let covered = Set(scrubs.map(\.gpuIndex)) == Set(node.gpus.map(\.index))
        return NodeSanitization(
            scrubs: scrubs, scratchFilesErased: erased,
            succeeded: covered && !scrubs.isEmpty && scrubs.allSatisfy(\.succeeded))
    }

    static func jsonString(_ text: String) -> String {
        String(decoding: (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
    }
}
