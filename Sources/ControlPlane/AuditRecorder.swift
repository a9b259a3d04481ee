import AuditLog
import CaduceusCore
import Identity
import Logging

/// Appends one audit event per request, with who, what, where and how it ended.
public struct AuditRecorder: Sendable {
    let sink: any AuditSink
    /// The log itself, where this replica sequences it; nil on a follower, whose events go to the outbox.
    let trail: AuditTrail?
    let clock: any WallClock

    /// Creates a recorder appending to `trail`.
    public init(trail: AuditTrail, clock: any WallClock) {
        self.sink = trail
        self.trail = trail
        self.clock = clock
    }

    /// Creates a recorder appending through `sink` (a follower's outbox).
    public init(sink: any AuditSink, clock: any WallClock) {
        self.sink = sink
        self.trail = sink as? AuditTrail
        self.clock = clock
    }

    /// What an event is about.
    public struct Subject: Sendable {
        public var action: String
        public var resourceType: String
        public var resourceID: String
        public var tenant: TenantID?

        public init(action: String, resourceType: String, resourceID: String, tenant: TenantID? = nil) {
            self.action = action
            self.resourceType = resourceType
            self.resourceID = resourceID
            self.tenant = tenant
        }
    }

    /// Appends the event and waits until it is durable; marks the request audited.
    ///
    /// Throws `audit.unavailable` when the append fails: the caller must then undo what it did.
    public func record(
        _ request: RequestInfo, _ subject: Subject, outcome: AuditEvent.Outcome, breakGlass: BreakGlassID? = nil,
        actorOverride: (id: String, type: String)? = nil, details: JSONValue? = nil, purpose: String? = nil
    ) async throws {
        let actor: AuditEvent.Actor
        if let principal = request.principal {
            actor = .init(id: principal.id.rawValue, type: principal.kind == .service ? "service" : "user")
        } else if let actorOverride {
            actor = .init(id: actorOverride.id, type: actorOverride.type)
        } else {
            actor = .init(id: "anonymous", type: "system")
        }
        let event = AuditEvent(
            id: "evt-" + String(RequestID.generate().rawValue.dropFirst(4)), time: clock.now(), actor: actor,
            session: request.principal?.session?.rawValue ?? request.principal?.token?.rawValue,
            action: subject.action, resource: .init(type: subject.resourceType, id: subject.resourceID),
            tenant: subject.tenant?.rawValue, outcome: outcome,
            purposeOfUse: breakGlass == nil ? purpose : "ETREAT", requestId: request.requestID.rawValue,
            sourceAddress: request.sourceAddress.flatMap(Self.address), breakGlass: breakGlass != nil,
            breakGlassGrant: breakGlass?.rawValue)
        // An attempt of this transaction that the database aborted may have appended this very event already,
        // unless the event commits with the transaction (and so went with the aborted attempt).
        let attempts = sink.joinsTransaction ? nil : TransactionAttempts.current
        let effect = AppendedEvent(event: event, details: details)
        if let attempts, attempts.alreadyMade(effect) {
            request.tracker.markAudited()
            return
        }
        do {
            try await sink.append(event, details: details)
        } catch {
            throw Failure.auditUnavailable(error)
        }
        attempts?.made(effect)
        request.tracker.markAudited()
    }

    /// An appended event as a transaction's attempts compare it: everything but its ID and time.
    struct AppendedEvent: Equatable, Sendable {
        var event: AuditEvent
        var details: JSONValue?

        init(event: AuditEvent, details: JSONValue?) {
            var event = event
            event.id = ""
            event.time = ""
            self.event = event
            self.details = details
        }
    }

    /// Keeps only an IP address (no port, no brackets), or nothing.
    static func address(_ text: String) -> String? {
        var value = text
        if value.hasPrefix("[") {
            value = String(value.dropFirst().prefix { $0 != "]" })
        } else if value.filter({ $0 == ":" }).count == 1 {
            value = String(value.prefix { $0 != ":" })
        }
        let allowed = value.utf8.allSatisfy {
            (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) || $0 == 46 || $0 == 58
        }
        return allowed && (2...45).contains(value.utf8.count) ? value : nil
    }
}
