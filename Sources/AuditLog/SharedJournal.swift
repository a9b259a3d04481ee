import CaduceusCore
import Logging
import Synchronization

/// The durable record of a log that several control-plane replicas share (PostgreSQL, in distributed
/// mode): the committed batches in order, each with the checkpoint signed after it.
///
/// The log that commits a batch records it here before anything else and before any appender is
/// answered; the local journal, tiles and checkpoint are then materialised from it, and a replica that
/// opens the log catches up from it. Calls block the log's committer thread, never a task.
public protocol SharedJournal: Sendable {
    /// The newest batch, or nil while the log is empty.
    func last() throws -> JournalRecord?

    /// Records `record`, which must start exactly where the shared log ends. Throws, recording nothing,
    /// when it does not (another writer recorded first), so two writers can never fork the log.
    func append(_ record: JournalRecord) throws

    /// Up to `limit` batches starting at or after entry `index`, in order.
    func records(from index: UInt64, limit: Int) throws -> [JournalRecord]
}

extension LogRecovery {
    /// Brings a recovered state up to the shared journal: the local log must be a prefix of it (the same
    /// root where the local log ends), and every batch past it is replayed and its checkpoint checked.
    static func catchUp(
        _ state: inout State, from shared: any SharedJournal, signer: NoteSigner, logger: Logger
    )
        throws
    {
        let key = signer.verifierKey
        let localSize = state.frontier.size
        guard let last = try shared.last() else {
            guard localSize == 0 else {
                throw CaduceusError(
                    code: "audit.recovery",
                    message: "this replica's audit log holds \(localSize) entries but the shared log is empty: "
                        + "it belongs to another deployment")
            }
            return
        }
        guard last.endIndex >= localSize else {
            throw CaduceusError(
                code: "audit.recovery",
                message: "this replica's audit log holds \(localSize) entries, more than the shared log's "
                    + "\(last.endIndex): it belongs to another deployment")
        }
        if last.endIndex == localSize {
            let checkpoint = try Checkpoint.open(last.checkpointNote, key: key, origin: signer.name)
            guard checkpoint.root == state.frontier.root else {
                throw CaduceusError(
                    code: "audit.recovery",
                    message: "this replica's audit log of \(localSize) entries differs from the shared log")
            }
            state.signer = CheckpointSigner(
                signer: signer, last: SignedCheckpoint(checkpoint: checkpoint, note: last.checkpointNote))
            return
        }
        var replayed = 0
        while state.frontier.size < last.endIndex {
            let records = try shared.records(from: state.frontier.size, limit: 512)
            guard let first = records.first, first.firstIndex == state.frontier.size else {
                throw CaduceusError(
                    code: "audit.recovery",
                    message: "the shared audit log has no batch starting at entry \(state.frontier.size), "
                        + "where this replica's log ends")
            }
            for record in records {
                let checkpoint = try replay(
                    record, frontier: &state.frontier, tiles: &state.tiles, key: key, origin: signer.name)
                state.signer = CheckpointSigner(signer: signer, last: checkpoint)
                replayed += record.entries.count
            }
        }
        logger.info(
            "audit log caught up from the shared journal",
            metadata: ["entries": "\(replayed)", "size": "\(state.frontier.size)"])
    }
}

/// A shared journal in memory: for tests, and for logs that several `TransparencyLog`s of one process share.
public final class MemorySharedJournal: SharedJournal {
    private let stored = Mutex<[JournalRecord]>([])

    public init() {}

    public func last() throws -> JournalRecord? { stored.withLock { $0.last } }

    public func append(_ record: JournalRecord) throws {
        try stored.withLock { records in
            let end = records.last?.endIndex ?? 0
            guard record.firstIndex == end else {
                throw SharedJournalError.misplaced(expected: end, offered: record.firstIndex)
            }
            records.append(record)
        }
    }

    public func records(from index: UInt64, limit: Int) throws -> [JournalRecord] {
        stored.withLock { records in Array(records.filter { $0.firstIndex >= index }.prefix(limit)) }
    }
}

/// What a shared journal refuses with.
public enum SharedJournalError {
    /// The code of a batch refused because the writer may not append there (another writer appended first,
    /// or the writer no longer holds the lead); the log that offered it fails closed.
    public static let conflict = "audit.shared.conflict"

    /// A batch offered at entry `offered` of a shared log that ends at `expected`.
    public static func misplaced(expected: UInt64, offered: UInt64) -> CaduceusError {
        CaduceusError(
            code: conflict,
            message: "the shared audit log ends at entry \(expected), not \(offered): another replica appended to it")
    }
}
