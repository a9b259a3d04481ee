import ArgumentParser
import AuditLog
import CaduceusCore
import Foundation

struct AuditAppend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append JSON audit events read from standard input, one per line.",
        discussion: """
            Each line is an audit event object (actor, action, resource, outcome, …); `id`, `time` and \
            `version` are filled in when absent, and a `details` object is sealed in the payload store and \
            committed to by the event. Each durably appended event prints {"id":…,"index":…}. Without \
            --stream every line is checked before any is appended; with it, lines are appended as they \
            are read, up to --concurrency at a time.
            """
    )

    @OptionGroup var location: LogLocation

    @Option(help: "The log's origin when the log is created.")
    var origin: String = AuditDefaults.origin

    @Flag(help: "Append each line as soon as it is read.")
    var stream = false

    @Option(help: "Appends in flight at once.")
    var concurrency: Int = 64

    func run() async throws {
        let keys = try AuditKeys.loadOrCreate(directory: location.keys, origin: origin)
        if stream {
            let trail = try AuditTrail(directory: location.log, keys: keys)
            var failure: (any Error)?
            var lineNumber = 0
            try await withThrowingTaskGroup(of: String.self) { group in
                var inFlight = 0
                while let line = readLine(strippingNewline: true) {
                    lineNumber += 1
                    if line.isEmpty { continue }
                    let input: EventInput
                    do {
                        input = try EventInput(line: line, number: lineNumber)
                    } catch {
                        failure = error
                        break
                    }
                    if inFlight >= concurrency {
                        StandardStreams.line(try await group.next()!)
                        inFlight -= 1
                    }
                    group.addTask { try await input.record(in: trail) }
                    inFlight += 1
                }
                for try await ack in group { StandardStreams.line(ack) }
            }
            try await trail.close()
            if let failure { throw failure }
            return
        }
        let text = String(decoding: try StandardStreams.readInput("-"), as: UTF8.self)
        var inputs: [EventInput] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy(\.isWhitespace) {
            inputs.append(try EventInput(line: String(line), number: number + 1))
        }
        let trail = try AuditTrail(directory: location.log, keys: keys)
        do {
            for input in inputs { StandardStreams.line(try await input.record(in: trail)) }
        } catch {
            try? await trail.close()
            throw error
        }
        try await trail.close()
    }
}

/// One line of `audit append` input, checked.
struct EventInput: Sendable {
    var event: AuditEvent
    var details: JSONValue?

    init(line: String, number: Int) throws {
        do {
            guard case .object(var fields) = try CanonicalJSON.decode(JSONValue.self, from: Array(line.utf8)) else {
                throw CLIError("an event must be a JSON object")
            }
            details = fields.removeValue(forKey: "details")
            if let details, case .object = details {
            } else if details != nil {
                throw CLIError("'details' must be an object")
            }
            if fields["version"] == nil { fields["version"] = .integer(Int64(AuditEvent.currentVersion)) }
            if fields["id"] == nil { fields["id"] = .string(UUID().uuidString.lowercased()) }
            if fields["time"] == nil { fields["time"] = .string(RFC3339.format(SystemWallClock().now())) }
            event = try CanonicalJSON.decode(AuditEvent.self, from: try CanonicalJSON.encode(fields))
            let entry = try event.canonicalEntry()
            _ = entry
        } catch let error as CaduceusError {
            throw CLIError("line \(number): \(error.message)")
        } catch let error as CLIError {
            throw CLIError("line \(number): \(error.description)")
        } catch let error as DecodingError {
            throw CLIError("line \(number): \(Self.describe(error))")
        } catch {
            throw CLIError("line \(number): not a JSON audit event")
        }
    }

    func record(in trail: AuditTrail) async throws -> String {
        let index = try await trail.record(event, details: details)
        return "{\"id\":\"\(event.id)\",\"index\":\(index)}"
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            return
                "missing field '\((context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: "."))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        case .dataCorrupted(let context):
            if let underlying = context.underlyingError as? CaduceusError { return underlying.message }
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not valid JSON" : "field '\(path)' is invalid"
        @unknown default:
            return "not a valid audit event"
        }
    }
}
