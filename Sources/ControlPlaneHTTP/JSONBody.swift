import AuditLog
import CaduceusCore
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Reading request bodies strictly and writing JSON responses.
enum JSONBody {
    static let limit = 1 << 20
    static let maxString = 4096

    /// Decodes a JSON object body into `T`, refusing wrong content types, bodies over 1 MiB, invalid JSON or
    /// UTF-8, unknown fields, strings over 4,096 bytes and nesting deeper than 8.
    static func decode<T: StrictDecodable>(_ type: T.Type, from request: Request) async throws -> T {
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/json") else {
            throw Failure.invalid("the body must be JSON (Content-Type: application/json)")
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError(status: .contentTooLarge, code: "input.tooLarge", message: "the body is over 1 MiB")
        }
        let buffer = try await request.body.collect(upTo: limit)
        let bytes = Data(buffer.readableBytesView)
        guard String(validating: bytes, as: UTF8.self) != nil else { throw Failure.invalid("the body is not UTF-8") }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: bytes)
        } catch {
            throw Failure.invalid("the body is not valid JSON")
        }
        guard case .object(let fields) = value else { throw Failure.invalid("the body must be a JSON object") }
        if let unknown = fields.keys.sorted().first(where: { !T.fields.contains($0) }) {
            throw Failure.invalid("unknown field '\(unknown.prefix(64))'")
        }
        try check(value, depth: 0)
        do {
            return try JSONDecoder().decode(T.self, from: bytes)
        } catch let error as DecodingError {
            throw Failure.invalid(describe(error))
        }
    }

    private static func check(_ value: JSONValue, depth: Int) throws {
        guard depth <= 8 else { throw Failure.invalid("the body is nested too deeply") }
        switch value {
        case .string(let text):
            guard text.utf8.count <= maxString else { throw Failure.invalid("a string is over \(maxString) bytes") }
        case .array(let items):
            for item in items { try check(item, depth: depth + 1) }
        case .object(let fields):
            for (key, item) in fields {
                guard key.utf8.count <= 64 else { throw Failure.invalid("a field name is too long") }
                try check(item, depth: depth + 1)
            }
        default:
            return
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context, _ key: (any CodingKey)? = nil) -> String {
            (context.codingPath + (key.map { [$0] } ?? [])).map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing field '\(path(context, key))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "field '\(path(context))' has the wrong type"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "the body is not valid" : "field '\(path(context))' is not valid"
        @unknown default: return "the body is not valid"
        }
    }

    /// A JSON response.
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        try reply(value, status: status).response
    }

    /// A JSON reply not yet turned into a response (so that it can be kept for idempotent replays).
    static func reply(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> JSONReply {
        // Keys in declaration order: sorting them costs more than the rest of encoding.
        JSONReply(status: status, bytes: try StreamingJSONEncoder().encode(value))
    }

    /// `after` and `limit` query parameters (limit 1–500, default 100).
    static func page(_ request: Request) throws -> (after: String?, limit: Int) {
        let query = request.uri.queryParameters
        let after = query.get("after").map { String($0) }
        if let after, after.utf8.count > 128 { throw Failure.invalid("the cursor is not valid") }
        var limit = 100
        if let text = query.get("limit") {
            guard let value = Int(text), (1...500).contains(value) else {
                throw Failure.invalid("limit must be 1 to 500")
            }
            limit = value
        }
        return (after, limit)
    }
}

/// A status and a JSON body.
struct JSONReply: Sendable {
    var status: HTTPResponse.Status
    var bytes: [UInt8]
    var replayed = false

    var response: Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if replayed { headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
