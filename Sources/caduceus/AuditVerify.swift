import ArgumentParser
import AuditLog
import CaduceusCore

struct AuditVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify an audit log offline: every entry, tile and the signed checkpoint.",
        discussion: """
            Recomputes every leaf from the entry bundles and every hash of every tile, checks the \
            checkpoint's signature with the verifier key and, with --trusted, that the log extends that \
            earlier checkpoint. Exits 0 when the log is sound, 1 naming the first bad entry or file otherwise.
            """
    )

    @Option(help: "The audit log directory.")
    var log: String

    @Option(help: "The log's verifier key (vkey text form).")
    var vkey: String

    @Option(help: "A checkpoint trusted earlier; the log must be consistent with it.")
    var trusted: String?

    @Option(help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() async throws {
        let key = try readVerifierKey(vkey)
        let trustedNote = try trusted.map { try StandardStreams.readInput($0) }
        let verifier = LogVerifier(directory: log, key: key)
        let start = ContinuousClock.now
        let report = try await verifier.verify(trusted: trustedNote)
        let seconds = (ContinuousClock.now - start).seconds
        switch output {
        case .json:
            StandardStreams.line(
                "{\"entries\":\(report.entries),\"hashes\":\(report.hashes),\"origin\":\"\(report.checkpoint.origin)\","
                    + "\"root\":\"\(report.checkpoint.root.base64)\",\"seconds\":\(seconds),\"size\":\(report.checkpoint.size),"
                    + "\"verified\":true}")
        case .table, .text:
            StandardStreams.line(
                "verified: \(report.checkpoint.origin) size \(report.checkpoint.size) root \(report.checkpoint.root.base64)"
                    + (trusted == nil ? "" : ", consistent with the trusted checkpoint"))
        }
    }
}

/// How a command prints its result.
enum OutputFormat: String, ExpressibleByArgument, Sendable {
    case text, table, json
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

struct AuditProve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prove",
        abstract: "Write a c2sp.org/tlog-proof@v1 inclusion proof for one entry to standard output.")

    @Option(help: "The audit log directory.")
    var log: String

    @Option(help: "The entry's index.")
    var index: UInt64

    func run() async throws {
        let note = try readCheckpoint(log)
        let checkpoint = try Checkpoint.readUnverified(note)
        guard index < checkpoint.size else {
            throw CLIError("index \(index) is not in the log (its checkpoint has \(checkpoint.size) entries)")
        }
        let reader = TileReader(directory: log, size: checkpoint.size)
        let path = try MerkleProof.inclusionPath(index: index, size: checkpoint.size, reader: reader)
        StandardStreams.write(TlogProof(index: index, hashes: path, checkpoint: note).text)
    }
}

/// Reads a `vkey` file.
func readVerifierKey(_ path: String) throws -> NoteVerifierKey {
    try NoteVerifierKey(vkey: String(decoding: try StandardStreams.readInput(path), as: UTF8.self))
}

func readCheckpoint(_ log: String) throws -> [UInt8] {
    do {
        return try StandardStreams.readInput(log + "/checkpoint")
    } catch {
        throw CLIError("\(log) is not an audit log: \(error)")
    }
}

struct AuditCheckProof: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-proof",
        abstract: "Check a tlog-proof for an entry offline, with the log's verifier key.")

    @Option(help: "The log's verifier key (vkey text form).")
    var vkey: String

    @Option(help: "A file holding the entry's exact bytes (as `audit entry` writes them).")
    var entry: String

    @Argument(help: "The proof file.")
    var proof: String

    func run() async throws {
        let key = try readVerifierKey(vkey)
        let parsed = try TlogProof(text: try StandardStreams.readInput(proof))
        var bytes = try StandardStreams.readInput(entry)
        let checkpoint: Checkpoint
        do {
            checkpoint = try parsed.verify(entry: bytes, key: key)
        } catch  where bytes.last == 0x0A {
            bytes.removeLast()
            checkpoint = try parsed.verify(entry: bytes, key: key)
        }
        StandardStreams.line("proof ok: entry \(parsed.index) is in \(checkpoint.origin) at size \(checkpoint.size)")
    }
}

struct AuditEntry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "entry", abstract: "Write one entry's exact bytes to standard output.")

    @Option(help: "The audit log directory.")
    var log: String

    @Option(help: "The entry's index.")
    var index: UInt64

    func run() async throws {
        let checkpoint = try Checkpoint.readUnverified(try readCheckpoint(log))
        StandardStreams.write(try TileReader(directory: log, size: checkpoint.size).entry(at: index))
    }
}

/// `caduceus audit open-note`: checks a signed note (a checkpoint, a shredding certificate) offline.
struct AuditOpenNote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open-note",
        abstract: "Check a signed note (e.g. a shredding certificate) against the log's verifier key; print its text.")

    @Option(help: "The verifier key file (audit.vkey).") var vkey: String
    @Argument(help: "The signed note (a file, or - for standard input).") var note: String

    func run() async throws {
        let key = try readVerifierKey(vkey)
        do {
            StandardStreams.write(Array(try key.open(try StandardStreams.readInput(note)).utf8))
        } catch {
            throw CLIError("the note does not verify with \(vkey): \(error)")
        }
    }
}
