import CaduceusCore

extension AuditEvent {
    /// The event's canonical JSON written directly: keys sorted, no white space, byte for byte what
    /// `CanonicalJSON.encode` produces (a test holds them equal), at a fraction of the cost, since every
    /// request appends one event.
    func canonicalBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(384)
        var first = true
        func literal(_ text: StaticString) { text.withUTF8Buffer { out.append(contentsOf: $0) } }
        func key(_ name: StaticString) {
            out.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
            first = false
            out.append(UInt8(ascii: "\""))
            literal(name)
            literal("\":")
        }
        func string(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            key(name)
            JSONString.append(value, to: &out)
        }
        func pair(_ name: StaticString, id: String, type: String) {
            key(name)
            literal(#"{"id":"#)
            JSONString.append(id, to: &out)
            literal(#","type":"#)
            JSONString.append(type, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        string("action", action)
        pair("actor", id: actor.id, type: actor.type)
        key("breakGlass")
        literal(breakGlass ? "true" : "false")
        string("breakGlassGrant", breakGlassGrant)
        string("id", id)
        string("outcome", outcome.rawValue)
        string("payload", payload)
        string("purposeOfUse", purposeOfUse)
        string("requestId", requestId)
        pair("resource", id: resource.id, type: resource.type)
        string("session", session)
        string("sourceAddress", sourceAddress)
        string("tenant", tenant)
        string("time", time)
        key("version")
        out.append(contentsOf: String(version).utf8)
        out.append(UInt8(ascii: "}"))
        return out
    }
}
