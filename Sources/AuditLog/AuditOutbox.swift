import CaduceusCore
import Crypto

/// Where an audited request's event goes: the log itself on the replica that sequences it, or the outbox
/// on one that does not.
public protocol AuditSink: Sendable {
    /// Checks `event`, seals `details` (if any) and commits to them in the event, and records it durably.
    /// Throws, recording nothing, when it cannot.
    func append(_ event: AuditEvent, details: JSONValue?) async throws

    /// Whether an event appended now commits with the database transaction the caller runs in (and is
    /// undone with it), rather than on its own.
    var joinsTransaction: Bool { get }
}

/// Events that a replica which does not sequence the audit log (a follower, in distributed mode) recorded
/// durably, waiting for the replica that does to append them. An event leaves the outbox in the same
/// transaction that records the batch holding it in the shared journal, so it is appended exactly once,
/// whichever leader appends it and whenever a leader dies.
public protocol AuditOutbox: Sendable {
    /// Records `entry`, a canonical audit entry, durably (again: the same bytes, nothing changes). Inside a
    /// database transaction, it commits with that transaction.
    func put(_ entry: [UInt8]) async throws

    /// Whether `put` now joins the caller's database transaction.
    var joinsTransaction: Bool { get }

    /// Up to `limit` entries waiting, oldest first.
    func pending(limit: Int) async throws -> [OutboxEntry]

    /// Takes the entry stored under `digest` out without appending it (one that is not an audit event).
    func discard(_ digest: String) async throws
}

/// An entry waiting in the outbox, under the key it is stored and consumed by.
public struct OutboxEntry: Sendable, Equatable {
    /// The SHA-256 of the entry's bytes, in hex.
    public var digest: String
    /// The entry as stored; empty when what is stored does not decode.
    public var entry: [UInt8]

    public init(digest: String, entry: [UInt8]) {
        self.digest = digest
        self.entry = entry
    }

    /// The key an outbox entry is stored and consumed under: the SHA-256 of its bytes, in hex.
    public static func digest(of entry: [UInt8]) -> String { Hex.encode(Array(SHA256.hash(data: entry))) }
}

/// A follower's audit sink: details are sealed with the shared payload key into the shared payload store,
/// then the event goes into the outbox. Once `record` returns the event is durable in the shared database;
/// the leader appends it to the log (`AuditTrail.drain`).
public struct OutboxRecorder: AuditSink {
    let outbox: any AuditOutbox
    let payloads: any SharedPayloads
    let sealer: PayloadStore

    /// Records into `outbox`, sealing details with `keys`' payload key into `payloads`.
    public init(outbox: any AuditOutbox, payloads: any SharedPayloads, keys: AuditKeys) {
        self.outbox = outbox
        self.payloads = payloads
        // Sealing only: this store's folder is never written.
        sealer = PayloadStore(directory: "", key: keys.payloadKey)
    }

    public func append(_ event: AuditEvent, details: JSONValue?) async throws {
        var event = event
        if let (commitment, sealed) = try sealer.seal(details, for: &event) {
            try await payloads.put(commitment, sealed: sealed)
        }
        try await outbox.put(try event.canonicalEntry())
    }

    public var joinsTransaction: Bool { outbox.joinsTransaction }
}

extension AuditTrail: AuditSink {
    public func append(_ event: AuditEvent, details: JSONValue?) async throws {
        _ = try await record(event, details: details)
    }

    /// The log commits on its own: an event appended is there whatever the caller's transaction does.
    public var joinsTransaction: Bool { false }

    /// Appends what waits in `outbox` (up to `limit` entries) to the log; returns how many entries it took.
    ///
    /// Each entry's payload, if any, is copied from `payloads` into this trail's store first, so the payload
    /// is here before the event that commits to it. An entry that is not a well-formed canonical audit event
    /// is never appended: it is taken out of the outbox and returned in `refused` for the caller to report.
    public func drain(
        _ outbox: any AuditOutbox, payloads shared: any SharedPayloads, limit: Int = 256
    ) async throws -> (appended: Int, refused: [OutboxEntry]) {
        let waiting = try await outbox.pending(limit: limit)
        var accepted: [[UInt8]] = []
        var refused: [OutboxEntry] = []
        for waiting in waiting {
            let entry = waiting.entry
            guard OutboxEntry.digest(of: entry) == waiting.digest, let event = try? AuditEvent.decode(entry: entry),
                (try? event.canonicalEntry()) == entry
            else {
                try await outbox.discard(waiting.digest)
                refused.append(waiting)
                continue
            }
            if let commitment = event.payload, !payloads.contains(commitment) {
                guard let sealed = try await shared.get(commitment) else {
                    throw CaduceusError(
                        code: "audit.payload",
                        message: "an outbox event commits to the payload \(commitment), which the shared store lacks")
                }
                try payloads.store(commitment, sealed: sealed)
            }
            accepted.append(entry)
        }
        // All at once, so that they share batches; each returns once its batch, which takes it out of the
        // outbox, is durable.
        try await withThrowingTaskGroup(of: UInt64.self) { group in
            for entry in accepted { group.addTask { try await self.log.append(entry) } }
            try await group.waitForAll()
        }
        return (accepted.count, refused)
    }
}
