import ArgumentParser
import ControlPlaneHTTP
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

    func run() async throws {
        // Everything the server creates is for its own user only.
        umask(0o077)
        var overrides: [String: String] = [:]
        if let dataDirectory { overrides["dataDirectory"] = dataDirectory }
        if let listen { overrides["listen"] = listen }
        let configuration = try ServerConfiguration.resolve(file: config, overrides: overrides)
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: .info) }
        let logger = Logger(label: "caduceus")
        try await CaduceusServer.run(configuration: configuration, logger: logger) { started in
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

        @Option(help: "Output format: table or json.")
        var output: OutputFormat = .table

        func run() async throws {
            var overrides: [String: String] = [:]
            if let dataDirectory { overrides["dataDirectory"] = dataDirectory }
            if let listen { overrides["listen"] = listen }
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
