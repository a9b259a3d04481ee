import AuditLog
import CaduceusCore
import ControlPlane
import Foundation
import Testing

@testable import ControlPlaneHTTP

/// The response writer must write the same JSON as `JSONEncoder` (`.withoutEscapingSlashes`): the same values,
/// with keys in the order `encode(to:)` writes them (JSONEncoder's order follows its dictionaries' hashing).
@Suite("Streaming JSON responses")
struct StreamingJSONEncoderTests {
    static func foundation(_ value: some Encodable) throws -> JSONValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return try JSONDecoder().decode(JSONValue.self, from: try encoder.encode(value))
    }

    static func streamed(_ value: some Encodable) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(try StreamingJSONEncoder().encode(value)))
    }

    static func text(_ value: some Encodable) throws -> String {
        String(decoding: try StreamingJSONEncoder().encode(value), as: UTF8.self)
    }

    enum Kind: String, Codable { case alpha, beta }

    enum Shape: Codable, Equatable {
        case point
        case circle(radius: Double)
        case pair(Int, String)
    }

    struct Inner: Codable {
        var name: String
        var tags: [String]
        var maybe: Int?
    }

    struct Empty: Codable {}

    struct Everything: Codable {
        var text: String
        var int: Int
        var negative: Int64
        var big: UInt64
        var small: Int8
        var flag: Bool
        var doubles: [Double]
        var float: Float
        var missing: String?
        var present: String?
        var nested: Inner
        var list: [Inner]
        var none: [Inner]
        var counts: [String: Int]
        var byNumber: [Int: String]
        var kind: Kind
        var shapes: [Shape]
        var data: Data
        var url: URL
        var date: Date
        var decimal: Decimal
        var empty: Empty
        var optionals: [Int?]
        var matrix: [[Int]]
    }

    static let sample = Everything(
        text: "quote \" backslash \\ slash / tab \t newline \n bell \u{07} nul \u{00} unit \u{1F} é ✓ 🩺 \u{2028} end",
        int: 42, negative: Int64.min, big: UInt64.max, small: -8, flag: true,
        doubles: [0, 1, -0.0, 0.1, 1.5, 1e-7, 1e21, 123_456_789.125, Double.pi, -2.5e-300],
        float: 0.1, missing: nil, present: "here",
        nested: Inner(name: "inner", tags: ["a", "b"], maybe: nil),
        list: [Inner(name: "x", tags: [], maybe: 1), Inner(name: "y", tags: ["z"], maybe: nil)], none: [],
        counts: ["one": 1, "two": 2, "three": 3], byNumber: [1: "one", 2: "two"], kind: .beta,
        shapes: [.point, .circle(radius: 2), .pair(3, "three")], data: Data([0, 1, 2, 250, 255]),
        url: URL(string: "https://example.org/a/b?c=d")!, date: Date(timeIntervalSince1970: 1_800_000_000.5),
        decimal: Decimal(string: "12.345")!, empty: Empty(), optionals: [1, nil, 3], matrix: [[1, 2], [], [3]])

    @Test("every kind of value is written as JSONEncoder writes it")
    func sameAsFoundation() throws {
        #expect(try Self.streamed(Self.sample) == Self.foundation(Self.sample))
        #expect(try Self.streamed([Self.sample, Self.sample]) == Self.foundation([Self.sample, Self.sample]))
        #expect(try Self.streamed("top-level / string") == Self.foundation("top-level / string"))
        #expect(try Self.text(Empty()) == "{}")
        #expect(try Self.streamed([String: Int]()) == Self.foundation([String: Int]()))
    }

    @Test("keys come in declaration order; strings are escaped as JSONEncoder escapes them")
    func exactText() throws {
        #expect(
            try Self.text(Inner(name: "a/b \"c\" \\ \u{01}\n", tags: ["x"], maybe: 7))
                == #"{"name":"a/b \"c\" \\ \u0001\n","tags":["x"],"maybe":7}"#)
        #expect(try Self.text(Inner(name: "é", tags: [], maybe: nil)) == #"{"name":"é","tags":[]}"#)
        #expect(try Self.text([1.0, 0.5, -0.0, 1e21]) == "[1,0.5,-0,1e+21]")
        #expect(
            try Self.text(Self.sample.shapes)
                == #"[{"point":{}},{"circle":{"radius":2}},{"pair":{"_0":3,"_1":"three"}}]"#)
    }

    @Test("API responses are written as before")
    func apiResponses() throws {
        let me = """
            {"user":{"id":"usr-0123456789abcdef0123456789abcdef","name":"ana","kind":"user","disabled":false,
            "mustChangePassword":false,"mfaEnrolled":true,"createdAt":"2026-11-29T18:00:00.000Z"},
            "session":"ses-00000000000000000000000000000001",
            "roles":[{"id":"rb-00000000000000000000000000000002","user":"usr-0123456789abcdef0123456789abcdef",
            "role":"researcher","scope":"project:tnt-1/prj-2"}],"breakGlass":[]}
            """
        let response = try JSONDecoder().decode(MeResponse.self, from: Data(me.utf8))
        #expect(try Self.streamed(response) == Self.foundation(response))
    }

    @Test("a number JSON cannot hold is refused")
    func nonFinite() {
        #expect(throws: EncodingError.self) { try StreamingJSONEncoder().encode([1.0, Double.nan]) }
        #expect(throws: EncodingError.self) { try StreamingJSONEncoder().encode(["x": Double.infinity]) }
    }

    class Base: Encodable {
        var base = 1
        enum CodingKeys: String, CodingKey { case base }
    }

    final class Derived: Base {
        var derived = "two"
        enum DerivedKeys: String, CodingKey { case derived }
        override func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: DerivedKeys.self)
            try container.encode(derived, forKey: .derived)
            try super.encode(to: container.superEncoder())
        }
    }

    /// Writes into a nested container after writing a sibling key: not streamable, handed to JSONEncoder.
    struct OutOfOrder: Encodable {
        enum Keys: String, CodingKey { case first, second, third }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            var first = container.nestedContainer(keyedBy: Keys.self, forKey: .first)
            try first.encode(1, forKey: .first)
            try container.encode("b", forKey: .second)
            try first.encode(3, forKey: .third)
        }
    }

    /// Asks its encoder for a keyed container twice (JSONEncoder writes both halves into one object).
    struct TwoHalves: Encodable {
        enum Keys: String, CodingKey { case a, b }
        func encode(to encoder: any Encoder) throws {
            var first = encoder.container(keyedBy: Keys.self)
            try first.encode(1, forKey: .a)
            var second = encoder.container(keyedBy: Keys.self)
            try second.encode(2, forKey: .b)
        }
    }

    @Test("values written in ways it does not stream are encoded by JSONEncoder")
    func fallBack() throws {
        #expect(try Self.streamed(TwoHalves()) == Self.foundation(TwoHalves()))
        #expect(try Self.streamed([TwoHalves(), TwoHalves()]) == Self.foundation([TwoHalves(), TwoHalves()]))
        #expect(try Self.streamed(Derived()) == Self.foundation(Derived()))
        #expect(try Self.streamed(OutOfOrder()) == Self.foundation(OutOfOrder()))
        #expect(try Self.streamed(["wrapped": OutOfOrder()]) == Self.foundation(["wrapped": OutOfOrder()]))
    }
}
