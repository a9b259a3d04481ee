import ArgumentParser

/// The Caduceus command line.
@main
struct Caduceus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caduceus",
        abstract: "A HIPAA-minded control plane for dedicated GPU clusters.",
        subcommands: [AuditCommand.self, BenchCommand.self]
    )
}
