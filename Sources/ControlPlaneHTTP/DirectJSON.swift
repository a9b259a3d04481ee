import CaduceusCore
import ControlPlane
import Identity

/// A response that writes its own JSON: byte for byte what its `Encodable` conformance writes through
/// `StreamingJSONEncoder` (a test holds each one equal), without the `Encoder` machinery. A boxed container per
/// object and a generic call per field cost more than the rest of answering `GET /v1/me`, the route every
/// client calls most.
protocol DirectJSONEncodable: Encodable {
    /// Writes the members of the object this value is, in the order its `encode(to:)` writes them.
    func writeMembers(to json: inout DirectJSON)
}

/// Compact JSON, written one field at a time with the keys given.
struct DirectJSON {
    private(set) var bytes: [UInt8] = []
    /// Whether the container being written has no member yet.
    private var first = true

    init() { bytes.reserveCapacity(512) }

    /// Writes `value` as the whole document.
    static func encode(_ value: some DirectJSONEncodable) -> [UInt8] {
        var json = DirectJSON()
        json.object(value)
        return json.bytes
    }

    private mutating func object(_ value: some DirectJSONEncodable) {
        open(UInt8(ascii: "{"))
        value.writeMembers(to: &self)
        close(UInt8(ascii: "}"))
    }

    private mutating func open(_ opener: UInt8) {
        bytes.append(opener)
        first = true
    }

    private mutating func close(_ closer: UInt8) {
        bytes.append(closer)
        first = false
    }

    private mutating func separate() {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
    }

    private mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func field(_ name: StaticString, _ value: String) {
        key(name)
        JSONString.append(value, to: &bytes)
    }

    mutating func field(_ name: StaticString, _ value: Bool) {
        key(name)
        value
            ? bytes.append(contentsOf: [0x74, 0x72, 0x75, 0x65])
            : bytes.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])
    }

    /// An ID or a string enumeration: its raw value.
    mutating func field<Value: RawRepresentable>(_ name: StaticString, _ value: Value) where Value.RawValue == String {
        field(name, value.rawValue)
    }

    mutating func field(_ name: StaticString, _ value: Timestamp) { field(name, RFC3339.format(value)) }

    mutating func field(_ name: StaticString, _ value: some DirectJSONEncodable) {
        key(name)
        object(value)
    }

    mutating func field(_ name: StaticString, _ values: [some DirectJSONEncodable]) {
        key(name)
        open(UInt8(ascii: "["))
        for value in values {
            separate()
            object(value)
        }
        close(UInt8(ascii: "]"))
    }

    // Absent optionals are left out, as `encodeIfPresent` leaves them.

    mutating func field(_ name: StaticString, _ value: String?) {
        if let value { field(name, value) }
    }

    mutating func field<Value: RawRepresentable>(_ name: StaticString, _ value: Value?) where Value.RawValue == String {
        if let value { field(name, value.rawValue) }
    }

    mutating func field(_ name: StaticString, _ value: Timestamp?) {
        if let value { field(name, value) }
    }
}

extension MeResponse: DirectJSONEncodable {
    func writeMembers(to json: inout DirectJSON) {
        json.field("user", user)
        json.field("session", session)
        json.field("token", token)
        json.field("roles", roles)
        json.field("breakGlass", breakGlass)
    }
}

extension UserView: DirectJSONEncodable {
    func writeMembers(to json: inout DirectJSON) {
        json.field("id", id)
        json.field("name", name)
        json.field("kind", kind)
        json.field("disabled", disabled)
        json.field("mustChangePassword", mustChangePassword)
        json.field("mfaEnrolled", mfaEnrolled)
        json.field("createdAt", createdAt)
    }
}

extension RoleBinding: DirectJSONEncodable {
    func writeMembers(to json: inout DirectJSON) {
        json.field("id", id)
        json.field("user", user)
        json.field("role", role)
        json.field("scope", scope.description)
    }
}

extension BreakGlassView: DirectJSONEncodable {
    func writeMembers(to json: inout DirectJSON) {
        json.field("id", id)
        json.field("user", user)
        json.field("tenant", tenant)
        json.field("reason", reason)
        json.field("openedAt", openedAt)
        json.field("expiresAt", expiresAt)
        json.field("open", open)
        json.field("reviewedBy", reviewedBy)
        json.field("reviewedAt", reviewedAt)
        json.field("reviewNote", reviewNote)
        json.field("overdue", overdue)
    }
}
