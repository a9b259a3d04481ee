import CaduceusCore
import NodeAgent

/// The JSON that `probe` and `scrub` print.
enum Report {
    /// The driver version, each GPU, and why there are none when there are none.
    static func probe(_ inventory: GPUInventory) -> JSONText {
        .object([
            ("driverVersion", .string(inventory.driverVersion)),
            ("fake", .bool(inventory.fake)),
            ("reason", .string(inventory.gpus.isEmpty ? inventory.notes.first : nil)),
            ("notes", .array(inventory.notes.map { .string($0) })),
            ("gpus", .array(inventory.gpus.map(gpu))),
        ])
    }

    static func gpu(_ gpu: GPUInfo) -> JSONText {
        .object([
            ("index", .integer(Int64(gpu.index))),
            ("name", .string(gpu.name)),
            ("uuid", .string(gpu.uuid)),
            ("memoryBytes", .unsigned(gpu.memoryBytes)),
            ("mig", .string(gpu.mig.rawValue)),
            ("computeMode", .string(gpu.computeMode.rawValue)),
            ("ecc", .string(gpu.ecc.rawValue)),
            ("fake", .bool(gpu.fake)),
            ("offerable", .bool(gpu.isOfferable)),
            ("refusal", .string(gpu.refusal)),
        ])
    }

    /// Scrubs the chosen GPUs one after another, each after measuring its reference fill; prints the
    /// document and returns 1 if any scrub failed or a chosen GPU does not exist.
    static func scrub(_ backend: some GPUBackend, inventory: GPUInventory, options: Options) -> Int32 {
        var chosen = inventory.gpus
        var missing: [String] = []
        if !options.all {
            chosen = []
            for wanted in options.selected {
                if let gpu = inventory.gpus.first(where: { String($0.index) == wanted || $0.uuid == wanted }) {
                    chosen.append(gpu)
                } else {
                    missing.append("no GPU \(wanted)")
                }
            }
        }
        let scrubber = GPUScrubber(backend: backend, options: options.scrub)
        var results: [JSONText] = []
        var failed = !missing.isEmpty
        for gpu in chosen {
            var reference: Result<GPUFillReference, CaduceusError>?
            if options.reference {
                reference = Result { () throws(CaduceusError) in try scrubber.measureReferenceFill(gpu) }
            }
            let record = scrubber.scrub(gpu, node: options.node, reason: .requested)
            failed = failed || !record.passed
            results.append(self.record(record, name: gpu.name, reference: reference))
        }
        let document = JSONText.object([
            ("node", .string(options.node.rawValue)),
            ("driverVersion", .string(inventory.driverVersion)),
            ("fake", .bool(inventory.fake)),
            ("reason", .string(inventory.gpus.isEmpty ? inventory.notes.first : nil)),
            ("notes", .array((inventory.notes + missing).map { .string($0) })),
            ("gpus", .array(results)),
        ])
        writeOutput(document.document)
        return failed ? 1 : 0
    }

    static func record(
        _ record: GPUScrubRecord, name: String, reference: Result<GPUFillReference, CaduceusError>?
    )
        -> JSONText
    {
        let phases = record.phases
        let rate = gigabytesPerSecond(record.bytesOverwritten, phases.scrubMicroseconds)
        var members: [(String, JSONText)] = [
            ("index", .integer(Int64(record.gpuIndex))),
            ("uuid", .string(record.gpuUUID)),
            ("name", .string(name)),
            ("fake", .bool(record.fake)),
            ("result", .string(record.result.rawValue)),
            ("failure", .string(record.failure?.description)),
            ("bytesScrubbed", .unsigned(record.bytesOverwritten)),
            ("bytesVerified", .unsigned(record.bytesVerified)),
            ("deviceBytes", .unsigned(record.deviceBytes)),
            ("freeBytesBefore", .unsigned(record.freeBytesBefore)),
            ("blocks", .integer(Int64(record.blocks))),
            ("passes", .integer(Int64(record.passes))),
            ("seconds", .seconds(microseconds: phases.scrubMicroseconds)),
            ("gbPerSecond", .number(rate)),
            ("fillGbPerSecond", .number(gigabytesPerSecond(record.bytesOverwritten, phases.overwriteMicroseconds))),
            ("totalSeconds", .seconds(microseconds: record.durationMicroseconds)),
            (
                "phases",
                .object([
                    ("processCheckSeconds", .seconds(microseconds: phases.processCheckMicroseconds)),
                    ("setupSeconds", .seconds(microseconds: phases.setupMicroseconds)),
                    ("overwriteSeconds", .seconds(microseconds: phases.overwriteMicroseconds)),
                    ("verifySeconds", .seconds(microseconds: phases.verifyMicroseconds)),
                    ("releaseSeconds", .seconds(microseconds: phases.releaseMicroseconds)),
                ])
            ),
        ]
        switch reference {
        case .success(let fill)?:
            members.append(
                (
                    "reference",
                    .object([
                        ("what", .string("one cuMemsetD32 over the largest single allocation")),
                        ("bytes", .unsigned(fill.bytes)),
                        ("seconds", .seconds(microseconds: fill.microseconds)),
                        ("gbPerSecond", .number(fill.gigabytesPerSecond)),
                    ])
                ))
            members.append(
                ("ratioToReference", .number(fill.gigabytesPerSecond > 0 ? rate / fill.gigabytesPerSecond : 0)))
        case .failure(let error)?:
            members.append(("reference", .object([("failure", .string(error.description))])))
        case nil:
            break
        }
        return .object(members)
    }

    private static func gigabytesPerSecond(_ bytes: UInt64, _ microseconds: Int64) -> Double {
        microseconds > 0 ? Double(bytes) / Double(microseconds) / 1_000 : 0
    }
}
