/// Interior hashes of full tiles, kept so that proofs need not rehash whole tiles.
///
/// A full tile is immutable, so what is computed from it stays true for every later tree size. For each
/// full tile the cache keeps the nodes 4 to 7 levels above the tile's own hashes (30 hashes, 960 bytes);
/// a proof then hashes at most 11 nodes per tile level instead of 247. Entries are evicted oldest first
/// beyond `limit` tiles. It is safe to share between readers and threads.
public final class TileNodeCache: @unchecked Sendable {
    // Safe: `entries` and `order` are only touched with `lock` held.
    private let lock = ConditionLock()
    private var entries: [Key: [TreeHash]] = [:]
    private var order: [Key] = []
    private var orderStart = 0
    private let limit: Int

    struct Key: Hashable {
        var directory: String
        var level: Int
        var index: UInt64
    }

    /// The lowest in-tile height kept.
    static let lowestKept = 4

    /// Creates a cache holding at most `limit` tiles (the default, 32,768, is about 31 MiB).
    public init(limit: Int = 32_768) {
        self.limit = limit
    }

    /// The kept nodes of a full tile, computing them from its 256 hashes on first use.
    func upperNodes(_ key: Key, tile: () throws -> [UInt8]) rethrows -> [TreeHash] {
        if let nodes = lock.withLock({ entries[key] }) { return nodes }
        let bytes = try tile()
        var layer = bytes.withUnsafeBytes { raw in
            (0..<Int(TileLayout.width)).map { TreeHash(loading: UnsafeRawBufferPointer(rebasing: raw[($0 * 32)...])) }
        }
        var kept: [TreeHash] = []
        kept.reserveCapacity(30)
        for height in 1..<TileLayout.height {
            layer = stride(from: 0, to: layer.count, by: 2).map { TreeHash.node(layer[$0], layer[$0 + 1]) }
            if height >= Self.lowestKept { kept += layer }
        }
        lock.withLock {
            if entries.updateValue(kept, forKey: key) == nil {
                order.append(key)
                if order.count - orderStart > limit {
                    entries[order[orderStart]] = nil
                    orderStart += 1
                    if orderStart > limit {
                        order.removeFirst(orderStart)
                        orderStart = 0
                    }
                }
            }
        }
        return kept
    }

    /// The position in `upperNodes` of the node at in-tile `height` (4…7) and `offset` within the tile.
    static func position(height: Int, offset: Int) -> Int {
        // Heights 4, 5, 6, 7 hold 16, 8, 4, 2 nodes.
        let before = [0, 16, 24, 28][height - lowestKept]
        return before + offset
    }
}
