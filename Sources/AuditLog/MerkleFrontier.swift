/// The right edge of an RFC 9162 Merkle tree: the roots of its perfect subtrees, largest first.
///
/// Appending a leaf costs O(log n) hashes at worst and one on average; the root of the whole tree is
/// folded from at most log₂ n hashes. Every perfect subtree completed by an append is reported, which is
/// how tiles learn their hashes without hashing anything twice.
public struct MerkleFrontier: Sendable, Equatable {
    /// The number of leaves in the tree.
    public private(set) var size: UInt64
    /// Roots of the perfect subtrees, one for each set bit of `size`, highest bit first.
    public private(set) var subtrees: [TreeHash]

    /// Creates the frontier of an empty tree.
    public init() {
        self.size = 0
        self.subtrees = []
    }

    /// Creates the frontier of a tree of `size` leaves from the roots of its perfect subtrees, largest first.
    public init?(size: UInt64, subtrees: [TreeHash]) {
        guard subtrees.count == size.nonzeroBitCount else { return nil }
        self.size = size
        self.subtrees = subtrees
    }

    /// The perfect subtrees of a tree of `size` leaves, as (height, index) pairs, largest first.
    public static func subtreeCoordinates(size: UInt64) -> [(height: Int, index: UInt64)] {
        var result: [(height: Int, index: UInt64)] = []
        var height = 63
        while height >= 0 {
            if size >> UInt64(height) & 1 == 1 {
                result.append((height, (size >> UInt64(height)) - 1))
            }
            height -= 1
        }
        return result
    }

    /// Appends a leaf hash, calling `completed` for the leaf and every perfect subtree it closes.
    public mutating func append(
        _ leaf: TreeHash,
        completed: (_ height: Int, _ index: UInt64, _ hash: TreeHash) -> Void = { _, _, _ in }
    ) {
        append(leaf, height: 0, completed: completed)
    }

    /// Appends the root of a perfect subtree of `2^height` leaves; the tree's size must be a multiple of
    /// that. `completed` is called for it and every larger subtree it closes.
    public mutating func append(
        _ subtree: TreeHash, height: Int,
        completed: (_ height: Int, _ index: UInt64, _ hash: TreeHash) -> Void = { _, _, _ in }
    ) {
        precondition(size & ((UInt64(1) << UInt64(height)) - 1) == 0, "subtree is not aligned with the tree")
        var hash = subtree
        var level = height
        completed(level, size >> UInt64(level), hash)
        while size >> UInt64(level) & 1 == 1 {
            hash = TreeHash.node(subtrees.removeLast(), hash)
            level += 1
            completed(level, size >> UInt64(level), hash)
        }
        subtrees.append(hash)
        size += UInt64(1) << UInt64(height)
    }

    /// The root hash of the tree (RFC 9162 §2.1.1); the hash of the empty string for an empty tree.
    public var root: TreeHash {
        guard var hash = subtrees.last else { return .emptyTree }
        for subtree in subtrees.dropLast().reversed() {
            hash = TreeHash.node(subtree, hash)
        }
        return hash
    }
}
