import CaduceusCore

/// A C2SP `tlog-proof` (`c2sp.org/tlog-proof@v1`): an entry's index, its inclusion proof and the signed
/// checkpoint it leads to, checkable offline with the log's verifier key and the entry.
public struct TlogProof: Sendable, Equatable {
    /// The header line.
    public static let header = "c2sp.org/tlog-proof@v1"

    /// The entry's index in the log.
    public var index: UInt64
    /// The inclusion proof, leaf side first.
    public var hashes: [TreeHash]
    /// The signed checkpoint note the proof leads to.
    public var checkpoint: [UInt8]
    /// Optional opaque extra data.
    public var extra: [UInt8]?

    /// Creates a proof.
    public init(index: UInt64, hashes: [TreeHash], checkpoint: [UInt8], extra: [UInt8]? = nil) {
        self.index = index
        self.hashes = hashes
        self.checkpoint = checkpoint
        self.extra = extra
    }

    /// The text form.
    public var text: [UInt8] {
        var lines = [Self.header]
        if let extra { lines.append("extra " + Base64.encode(extra)) }
        lines.append("index \(index)")
        lines += hashes.map(\.base64)
        return Array((lines.joined(separator: "\n") + "\n\n").utf8) + checkpoint
    }

    /// Parses the text form.
    public init(text: [UInt8]) throws {
        func bad(_ why: String) -> CaduceusError {
            CaduceusError(code: "audit.proof.malformed", message: "not a \(Self.header) proof: \(why)")
        }
        var split = 0
        while split + 1 < text.count && !(text[split] == 0x0A && text[split + 1] == 0x0A) { split += 1 }
        guard split + 1 < text.count else { throw bad("no blank line before the checkpoint") }
        let lines = String(decoding: text[0..<split], as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == Substring(Self.header) else { throw bad("missing header") }
        var rest = lines.dropFirst()
        if let line = rest.first, line.hasPrefix("extra ") {
            guard let extra = Base64.decode(line.dropFirst(6)) else { throw bad("bad extra data") }
            self.extra = extra
            rest = rest.dropFirst()
        } else {
            self.extra = nil
        }
        guard let line = rest.first, line.hasPrefix("index "), let index = UInt64(line.dropFirst(6)) else {
            throw bad("missing index")
        }
        self.index = index
        self.hashes = try rest.dropFirst().map { line in
            guard let bytes = Base64.decode(line), let hash = TreeHash(bytes: bytes) else { throw bad("bad hash line") }
            return hash
        }
        self.checkpoint = Array(text[(split + 2)...])
    }

    /// Checks that `entry` is at `index` in the log whose checkpoint, signed by `key`, this proof carries.
    @discardableResult
    public func verify(entry: [UInt8], key: NoteVerifierKey) throws -> Checkpoint {
        let checkpoint = try Checkpoint.open(self.checkpoint, key: key)
        try MerkleProof.verifyInclusion(
            leafHash: TreeHash.leaf(entry).bytes, index: index, size: checkpoint.size, proof: hashes.map(\.bytes),
            root: checkpoint.root.bytes)
        return checkpoint
    }
}
