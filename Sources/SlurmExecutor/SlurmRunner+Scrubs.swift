import CaduceusCore
import ControlPlane
import Foundation
import Logging
import Scheduling
import Synchronization

/// The records the Slurm epilog leaves in the spool, reported to the control plane to audit.
extension SlurmRunner {
    /// A record the epilog leaves: the Slurm job, the host, and `caduceus-gpu scrub`'s document.
    struct EpilogRecord: Decodable {
        struct Scrub: Decodable {
            struct GPU: Decodable {
                var index: Int
                var uuid: String
                var fake: Bool?
                var result: String?
                var failure: String?
                var bytesScrubbed: UInt64?
                var bytesVerified: UInt64?
                var seconds: Double?
            }
            var gpus: [GPU]
        }
        var slurmJobID: Int?
        var host: String
        var scrub: Scrub
    }

    /// Reports every scrub record the epilog left, then removes it.
    func collectScrubs() async {
        let folder = settings.spool + "/scrubs"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        guard let reporter = state.withLock({ $0.reporter }) else { return }
        for name in names.sorted() where name.hasSuffix(".json") {
            let path = folder + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            for report in scrubReports(from: data, file: name) { await reporter.scrubbed(report) }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    func scrubReports(from data: Data, file: String) -> [GPUScrubReport] {
        guard let record = try? JSONDecoder().decode(EpilogRecord.self, from: data) else {
            logger.error("an epilog scrub record cannot be read", metadata: ["file": "\(file)"])
            return []
        }
        guard let node = state.withLock({ $0.served.values.first { $0.name == record.host } }) else {
            logger.error(
                "an epilog scrub record names a node Caduceus does not know", metadata: ["host": "\(record.host)"])
            return []
        }
        return record.scrub.gpus.map { gpu in
            // The node's GPU at the same index is the one Caduceus knows (and audits) by its UUID.
            let known = node.gpus.first { $0.index == gpu.index }
            return GPUScrubReport(
                node: node.id, gpuUUID: known?.uuid ?? gpu.uuid, gpuIndex: gpu.index,
                bytesOverwritten: gpu.bytesScrubbed ?? 0, bytesVerified: gpu.bytesVerified ?? 0,
                seconds: gpu.seconds ?? 0, succeeded: gpu.result == "passed", failure: gpu.failure,
                fake: gpu.fake ?? false)
        }
    }
}
