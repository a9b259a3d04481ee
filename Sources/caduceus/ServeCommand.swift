import ArgumentParser
import CaduceusCore
import ControlPlane
import ControlPlaneHTTP
import EmbeddedAgent
import Foundation
import Logging

/// `caduceus serve`: the control plane, embedded mode, over HTTPS only.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the control plane (HTTPS API, database, audit trail) in this process.",
        discussion: """
            First start creates the data directory (0700) with the root key, the internal CA and server \
            certificate, the SQLite database, the audit log, and bootstrap-admin.json (0600) holding the first \
            administrator's one-time password and TOTP secret. Settings come from --config (JSON), then \
            CADUCEUS_* environment variables, then these flags.
            """
    )

    @Option(name: .customLong("data-dir"), help: "Data directory (default $HOME/.caduceus).")
    var dataDirectory: String?

    @Option(help: "HOST:PORT to listen on (default 127.0.0.1:8443).")
    var listen: String?

    @Option(help: "A JSON configuration file.")
    var config: String?

    @Option(
        name: .customLong("fake-gpus"),
        help: "Offer N host-memory stand-ins as this machine's GPUs (demonstrations and tests; shown as fake).")
    var fakeGPUs: Int?

    @Option(
        help: ArgumentHelp(
            "PostgreSQL URL instead of the embedded SQLite: postgres://user:password@host:port/db?sslmode=verify-full"
                + "&sslrootcert=FILE (the password may come from PGPASSWORD instead).",
            valueName: "url"))
    var database: String?

    @Option(help: "HOST:PORT of the node agents' listener (mutual TLS), or off (default 127.0.0.1:8444).")
    var agentListen: String?

    func run() async throws {
        // Everything the server creates is for its own user only.
        umask(0o077)
        var overrides: [String: String] = [:]
        if let dataDirectory { overrides["dataDirectory"] = dataDirectory }
        if let listen { overrides["listen"] = listen }
        if let fakeGPUs { overrides["fakeGPUs"] = String(fakeGPUs) }
        if let agentListen { overrides["agentListen"] = agentListen }
        if let database { overrides["databaseURL"] = database }
        let configuration = try ServerConfiguration.resolve(file: config, overrides: overrides)
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: .info) }
        let logger = Logger(label: "caduceus")
        let settings = EmbeddedAgent.Settings(
            dataDirectory: configuration.dataDirectory, fakeGPUs: configuration.fakeGPUs,
            residency: Residency(rawValue: configuration.localResidency) ?? Residency(rawValue: "US")!,
            nodeName: Self.nodeName(), graceSeconds: Double(configuration.stopGraceSeconds))
        let slurm = try SlurmSetup(configuration, logger: logger)
        let runner: CaduceusServer.RunnerFactory = { plane in
            var runners: [any JobRunner] = []
            if let local = try await EmbeddedAgent.start(plane: plane, settings: settings, logger: logger) {
                runners.append(local)
            }
            if let slurm { runners.append(slurm.runner(for: plane)) }
            return runners.count > 1 ? JobRunners(runners) : runners.first
        }
        do {
            try await CaduceusServer.run(
                configuration: configuration, logger: logger, runner: runner,
                moreReadiness: { slurm?.readiness() ?? [:] }, slurmStatus: { slurm?.status() },
                onAgentListener: { port in
                    StandardStreams.line(
                        "Node agents connect on port \(port) (mutual TLS; caduceus node join-token NODE)")
                }
            ) { started in
                var lines = [
                    "Caduceus is listening on \(started.url)",
                    "CA certificate: \(started.caCertificatePath)",
                    "CA SHA-256 fingerprint: \(started.caFingerprint)",
                ]
                if let file = started.bootstrapFile {
                    lines.append("First start: the bootstrap administrator's one-time credentials are in \(file)")
                    lines.append(
                        "Log in with: caduceus login --server \(started.url) --ca-cert \(started.caCertificatePath) --user admin"
                    )
                }
                StandardStreams.line(lines.joined(separator: "\n"))
            }
        } catch {
            await slurm?.shutdown()
            throw error
        }
        await slurm?.shutdown()
    }
}

extension ServeCommand {
    /// This machine's node name: its host name, as a fleet name.
    static func nodeName() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        let kept = host.filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        return kept.isEmpty ? "localhost" : String(kept.prefix(63))
    }
}

/// `caduceus config show`: the effective configuration, secrets masked.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Show the server's effective configuration.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the effective settings (file, environment, flags), with secrets masked.")

        @Option(help: "A JSON configuration file.")
        var config: String?

        @Option(name: .customLong("data-dir"), help: "Data directory.")
        var dataDirectory: String?

        @Option(help: "HOST:PORT to listen on.")
        var listen: String?

        @Option(help: "PostgreSQL URL (shown with its credentials masked).")
        var database: String?

        @Option(help: "Output format: table or json.")
        var output: OutputFormat = .table

        func run() async throws {
            var overrides: [String: String] = [:]
            if let dataDirectory { overrides["dataDirectory"] = dataDirectory }
            if let listen { overrides["listen"] = listen }
            if let database { overrides["databaseURL"] = database }
            let settings = try ServerConfiguration.resolve(file: config, overrides: overrides).describe()
            if output == .json {
                let body = settings.map { "\"\($0.0)\":\"\($0.1.replacingOccurrences(of: "\"", with: "\\\""))\"" }
                StandardStreams.line("{" + body.joined(separator: ",") + "}")
            } else {
                Printer.table(["setting", "value"], settings.map { [$0.0, $0.1] })
            }
        }
    }
}
