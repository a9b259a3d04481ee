import CaduceusCore
import Logging

/// Rebuilds a log's in-memory state when it is opened: from the materialised tiles and checkpoint, then
/// from the journal records past them.
enum LogRecovery {
    struct State {
        var frontier: MerkleFrontier
        var tiles: TileBuilder
        var signer: CheckpointSigner
        var materialized: SignedCheckpoint
    }

    static func recover(directory: String, journalDirectory: String, signer: NoteSigner, logger: Logger) throws -> State
    {
        let key = signer.verifierKey
        var materialized: SignedCheckpoint
        if let note = try FileSystem.readIfPresent(directory + "/checkpoint") {
            let checkpoint = try Checkpoint.open(note, key: key, origin: signer.name)
            materialized = SignedCheckpoint(checkpoint: checkpoint, note: note)
        } else {
            materialized = try CheckpointSigner.empty(signer: signer).last
        }
        let reader = TileReader(directory: directory, size: materialized.checkpoint.size)
        var frontier = try reader.frontier()
        guard frontier.root == materialized.checkpoint.root else {
            throw CaduceusError(
                code: "audit.recovery",
                message: "the tiles in \(directory) do not match its checkpoint of size \(materialized.checkpoint.size)"
            )
        }
        var tiles = try reader.tileBuilder()
        var last = materialized
        var replayed = 0
        for record in try Journal.recover(directory: journalDirectory) {
            if record.endIndex <= frontier.size { continue }
            guard record.firstIndex == frontier.size else {
                throw CaduceusError(
                    code: "audit.recovery",
                    message: "the journal in \(journalDirectory) starts at entry \(record.firstIndex), "
                        + "but the log's tiles end at \(frontier.size)")
            }
            last = try replay(record, frontier: &frontier, tiles: &tiles, key: key, origin: signer.name)
            replayed += record.entries.count
        }
        if let segment = Journal.segments(in: journalDirectory).last, segment.start > frontier.size {
            throw CaduceusError(
                code: "audit.recovery",
                message: "the journal in \(journalDirectory) continues from entry \(segment.start), but the log's "
                    + "checkpoint and tiles end at \(frontier.size): they are missing or were replaced")
        }
        if replayed > 0 {
            logger.info(
                "audit log recovered from its journal",
                metadata: ["entries": "\(replayed)", "size": "\(frontier.size)"])
        }
        return State(
            frontier: frontier, tiles: tiles, signer: CheckpointSigner(signer: signer, last: last),
            materialized: materialized)
    }

    /// Appends `record`, which starts where `frontier` ends, and checks its signed checkpoint against the
    /// tree it makes; returns that checkpoint.
    static func replay(
        _ record: JournalRecord, frontier: inout MerkleFrontier, tiles: inout TileBuilder, key: NoteVerifierKey,
        origin: String
    ) throws -> SignedCheckpoint {
        for entry in record.entries {
            frontier.append(TreeHash.leaf(entry)) { height, index, hash in
                tiles.addNode(height: height, index: index, hash: hash)
            }
            tiles.addEntry(entry)
        }
        let checkpoint = try Checkpoint.open(record.checkpointNote, key: key, origin: origin)
        guard checkpoint.size == frontier.size, checkpoint.root == frontier.root else {
            throw CaduceusError(
                code: "audit.recovery",
                message: "journal record at entry \(record.firstIndex) does not match its signed checkpoint")
        }
        return SignedCheckpoint(checkpoint: checkpoint, note: record.checkpointNote)
    }
}
