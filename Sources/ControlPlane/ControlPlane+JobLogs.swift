import AuditLog
import CaduceusCore
import Crypto
import Foundation
import Logging
import Scheduling
import Sealing
import Synchronization

/// Job logs at rest: plain text (0600, the job's own folder) while the job runs, so that it can be followed;
/// sealed once it has ended, under the data key of its project's `job-logs` dataset (created on first use,
/// classification phi), and the plain text overwritten and removed. Reading a sealed log unwraps that key,
/// which is audited like every unwrap.
extension ControlPlane {
    /// The name of the dataset whose key seals a project's job logs.
    static let jobLogsDataset = "job-logs"

    /// Seals the logs of an ended job (a job whose logs are sealed already, or that has none, is left alone).
    func sealJobLogs(_ id: JobID) async {
        guard let files = runner.withLock({ $0 })?.logFiles(of: id), datasetSettings.withLock({ $0 }) != nil else {
            return
        }
        do {
            guard let job = try await fleet.job(id: id), job.state.isFinal else { return }
            let present = [files.stdout, files.stderr].filter { FileManager.default.fileExists(atPath: $0) }
            guard !present.isEmpty else { return }
            let (record, key) = try await jobLogsKey(for: job, why: "seal job logs")
            for (index, path) in present.enumerated() {
                _ = try SealedFile.seal(
                    input: path, output: path + ".sealed", dataKey: key, keyID: record.keyIDBytes, keyVersion: 1,
                    context: "\(job.spec.tenant)/\(job.spec.project)/\(job.id)/\(index == 0 ? "stdout" : "stderr")")
                Self.overwriteAndRemove(path)
            }
        } catch {
            logger.error("cannot seal a job's logs", metadata: ["job": "\(id)", "error": "\(error)"])
        }
    }

    /// Up to `limit` bytes of a job's sealed log from `offset`, and its length; nil when it is not sealed.
    func readSealedLog(_ job: JobRecord, stderr: Bool, from offset: Int, limit: Int) async throws -> ([UInt8], Int)? {
        guard let files = runner.withLock({ $0 })?.logFiles(of: job.id) else { return nil }
        let path = (stderr ? files.stderr : files.stdout) + ".sealed"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let (_, key) = try await jobLogsKey(for: job, why: "read job logs")
        let reader = try ObjectReader(path: path, dataKey: key)
        let length = Int(reader.header.plaintextLength)
        let start = min(max(0, offset), length)
        let end = min(length, start + max(0, limit))
        guard start < end else { return ([], length) }
        var bytes: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: reader.header.plaintextPerChunk, alignment: 64)
        defer {
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            buffer.deallocate()
        }
        let per = reader.header.plaintextPerChunk
        for index in reader.chunks(covering: UInt64(start)..<UInt64(end)) {
            let count = reader.header.plaintextCount(ofChunk: index)
            try reader.read(chunk: index, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
            let from = max(start - index * per, 0)
            let to = min(end - index * per, count)
            if from < to { bytes += buffer[from..<to] }
        }
        return (bytes, length)
    }

    /// The data key of the job's project's `job-logs` dataset, creating the dataset on first use.
    private func jobLogsKey(for job: JobRecord, why: String) async throws -> (DataKeyRecord, SymmetricKey) {
        let context = try datasetContext()
        var dataset = try await context.store.datasets(
            tenant: job.spec.tenant, project: job.spec.project, after: nil, limit: 500
        ).items.first { $0.name == Self.jobLogsDataset }
        if dataset == nil {
            let record = DatasetRecord(
                id: .generate(), tenant: job.spec.tenant, project: job.spec.project, name: Self.jobLogsDataset,
                classification: .phi, residency: context.storageResidency, retentionYears: 6,
                lifecycle: LifecycleRule(), createdAt: now, createdBy: job.submittedBy)
            let now = self.now
            do {
                try await context.store.transaction { [audit] tx in
                    let (version, kek) = try await Self.currentKEK(of: job.spec.tenant, tx, context.root, now: now)
                    let keyID = DataKeyID.generate()
                    let dataKey = SymmetricKey(size: .bits256)
                    try await tx.insertDataset(record)
                    try await tx.insertDataKey(
                        DataKeyRecord(
                            id: keyID, tenant: job.spec.tenant, dataset: record.id, kekVersion: version,
                            wrapped: try KeyWrap.wrap(
                                dataKey, under: kek,
                                aad: KeyWrap.dataKeyAAD(
                                    tenant: job.spec.tenant, dataset: record.id.rawValue,
                                    keyID: Hex.decode(String(keyID.rawValue.dropFirst(3))) ?? [], kekVersion: version)),
                            createdAt: now))
                    try await audit.record(
                        RequestInfo(),
                        .init(
                            action: "dataset.create", resourceType: "dataset", resourceID: record.id.rawValue,
                            tenant: job.spec.tenant),
                        outcome: .success, actorOverride: (job.id.rawValue, "system"))
                }
                dataset = record
            } catch let error as CaduceusError where error.code == "store.conflict" {
                // Another job of the project created it at the same moment.
                dataset = try await context.store.datasets(
                    tenant: job.spec.tenant, project: job.spec.project, after: nil, limit: 500
                ).items.first { $0.name == Self.jobLogsDataset }
            }
        }
        guard let dataset else { throw CaduceusError(code: "keys.missing", message: "no job-logs dataset") }
        return try await unwrapDataKey(RequestInfo(), dataset, why: why, actor: (job.id.rawValue, "system"))
    }

    /// Overwrites a file with zeros, then removes it.
    static func overwriteAndRemove(_ path: String) {
        if let handle = FileHandle(forUpdatingAtPath: path) {
            let size = (try? handle.seekToEnd()) ?? 0
            try? handle.seek(toOffset: 0)
            var left = size
            let zeros = Data(count: 1 << 20)
            while left > 0 {
                let count = Int(min(UInt64(zeros.count), left))
                try? handle.write(contentsOf: zeros.prefix(count))
                left -= UInt64(count)
            }
            try? handle.synchronize()
            try? handle.close()
        }
        unlink(path)
    }
}
