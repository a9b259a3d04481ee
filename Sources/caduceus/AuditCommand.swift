import ArgumentParser
import AuditLog
import CaduceusCore

/// `caduceus audit …`: the tamper-evident audit trail, offline.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Append to, verify, prove and export the tamper-evident audit trail.",
        subcommands: [
            AuditInit.self, AuditAppend.self, AuditVerify.self, AuditProve.self, AuditCheckProof.self,
            AuditEntry.self, AuditExport.self, AuditPayload.self, AuditOpenNote.self,
        ]
    )
}

/// Where a log and its keys are.
struct LogLocation: ParsableArguments {
    @Option(name: .long, help: "The audit log directory (<data>/audit).")
    var log: String

    @Option(name: .customLong("key-dir"), help: "The directory of the audit keys (default: <log>/../keys).")
    var keyDirectory: String?

    var keys: String { keyDirectory ?? (parent(of: log) + "/keys") }

    private func parent(of path: String) -> String {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }
}

struct AuditInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Create an audit log and its keys; print the verifier key.")

    @OptionGroup var location: LogLocation

    @Option(help: "The log's origin (its unique name; also the signing key's name).")
    var origin: String = AuditDefaults.origin

    func run() async throws {
        let keys = try AuditKeys.loadOrCreate(directory: location.keys, origin: origin)
        let trail = try AuditTrail(directory: location.log, keys: keys)
        let checkpoint = try await trail.log.sync()
        try await trail.close()
        StandardStreams.line(keys.signer.verifierKey.vkey)
        StandardStreams.error(
            "audit log \(location.log) at size \(checkpoint.checkpoint.size); verifier key in "
                + "\(location.keys)/\(AuditKeys.verifierKeyFile)")
    }
}

enum AuditDefaults {
    static let origin = "caduceus.local/audit"
}
