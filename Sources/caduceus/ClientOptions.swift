import ArgumentParser
import Foundation

/// Where the API is and how to talk to it: flags, then environment, then the login file.
struct ClientOptions: ParsableArguments {
    @Option(help: "The server URL (or CADUCEUS_SERVER, or the login file's).")
    var server: String?

    @Option(name: .customLong("ca-cert"), help: "The CA certificate that signed the server's certificate.")
    var caCertificate: String?

    @Option(help: "Output format: table or json.")
    var output: OutputFormat = .table

    /// A client with the session token from the environment or the login file.
    func client(requireToken: Bool = true) throws -> APIClient {
        let environment = ProcessInfo.processInfo.environment
        let saved = LoginFile.load()
        guard let server = server ?? environment["CADUCEUS_SERVER"] ?? saved?.server else {
            throw CLIError("no server: pass --server, set CADUCEUS_SERVER, or run caduceus login")
        }
        let token = environment["CADUCEUS_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } ?? saved?.token
        if requireToken && token == nil { throw CLIError("not logged in: run caduceus login (or set CADUCEUS_TOKEN)") }
        return try APIClient(server: server, token: token, caCertificate: caCertificate ?? saved?.caCertificate)
    }
}

/// Prints results as a table or as JSON.
enum Printer {
    static func json(_ data: Data) {
        if let object = try? JSONSerialization.jsonObject(with: data),
            let pretty = try? JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        {
            StandardStreams.write(Array(pretty) + [0x0A])
        } else {
            StandardStreams.write(Array(data) + [0x0A])
        }
    }

    /// Prints `rows` under `columns`, aligned.
    static func table(_ columns: [String], _ rows: [[String]]) {
        var widths = columns.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        StandardStreams.line(line(columns.map { $0.uppercased() }))
        for row in rows { StandardStreams.line(line(row)) }
    }

    /// Prints a reply in the chosen format; `table` turns the decoded value into rows.
    static func show(_ data: Data, _ format: OutputFormat, table: () throws -> ([String], [[String]])) rethrows {
        if format == .json {
            json(data)
        } else {
            let (columns, rows) = try table()
            Printer.table(columns, rows)
        }
    }
}
