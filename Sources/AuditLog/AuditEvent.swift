import CaduceusCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One audited action, as stored (canonical JSON) in the transparency log.
///
/// Every field is an identifier, a code or a time: no free text, so no patient identifier can reach the
/// log. Details that may hold PHI go to the payload store; the event keeps only their salted commitment.
public struct AuditEvent: Codable, Sendable, Equatable {
    /// The version of this schema.
    public static let currentVersion = 1

    /// Who acted.
    public struct Actor: Codable, Sendable, Equatable {
        /// The actor's unique, immutable ID.
        public var id: String
        /// `user`, `service`, `node` or `system`.
        public var type: String

        /// Creates an actor.
        public init(id: String, type: String) {
            self.id = id
            self.type = type
        }

        public init(from decoder: any Decoder) throws {
            try AuditEventValidation.refuseUnknownKeys(decoder, known: ["id", "type"], in: "actor")
            let container = try decoder.container(keyedBy: AuditEventValidation.AnyKey.self)
            id = try container.decode(String.self, forKey: .init(stringValue: "id"))
            type = try container.decode(String.self, forKey: .init(stringValue: "type"))
        }
    }

    /// What was acted on.
    public struct Resource: Codable, Sendable, Equatable {
        /// The kind of resource, e.g. `dataset`.
        public var type: String
        /// Its ID.
        public var id: String

        /// Creates a resource reference.
        public init(type: String, id: String) {
            self.type = type
            self.id = id
        }

        public init(from decoder: any Decoder) throws {
            try AuditEventValidation.refuseUnknownKeys(decoder, known: ["id", "type"], in: "resource")
            let container = try decoder.container(keyedBy: AuditEventValidation.AnyKey.self)
            id = try container.decode(String.self, forKey: .init(stringValue: "id"))
            type = try container.decode(String.self, forKey: .init(stringValue: "type"))
        }
    }

    /// How the action ended.
    public enum Outcome: String, Codable, Sendable, CaseIterable {
        case success, denied, error
    }

    /// The schema version (1).
    public var version: Int
    /// The event's unique ID.
    public var id: String
    /// When it happened, RFC 3339 UTC.
    public var time: String
    /// Who acted.
    public var actor: Actor
    /// The session the actor acted in, if any.
    public var session: String?
    /// What was done, dotted lower case (`dataset.read`).
    public var action: String
    /// What it was done to.
    public var resource: Resource
    /// The tenant whose resource it is, if any.
    public var tenant: String?
    /// How it ended.
    public var outcome: Outcome
    /// The HL7 purpose-of-use code (`TREAT`, `HRESCH`, `ETREAT`, …), if any.
    public var purposeOfUse: String?
    /// The request that caused it.
    public var requestId: String?
    /// The network address the request came from.
    public var sourceAddress: String?
    /// Whether emergency (break-glass) access was used.
    public var breakGlass: Bool
    /// The break-glass grant that allowed the action, when one did.
    public var breakGlassGrant: String?
    /// `sha256:<hex>` commitment to the sealed details payload, if any.
    public var payload: String?

    /// Creates an event; `version` is the current one.
    public init(
        id: String, time: Timestamp, actor: Actor, session: String? = nil, action: String, resource: Resource,
        tenant: String? = nil, outcome: Outcome, purposeOfUse: String? = nil, requestId: String? = nil,
        sourceAddress: String? = nil, breakGlass: Bool = false, breakGlassGrant: String? = nil, payload: String? = nil
    ) {
        self.version = Self.currentVersion
        self.id = id
        self.time = RFC3339.format(time)
        self.actor = actor
        self.session = session
        self.action = action
        self.resource = resource
        self.tenant = tenant
        self.outcome = outcome
        self.purposeOfUse = purposeOfUse
        self.requestId = requestId
        self.sourceAddress = sourceAddress
        self.breakGlass = breakGlass
        self.breakGlassGrant = breakGlassGrant
        self.payload = payload
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case version, id, time, actor, session, action, resource, tenant, outcome, purposeOfUse, requestId
        case sourceAddress, breakGlass, breakGlassGrant, payload
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try AuditEventValidation.refuseUnknownKeys(decoder, known: CodingKeys.allCases.map(\.rawValue))
        version = try container.decode(Int.self, forKey: .version)
        id = try container.decode(String.self, forKey: .id)
        time = try container.decode(String.self, forKey: .time)
        actor = try container.decode(Actor.self, forKey: .actor)
        session = try container.decodeIfPresent(String.self, forKey: .session)
        action = try container.decode(String.self, forKey: .action)
        resource = try container.decode(Resource.self, forKey: .resource)
        tenant = try container.decodeIfPresent(String.self, forKey: .tenant)
        outcome = try container.decode(Outcome.self, forKey: .outcome)
        purposeOfUse = try container.decodeIfPresent(String.self, forKey: .purposeOfUse)
        requestId = try container.decodeIfPresent(String.self, forKey: .requestId)
        sourceAddress = try container.decodeIfPresent(String.self, forKey: .sourceAddress)
        breakGlass = try container.decodeIfPresent(Bool.self, forKey: .breakGlass) ?? false
        breakGlassGrant = try container.decodeIfPresent(String.self, forKey: .breakGlassGrant)
        payload = try container.decodeIfPresent(String.self, forKey: .payload)
    }

    /// The event's canonical JSON, checked: the bytes that go into the log.
    public func canonicalEntry() throws -> [UInt8] {
        try validate()
        let bytes = canonicalBytes()
        guard bytes.count <= TileLayout.maxEntrySize else {
            throw CaduceusError(code: "audit.entryTooLarge", message: "the event encodes to \(bytes.count) bytes")
        }
        return bytes
    }

    /// Parses and checks an entry read from the log.
    public static func decode(entry: some Collection<UInt8>) throws -> AuditEvent {
        let event: AuditEvent
        do {
            event = try CanonicalJSON.decode(AuditEvent.self, from: entry)
        } catch {
            throw CaduceusError(code: "audit.event.malformed", message: "not an audit event", underlying: error)
        }
        try event.validate()
        return event
    }

    /// Checks every field's form; throws naming the first bad one.
    public func validate() throws {
        typealias V = AuditEventValidation
        guard version == Self.currentVersion else { throw V.bad("version", "must be \(Self.currentVersion)") }
        try V.identifier(id, "id")
        guard RFC3339.parse(time) != nil else { throw V.bad("time", "must be RFC 3339 UTC (…Z)") }
        try V.identifier(actor.id, "actor.id")
        guard ["user", "service", "node", "system"].contains(actor.type) else {
            throw V.bad("actor.type", "must be user, service, node or system")
        }
        if let session { try V.identifier(session, "session") }
        try V.code(action, "action")
        try V.code(resource.type, "resource.type")
        try V.identifier(resource.id, "resource.id")
        if let tenant { try V.identifier(tenant, "tenant") }
        if let purposeOfUse {
            guard (2...16).contains(purposeOfUse.utf8.count), purposeOfUse.utf8.allSatisfy({ (65...90).contains($0) })
            else { throw V.bad("purposeOfUse", "must be an HL7 purpose-of-use code such as TREAT") }
        }
        if let requestId { try V.identifier(requestId, "requestId") }
        if let sourceAddress {
            guard (2...45).contains(sourceAddress.utf8.count),
                sourceAddress.utf8.allSatisfy({ V.isHexDigit($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: ":") }
                )
            else { throw V.bad("sourceAddress", "must be an IP address") }
        }
        if let breakGlassGrant {
            try V.identifier(breakGlassGrant, "breakGlassGrant")
            guard breakGlass else { throw V.bad("breakGlassGrant", "requires breakGlass to be true") }
        }
        if let payload {
            guard payload.hasPrefix("sha256:"), payload.utf8.count == 71,
                payload.utf8.dropFirst(7).allSatisfy({ V.isHexDigit($0) && !(65...70).contains($0) })
            else { throw V.bad("payload", "must be sha256: and 64 lower-case hex digits") }
        }
    }
}

/// The rules that keep free text (and so PHI) out of audit entries.
enum AuditEventValidation {
    static func bad(_ field: String, _ rule: String) -> CaduceusError {
        CaduceusError(code: "audit.event.malformed", message: "audit event field '\(field)' \(rule)")
    }

    static func isHexDigit(_ c: UInt8) -> Bool {
        (48...57).contains(c) || (97...102).contains(c) || (65...70).contains(c)
    }

    /// IDs: 1–128 of `A–Z a–z 0–9 . _ : -`, starting with a letter or digit.
    static func identifier(_ value: String, _ field: String) throws {
        let bytes = Array(value.utf8)
        guard (1...128).contains(bytes.count), isAlphanumeric(bytes[0]),
            bytes.allSatisfy({ isAlphanumeric($0) || $0 == 46 || $0 == 95 || $0 == 58 || $0 == 45 })
        else { throw bad(field, "must be an ID (1–128 letters, digits, '.', '_', ':', '-')") }
    }

    /// Codes: 1–64 of `a–z 0–9 . _ -`, starting with a letter.
    static func code(_ value: String, _ field: String) throws {
        let bytes = Array(value.utf8)
        guard (1...64).contains(bytes.count), (97...122).contains(bytes[0]),
            bytes.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 46 || $0 == 95 || $0 == 45 })
        else { throw bad(field, "must be a lower-case code (letters, digits, '.', '_', '-')") }
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c)
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Refuses fields the schema does not know: an unknown field is where free text would slip in.
    static func refuseUnknownKeys(_ decoder: any Decoder, known: [String], in parent: String? = nil) throws {
        let keys = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
        if let unknown = keys.first(where: { !known.contains($0) }) {
            throw bad(parent.map { "\($0).\(unknown)" } ?? unknown, "is not part of the audit event schema")
        }
    }
}
