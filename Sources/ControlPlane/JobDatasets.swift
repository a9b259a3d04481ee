import AuditLog
import CaduceusCore
import Scheduling
import Sealing

/// Where a runner gets the datasets a job reads.
protocol JobInputSource: Sendable {
    func inputs(of launch: JobLaunch) async throws -> [JobInput]
    func readInput(_ launch: JobLaunch, _ input: JobInput, sink: ([UInt8]) async throws -> Void) async throws
}

/// The datasets jobs read, opened by the control plane: only while the job runs, only datasets its spec
/// names and its project may still read (its own, or through a live grant), each read audited with the job
/// as its actor and the grant's purpose of use, before the first byte.
struct JobDatasets: JobInputSource {
    let plane: ControlPlane

    func inputs(of launch: JobLaunch) async throws -> [JobInput] {
        let (_, datasets) = try await plane.readableInputs(of: launch)
        var inputs: [JobInput] = []
        let store = try plane.datasetContext().store
        for (dataset, _) in datasets {
            var cursor: String?
            repeat {
                let page = try await store.objects(of: dataset.id, after: cursor, limit: 500)
                inputs += page.items.map {
                    JobInput(
                        dataset: dataset.id, datasetName: dataset.name, object: $0.id, name: $0.name,
                        bytes: $0.plaintextBytes)
                }
                cursor = page.next
            } while cursor != nil
        }
        return inputs
    }

    func readInput(_ launch: JobLaunch, _ input: JobInput, sink: ([UInt8]) async throws -> Void) async throws {
        let reader = try await plane.openJobInput(launch, input)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: reader.header.plaintextPerChunk, alignment: 64)
        defer {
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            buffer.deallocate()
        }
        for index in 0..<reader.header.chunkCount {
            let count = reader.header.plaintextCount(ofChunk: index)
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
            try reader.read(chunk: index, into: piece)
            try await sink(Array(piece))
        }
    }
}

extension ControlPlane {
    /// The job behind a launch and the datasets it may read now, with their purposes of use.
    func readableInputs(of launch: JobLaunch) async throws -> (JobRecord, [(DatasetRecord, String?)]) {
        guard let job = try await fleet.job(id: launch.key.job), job.state == .running,
            job.preemptions == launch.key.attempt
        else { throw CaduceusError(code: "job.inputs", message: "job \(launch.key) is not running") }
        let store = try datasetContext().store
        var datasets: [(DatasetRecord, String?)] = []
        for id in job.spec.datasets ?? [] {
            guard let dataset = try await store.dataset(id: id), dataset.shreddedAt == nil else {
                throw CaduceusError(code: "job.inputs", message: "dataset \(id) is gone")
            }
            let access = try await projectReads(job.spec.project, dataset)
            guard access.allowed else {
                throw CaduceusError(code: "job.inputs", message: "the grant to read dataset \(id) was revoked")
            }
            datasets.append((dataset, access.purpose))
        }
        return (job, datasets)
    }

    /// Opens an input of a running job, auditing the read (actor: the job; purpose: its grant's).
    func openJobInput(_ launch: JobLaunch, _ input: JobInput) async throws -> ObjectReader {
        let (job, datasets) = try await readableInputs(of: launch)
        guard let (dataset, purpose) = datasets.first(where: { $0.0.id == input.dataset }) else {
            throw CaduceusError(code: "job.inputs", message: "job \(job.id) does not read dataset \(input.dataset)")
        }
        let context = try datasetContext()
        guard let object = try await context.store.object(id: input.object), object.dataset == dataset.id else {
            throw CaduceusError(code: "job.inputs", message: "no object \(input.object) in dataset \(dataset.id)")
        }
        let request = RequestInfo()
        // The job reads as a system actor; the report names the person who submitted it.
        let actor = (id: job.id.rawValue, type: "system")
        let (_, dataKey) = try await unwrapDataKey(request, dataset, why: "job", actor: actor)
        let reader = try ObjectReader(
            path: context.files.path(object.id, of: dataset.id, in: object.tier), dataKey: dataKey)
        try await audit.record(
            request,
            .init(
                action: "dataset.object.read", resourceType: "object", resourceID: object.id.rawValue,
                tenant: dataset.tenant),
            outcome: .success, actorOverride: actor,
            details: .object([
                "dataset": .string(dataset.id.rawValue), "job": .string(job.id.rawValue),
                "submittedBy": .string(job.submittedBy.rawValue),
            ]), purpose: purpose)
        return reader
    }
}
