import CaduceusCore
import Logging

/// The audit trail: events in the transparency log, their details sealed in the payload store beside it.
public final class AuditTrail: Sendable {
    /// The transparency log holding the events.
    public let log: TransparencyLog
    /// The sealed details payloads.
    public let payloads: PayloadStore
    /// Where payloads are stored first when replicas share the log.
    public let sharedPayloads: (any SharedPayloads)?

    /// Opens (or creates) the trail in `directory` with `keys`.
    public init(
        directory: String, keys: AuditKeys, options: TransparencyLogOptions = TransparencyLogOptions(),
        sharedPayloads: (any SharedPayloads)? = nil, logger: Logger = Logger(label: "caduceus.audit")
    ) throws {
        log = try TransparencyLog(directory: directory, signer: keys.signer, options: options, logger: logger)
        payloads = PayloadStore(directory: directory + "/payloads", key: keys.payloadKey)
        self.sharedPayloads = sharedPayloads
    }

    /// Checks `event` (in `canonicalEntry`), seals `details` (if any) and commits to them in the event, and appends it durably.
    ///
    /// Nothing is written when the event is malformed. The payload is durable before the event that
    /// commits to it; the returned index is durable and covered by a signed checkpoint.
    public func record(_ event: AuditEvent, details: JSONValue? = nil) async throws -> UInt64 {
        var event = event
        if let (commitment, sealed) = try payloads.seal(details, for: &event) {
            try await sharedPayloads?.put(commitment, sealed: sealed)
            try payloads.store(commitment, sealed: sealed)
        }
        return try await log.append(try event.canonicalEntry())
    }

    /// Stops the log after committing what is queued.
    public func close() async throws {
        try await log.close()
    }
}
