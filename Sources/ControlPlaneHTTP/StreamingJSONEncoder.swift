import CaduceusCore
import Foundation

/// Compact JSON for responses, written in one pass in the order a value's `encode(to:)` writes it.
///
/// Foundation's `JSONEncoder` first builds a tree of boxed values, checking every value for the types it
/// treats specially; for the small objects the API returns, that costs more than the rest of a request's own
/// work. This writer produces the same JSON as `JSONEncoder` with `.withoutEscapingSlashes` — `Data` as base64,
/// `URL` as its absolute string, integral numbers without `.0` — with keys in the order they are written, for the
/// way synthesised and ordinary hand-written `encode(to:)` write: one container per value, and each nested
/// value finished before the next key. A value written any other way (a container written to after a sibling
/// was, a super-encoder) is encoded by `JSONEncoder` instead, whole.
public struct StreamingJSONEncoder {
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        if let direct = value as? any DirectJSONEncodable { return DirectJSON.encode(direct) }
        return try encodeThroughEncodable(value)
    }

    /// The value's JSON through its `Encodable` conformance, even where it writes itself directly (for
    /// `bench json`, which times the two).
    package func encodeThroughEncodable<T: Encodable>(_ value: T) throws -> [UInt8] {
        let writer = JSONStreamWriter()
        try writer.write(value, depth: 0)
        if !writer.unstreamable { return writer.bytes }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }
}

/// The output and the containers still open, innermost last.
final class JSONStreamWriter {
    struct Open {
        var id: Int
        var depth: Int
        var closer: UInt8
        var count: Int
    }

    // One writer serves one encoding on one thread, and no access to these overlaps another: the run-time
    // exclusivity checks (a thread-local lookup on every append) are left out.
    @exclusivity(unchecked) var bytes: [UInt8] = []
    @exclusivity(unchecked) var open: [Open] = []
    @exclusivity(unchecked) var nextID = 0
    /// Set when the value was written in a way this writer does not follow; its bytes are then discarded.
    @exclusivity(unchecked) var unstreamable = false

    init() { bytes.reserveCapacity(512) }

    /// Writes `value`, whose containers (if any) open at `depth`.
    func write<T: Encodable>(_ value: T, depth: Int) throws {
        if unstreamable { return }
        // The types JSONEncoder writes its own way (compared as types: a cast per value costs as much as
        // the rest of writing it).
        if T.self == Data.self {
            string((value as! Data).base64EncodedString())
            return
        } else if T.self == URL.self {
            string((value as! URL).absoluteString)
            return
        } else if T.self == Decimal.self {
            bytes.append(contentsOf: (value as! Decimal).description.utf8)
            return
        }
        let mark = bytes.count
        try value.encode(to: JSONStreamEncoder(writer: self, depth: depth))
        close(deeperThan: depth - 1)
        // A value that wrote nothing is an empty object, as JSONEncoder writes it.
        if bytes.count == mark { bytes.append(contentsOf: [UInt8(ascii: "{"), UInt8(ascii: "}")]) }
    }

    /// Closes every container opened deeper than `depth`.
    func close(deeperThan depth: Int) {
        while let last = open.last, last.depth > depth {
            bytes.append(last.closer)
            open.removeLast()
        }
    }

    /// Opens a container at `depth` and returns its ID. A container still open at that depth means one value
    /// asked for a second container (JSONEncoder merges the two): that is not streamed.
    func openContainer(depth: Int, opener: UInt8, closer: UInt8) -> Int {
        if let last = open.last, last.depth >= depth { unstreamable = true }
        nextID += 1
        bytes.append(opener)
        open.append(Open(id: nextID, depth: depth, closer: closer, count: 0))
        return nextID
    }

    /// Readies container `id` for its next element: closes what its earlier elements left open, writes the
    /// separator. False (and the value unstreamable) when the container is closed already.
    func nextElement(of id: Int, depth: Int) -> Bool {
        close(deeperThan: depth)
        guard !unstreamable, let last = open.last, last.id == id else {
            unstreamable = true
            return false
        }
        if last.count > 0 { bytes.append(UInt8(ascii: ",")) }
        open[open.count - 1].count += 1
        return true
    }

    func key(_ key: String) {
        string(key)
        bytes.append(UInt8(ascii: ":"))
    }

    func string(_ value: String) { JSONString.append(value, to: &bytes) }

    static let trueBytes: [UInt8] = Array("true".utf8)
    static let falseBytes: [UInt8] = Array("false".utf8)
    static let nullBytes: [UInt8] = Array("null".utf8)

    func integer(_ value: some BinaryInteger & CustomStringConvertible) {
        bytes.append(contentsOf: value.description.utf8)
    }

    func float<F: BinaryFloatingPoint & CustomStringConvertible>(_ value: F, codingPath: [any CodingKey]) throws {
        guard value.isFinite else {
            throw EncodingError.invalidValue(
                value, .init(codingPath: codingPath, debugDescription: "\(value) is not a valid JSON number"))
        }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    func bool(_ value: Bool) { bytes.append(contentsOf: value ? Self.trueBytes : Self.falseBytes) }

    func null() { bytes.append(contentsOf: Self.nullBytes) }
}

/// The `Encoder` a value writes itself to.
struct JSONStreamEncoder: Encoder {
    let writer: JSONStreamWriter
    let depth: Int
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let id = writer.openContainer(depth: depth, opener: UInt8(ascii: "{"), closer: UInt8(ascii: "}"))
        return KeyedEncodingContainer(JSONStreamKeyedContainer<Key>(writer: writer, id: id, depth: depth))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let id = writer.openContainer(depth: depth, opener: UInt8(ascii: "["), closer: UInt8(ascii: "]"))
        return JSONStreamUnkeyedContainer(writer: writer, id: id, depth: depth)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        JSONStreamSingleValueContainer(writer: writer, depth: depth)
    }
}

struct JSONStreamKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: JSONStreamWriter
    let id: Int
    let depth: Int
    var codingPath: [any CodingKey] { [] }

    private func next(_ key: Key) -> Bool {
        guard writer.nextElement(of: id, depth: depth) else { return false }
        writer.key(key.stringValue)
        return true
    }

    mutating func encodeNil(forKey key: Key) throws { if next(key) { writer.null() } }
    mutating func encode(_ value: Bool, forKey key: Key) throws { if next(key) { writer.bool(value) } }
    mutating func encode(_ value: String, forKey key: Key) throws { if next(key) { writer.string(value) } }
    mutating func encode(_ value: Double, forKey key: Key) throws {
        if next(key) { try writer.float(value, codingPath: [key]) }
    }
    mutating func encode(_ value: Float, forKey key: Key) throws {
        if next(key) { try writer.float(value, codingPath: [key]) }
    }
    mutating func encode(_ value: Int, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode(_ value: Int8, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode(_ value: Int16, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode(_ value: Int32, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode(_ value: Int64, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode(_ value: UInt, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { if next(key) { writer.integer(value) } }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        if next(key) { try writer.write(value, depth: depth + 1) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        _ = next(key)
        return JSONStreamEncoder(writer: writer, depth: depth + 1).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        _ = next(key)
        return JSONStreamEncoder(writer: writer, depth: depth + 1).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        writer.unstreamable = true
        return JSONStreamEncoder(writer: writer, depth: depth + 1)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        writer.unstreamable = true
        return JSONStreamEncoder(writer: writer, depth: depth + 1)
    }
}

struct JSONStreamUnkeyedContainer: UnkeyedEncodingContainer, JSONStreamElements {
    let writer: JSONStreamWriter
    let id: Int
    let depth: Int
    var codingPath: [any CodingKey] { [] }
    private(set) var count = 0

    init(writer: JSONStreamWriter, id: Int, depth: Int) {
        self.writer = writer
        self.id = id
        self.depth = depth
    }

    mutating func next() -> Bool {
        count += 1
        return writer.nextElement(of: id, depth: depth)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        if next() { try writer.write(value, depth: depth + 1) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    )
        -> KeyedEncodingContainer<NestedKey>
    {
        _ = next()
        return JSONStreamEncoder(writer: writer, depth: depth + 1).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        _ = next()
        return JSONStreamEncoder(writer: writer, depth: depth + 1).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        writer.unstreamable = true
        return JSONStreamEncoder(writer: writer, depth: depth + 1)
    }
}

struct JSONStreamSingleValueContainer: SingleValueEncodingContainer, JSONStreamElements {
    let writer: JSONStreamWriter
    let depth: Int
    var codingPath: [any CodingKey] { [] }
    private var written = false

    init(writer: JSONStreamWriter, depth: Int) {
        self.writer = writer
        self.depth = depth
    }

    /// A single value is written once; a second one is not followed.
    mutating func next() -> Bool {
        if written { writer.unstreamable = true }
        written = true
        return !writer.unstreamable
    }

    mutating func encode<T: Encodable>(_ value: T) throws { if next() { try writer.write(value, depth: depth) } }
}

/// The primitive writes of the unkeyed and single-value containers: each readies the next element, then
/// writes the value.
protocol JSONStreamElements {
    var writer: JSONStreamWriter { get }
    /// Readies the next element; false when the value is not streamed.
    mutating func next() -> Bool
}

extension JSONStreamElements {
    mutating func encodeNil() throws { if next() { writer.null() } }
    mutating func encode(_ value: Bool) throws { if next() { writer.bool(value) } }
    mutating func encode(_ value: String) throws { if next() { writer.string(value) } }
    mutating func encode(_ value: Double) throws { if next() { try writer.float(value, codingPath: []) } }
    mutating func encode(_ value: Float) throws { if next() { try writer.float(value, codingPath: []) } }
    mutating func encode(_ value: Int) throws { if next() { writer.integer(value) } }
    mutating func encode(_ value: Int8) throws { if next() { writer.integer(value) } }
    mutating func encode(_ value: Int16) throws { if next() { writer.integer(value) } }
    mutating func encode(_ value: Int32) throws { if next() { writer.integer(value) } }
    mutating func encode(_ value: Int64) throws { if next() { writer.integer(value) } }
    mutating func encode(_ value: UInt) throws { if next() { writer.integer(value) } }
    mutating func encode(_ value: UInt8) throws { if next() { writer.integer(value) } }
    mutating func encode(_ value: UInt16) throws { if next() { writer.integer(value) } }
    mutating func encode(_ value: UInt32) throws { if next() { writer.integer(value) } }
    mutating func encode(_ value: UInt64) throws { if next() { writer.integer(value) } }
}
