import CaduceusCore

/// Signs checkpoints, refusing any that does not extend the last one it signed.
struct CheckpointSigner {
    let signer: NoteSigner
    /// The last checkpoint signed (or recovered as signed).
    private(set) var last: SignedCheckpoint

    init(signer: NoteSigner, last: SignedCheckpoint) {
        self.signer = signer
        self.last = last
    }

    /// A signer for a new, empty log.
    static func empty(signer: NoteSigner) throws -> CheckpointSigner {
        let checkpoint = Checkpoint(origin: signer.name, size: 0, root: .emptyTree)
        let note = try signer.sign(checkpoint.text)
        return CheckpointSigner(signer: signer, last: SignedCheckpoint(checkpoint: checkpoint, note: Array(note.utf8)))
    }

    /// Signs `next`, the tree grown from the one whose root was `previousRoot`.
    ///
    /// Refuses unless `previousRoot` is the root of the last signed checkpoint and `next` is no smaller,
    /// so that no two signed checkpoints of this log can ever be inconsistent.
    mutating func sign(_ next: Checkpoint, extending previousRoot: TreeHash) throws -> SignedCheckpoint {
        let previous = last.checkpoint
        guard next.origin == previous.origin, previousRoot == previous.root, next.size >= previous.size,
            next.size > previous.size || next.root == previous.root
        else {
            throw CaduceusError(
                code: "audit.checkpoint.inconsistent",
                message: "refusing to sign checkpoint \(next.size) that does not extend checkpoint \(previous.size)")
        }
        last = SignedCheckpoint(checkpoint: next, note: Array(try signer.sign(next.text).utf8))
        return last
    }
}
