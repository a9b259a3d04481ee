import ArgumentParser
import AuditLog
import CaduceusCore

struct AuditExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export the audit trail as a FHIR R4 Bundle of AuditEvents (IHE BALP) or as JSON lines.",
        discussion: """
            Reads the entries covered by the log's checkpoint. With --vkey the whole log is verified \
            first and nothing is written unless it is sound.
            """
    )

    enum Format: String, ExpressibleByArgument {
        case fhir, jsonl
    }

    @Option(help: "The audit log directory.")
    var log: String

    @Option(help: "fhir (a FHIR R4 Bundle) or jsonl (one event per line, exactly as logged).")
    var format: Format

    @Option(help: "Verify the log with this verifier key before exporting.")
    var vkey: String?

    func run() async throws {
        let note = try readCheckpoint(log)
        let checkpoint: Checkpoint
        if let vkey {
            let key = try readVerifierKey(vkey)
            checkpoint = try await LogVerifier(directory: log, key: key).verify().checkpoint
        } else {
            checkpoint = try Checkpoint.readUnverified(note)
        }
        let reader = TileReader(directory: log, size: checkpoint.size, cacheLimit: 2)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        func flushIfFull() {
            if buffer.count >= 1 << 20 {
                StandardStreams.write(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        if format == .fhir {
            buffer += Array(
                "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"timestamp\":\"\(RFC3339.format(SystemWallClock().now()))\",\"entry\":["
                    .utf8)
        }
        var index: UInt64 = 0
        let bundles = (checkpoint.size + 255) / 256
        for bundle in 0..<bundles {
            for entry in try reader.entries(bundle: bundle) {
                switch format {
                case .jsonl:
                    buffer += entry
                    buffer.append(0x0A)
                case .fhir:
                    let event: AuditEvent
                    do {
                        event = try AuditEvent.decode(entry: entry)
                    } catch let error as CaduceusError {
                        throw CLIError("entry \(index): \(error.message)")
                    }
                    if index > 0 { buffer.append(UInt8(ascii: ",")) }
                    let resource = FHIRAuditExport.resource(for: event, index: index, origin: checkpoint.origin)
                    buffer += try CanonicalJSON.encode(FHIRAuditExport.bundleEntry(resource, id: event.id))
                }
                index += 1
                flushIfFull()
            }
        }
        if format == .fhir { buffer += Array("]}\n".utf8) }
        StandardStreams.write(buffer)
    }
}

struct AuditPayload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payload",
        abstract: "Print the sealed details payload an event commits to (needs the payload key).")

    @OptionGroup var location: LogLocation

    @Argument(help: "The commitment, sha256:<hex>, from the event's payload field.")
    var commitment: String

    @Flag(help: "Delete the payload instead (its retention has ended); the log stays verifiable.")
    var delete = false

    func run() async throws {
        let keys = try AuditKeys.load(directory: location.keys)
        let store = PayloadStore(directory: location.log + "/payloads", key: keys.payloadKey)
        if delete {
            try store.delete(commitment)
            StandardStreams.line("deleted \(commitment)")
            return
        }
        guard let payload = try store.get(commitment) else {
            throw CLIError("no payload \(commitment): deleted or never stored")
        }
        StandardStreams.write(payload + [0x0A])
    }
}
