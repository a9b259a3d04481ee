import ArgumentParser
import ControlPlane
import ControlPlaneHTTP
import Foundation

/// `caduceus bench json`: how long a response takes to encode, with the reference in the same run.
struct BenchJSON: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "json",
        abstract: "Response encoding: the server's streaming JSON writer against Foundation's JSONEncoder.",
        discussion: """
            Encodes a GET /v1/me response (a user with --roles role bindings) and a page of --items tenants \
            --iterations times each way, alternating in rounds; prints microseconds per encoding. The /v1/me \
            response is also written directly, as the server sends it (meDirectMicroseconds).
            """
    )

    @Option(help: "Role bindings in the /v1/me response.") var roles: Int = 3
    @Option(help: "Tenants in the listed page.") var items: Int = 100
    @Option(help: "Encodings per measurement.") var iterations: Int = 20_000

    func run() async throws {
        let me = try JSONDecoder().decode(MeResponse.self, from: Data(Self.meJSON(roles: roles).utf8))
        let page = try JSONDecoder().decode(ListResponse<TenantView>.self, from: Data(Self.pageJSON(items: items).utf8))
        let foundation = JSONEncoder()
        foundation.outputFormatting = [.withoutEscapingSlashes]
        let streaming = StreamingJSONEncoder()
        var fields: [(String, String)] = [("roles", "\(roles)"), ("items", "\(items)")]
        for (name, encodeFoundation, encodeStreaming, encodeDirect) in [
            (
                "me", { _ = try foundation.encode(me) }, { _ = try streaming.encodeThroughEncodable(me) },
                {
                    // What the server sends for /v1/me: the response writes itself, without the Encoder machinery.
                    _ = try streaming.encode(me)
                }
            ),
            ("page", { _ = try foundation.encode(page) }, { _ = try streaming.encode(page) }, nil),
        ] as [(String, () throws -> Void, () throws -> Void, (() throws -> Void)?)] {
            var reference = 0.0
            var measured = 0.0
            var direct = 0.0
            for _ in 0..<4 {
                reference += try Self.time(iterations / 4, encodeFoundation)
                measured += try Self.time(iterations / 4, encodeStreaming)
                if let encodeDirect { direct += try Self.time(iterations / 4, encodeDirect) }
            }
            if encodeDirect != nil {
                fields.append((name + "DirectMicroseconds", BenchAPI.number(direct / Double(iterations) * 1e6)))
            }
            fields += [
                (name + "StreamingMicroseconds", BenchAPI.number(measured / Double(iterations) * 1e6)),
                (name + "JSONEncoderMicroseconds", BenchAPI.number(reference / Double(iterations) * 1e6)),
                (name + "Speedup", BenchAPI.number(reference / measured)),
            ]
        }
        StandardStreams.line("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    static func time(_ count: Int, _ body: () throws -> Void) throws -> Double {
        let start = ContinuousClock.now
        for _ in 0..<count { try body() }
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func meJSON(roles: Int) -> String {
        let bindings = (0..<roles).map { index in
            """
            {"id":"rb-\(String(format: "%032x", index))","user":"usr-0123456789abcdef0123456789abcdef",\
            "role":"researcher","scope":"project:tnt-\(index)/prj-\(index)"}
            """
        }
        return """
            {"user":{"id":"usr-0123456789abcdef0123456789abcdef","name":"ana","kind":"user","disabled":false,\
            "mustChangePassword":false,"mfaEnrolled":true,"createdAt":"2026-11-29T18:00:00.000Z"},\
            "session":"ses-00000000000000000000000000000001","roles":[\(bindings.joined(separator: ","))],\
            "breakGlass":[]}
            """
    }

    static func pageJSON(items: Int) -> String {
        let tenants = (0..<items).map { index in
            #"{"id":"tnt-\#(String(format: "%032x", index))","name":"tenant \#(index)","createdAt":"2026-11-29T18:00:00.000Z"}"#
        }
        return #"{"items":[\#(tenants.joined(separator: ","))],"next":null}"#
    }
}
