import CaduceusCore

/// The body of a C2SP `tlog-checkpoint`: the log's origin, its size and its root hash.
public struct Checkpoint: Sendable, Equatable {
    /// The log's unique name, e.g. `caduceus.example.org/audit`.
    public var origin: String
    /// The number of entries in the tree the checkpoint commits to.
    public var size: UInt64
    /// The RFC 9162 root hash of that tree.
    public var root: TreeHash

    /// Creates a checkpoint body.
    public init(origin: String, size: UInt64, root: TreeHash) {
        self.origin = origin
        self.size = size
        self.root = root
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    public var text: String { "\(origin)\n\(size)\n\(root.base64)\n" }

    /// Parses a checkpoint note's text (extension lines after the root are allowed and ignored).
    public init(text: String) throws {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard text.hasSuffix("\n"), lines.count >= 4, !lines[0].isEmpty, let size = UInt64(lines[1]),
            String(size) == lines[1], let rootBytes = Base64.decode(lines[2]), let root = TreeHash(bytes: rootBytes)
        else {
            throw CaduceusError(code: "audit.checkpoint.malformed", message: "the checkpoint body is malformed")
        }
        self.init(origin: String(lines[0]), size: size, root: root)
    }

    /// Opens a signed checkpoint note with `key` and parses it, checking its origin when one is expected.
    public static func open(_ note: [UInt8], key: NoteVerifierKey, origin: String? = nil) throws -> Checkpoint {
        let checkpoint = try Checkpoint(text: key.open(note))
        if let origin, checkpoint.origin != origin {
            throw CaduceusError(
                code: "audit.checkpoint.origin",
                message: "the checkpoint is for log '\(checkpoint.origin)', not '\(origin)'")
        }
        return checkpoint
    }
}

extension Checkpoint {
    /// Parses a signed checkpoint note without checking any signature, for tools that only need to know
    /// which tree it names (a proof built against it is checked with the key later, by whoever trusts it).
    public static func readUnverified(_ note: [UInt8]) throws -> Checkpoint {
        var split = note.count - 2
        while split >= 0 && !(note[split] == 0x0A && note[split + 1] == 0x0A) { split -= 1 }
        guard split >= 0 else {
            throw CaduceusError(code: "audit.checkpoint.malformed", message: "the checkpoint has no signature block")
        }
        return try Checkpoint(text: String(decoding: note[...split], as: UTF8.self))
    }
}

/// A checkpoint together with its signed note as published.
public struct SignedCheckpoint: Sendable, Equatable {
    /// The parsed body.
    public var checkpoint: Checkpoint
    /// The signed note bytes, exactly as written to the `checkpoint` file.
    public var note: [UInt8]
}
