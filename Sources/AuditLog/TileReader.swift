import CaduceusCore

/// Reads hashes and entries of a tree of a given size from a log directory in the tile layout.
///
/// A partial tile that has been superseded by its full tile is read from the full tile, as C2SP allows.
/// Recently read tiles are kept, so that proofs about nearby entries do not read the same file again.
public final class TileReader: SubtreeHashReader {
    /// The log directory.
    public let directory: String
    /// The tree size that decides which tiles are full and how wide the partial ones are.
    public let size: UInt64
    private var cache: [TileKey: [UInt8]] = [:]
    private var cacheOrder: [TileKey] = []
    private let cacheLimit: Int
    private let nodes: TileNodeCache?

    private struct TileKey: Hashable {
        var level: Int
        var index: UInt64
    }

    /// Creates a reader of the tree of `size` leaves stored under `directory`; with `nodes`, interior
    /// hashes of full tiles are kept there and reused by later proofs.
    public init(directory: String, size: UInt64, cacheLimit: Int = 64, nodes: TileNodeCache? = nil) {
        self.directory = directory
        self.size = size
        self.cacheLimit = cacheLimit
        self.nodes = nodes
    }

    /// The hashes of tile `index` at `level` (level −1 reads entry bundles' raw bytes instead).
    func tile(level: Int, index: UInt64) throws -> [UInt8] {
        let key = TileKey(level: level, index: index)
        if let cached = cache[key] { return cached }
        let width = TileLayout.width(
            index: index, count: level < 0 ? size : TileLayout.hashCount(level: level, size: size))
        guard width > 0 else {
            throw CaduceusError(code: "audit.tile.missing", message: "tile \(level)/\(index) is beyond size \(size)")
        }
        let bytes = try readTile(level: level, index: index, width: width)
        cache[key] = bytes
        cacheOrder.append(key)
        if cacheOrder.count > cacheLimit { cache[cacheOrder.removeFirst()] = nil }
        return bytes
    }

    private func readTile(level: Int, index: UInt64, width: UInt64) throws -> [UInt8] {
        let path = { (w: UInt64) in
            level < 0
                ? TileLayout.bundlePath(index: index, width: w)
                : TileLayout.tilePath(level: level, index: index, width: w)
        }
        if width < TileLayout.width, let partial = try FileSystem.readIfPresent(directory + "/" + path(width)) {
            return try check(partial, level: level, width: width, name: path(width))
        }
        let fullName = path(TileLayout.width)
        guard let full = try FileSystem.readIfPresent(directory + "/" + fullName) else {
            throw CaduceusError(code: "audit.tile.missing", message: "\(path(width)) is missing")
        }
        let checked = try check(full, level: level, width: TileLayout.width, name: fullName)
        guard width < TileLayout.width else { return checked }
        if level >= 0 { return Array(checked[0..<(Int(width) * 32)]) }
        var end = 0
        for _ in 0..<width { end += 2 + (Int(checked[end]) << 8 | Int(checked[end + 1])) }
        return Array(checked[0..<end])
    }

    private func check(_ bytes: [UInt8], level: Int, width: UInt64, name: String) throws -> [UInt8] {
        if level >= 0 {
            guard bytes.count == Int(width) * 32 else {
                throw CaduceusError(
                    code: "audit.tile.malformed", message: "\(name) has \(bytes.count) bytes, not \(width * 32)")
            }
        } else {
            guard let entries = TileLayout.parseBundle(bytes), entries.count == Int(width) else {
                throw CaduceusError(code: "audit.tile.malformed", message: "\(name) does not hold \(width) entries")
            }
        }
        return bytes
    }

    /// The entries of bundle `index`.
    public func entries(bundle index: UInt64) throws -> [ArraySlice<UInt8>] {
        let bytes = try tile(level: -1, index: index)
        guard let entries = TileLayout.parseBundle(bytes) else {
            throw CaduceusError(
                code: "audit.tile.malformed", message: "\(TileLayout.bundlePath(index: index)) is malformed")
        }
        return entries
    }

    /// Entry `index` of the log.
    public func entry(at index: UInt64) throws -> [UInt8] {
        guard index < size else {
            throw CaduceusError(code: "audit.index", message: "index \(index) is not below the log size \(size)")
        }
        return Array(try entries(bundle: index / TileLayout.width)[Int(index % TileLayout.width)])
    }

    /// The stored hash `index` at tile level `level` (a node at height 8·level).
    func storedHash(level: Int, index: UInt64) throws -> TreeHash {
        let bytes = try tile(level: level, index: index / TileLayout.width)
        let offset = Int(index % TileLayout.width) * 32
        return bytes.withUnsafeBytes { TreeHash(loading: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + 32)])) }
    }

    public func hash(height: Int, index: UInt64) throws -> TreeHash {
        let level = height / TileLayout.height
        let rest = height % TileLayout.height
        let first = index << UInt64(rest)
        let count = 1 << rest
        guard first + UInt64(count) <= TileLayout.hashCount(level: level, size: size) else {
            throw CaduceusError(code: "audit.tile.missing", message: "node \(height)/\(index) is beyond size \(size)")
        }
        if rest == 0 { return try storedHash(level: level, index: index) }
        let tileIndex = first / TileLayout.width
        let isFull =
            TileLayout.width(index: tileIndex, count: TileLayout.hashCount(level: level, size: size))
            == TileLayout.width
        if let nodes, isFull, rest >= TileNodeCache.lowestKept {
            let key = TileNodeCache.Key(directory: directory, level: level, index: tileIndex)
            let upper = try nodes.upperNodes(key) { try tile(level: level, index: tileIndex) }
            return upper[TileNodeCache.position(height: rest, offset: Int(index % (TileLayout.width >> UInt64(rest))))]
        }
        let bytes = try tile(level: level, index: tileIndex)
        let offset = Int(first % TileLayout.width)
        var layer = bytes.withUnsafeBytes { raw in
            (0..<count).map { TreeHash(loading: UnsafeRawBufferPointer(rebasing: raw[((offset + $0) * 32)...])) }
        }
        while layer.count > 1 {
            layer = stride(from: 0, to: layer.count, by: 2).map { TreeHash.node(layer[$0], layer[$0 + 1]) }
        }
        return layer[0]
    }

    /// The frontier of the tree, read from its tiles.
    public func frontier() throws -> MerkleFrontier {
        let hashes = try MerkleFrontier.subtreeCoordinates(size: size).map {
            try hash(height: $0.height, index: $0.index)
        }
        guard let frontier = MerkleFrontier(size: size, subtrees: hashes) else {
            throw CaduceusError(code: "audit.tile.malformed", message: "cannot rebuild the tree's right edge")
        }
        return frontier
    }

    /// The partial tile of each level and the partial bundle at this size, to continue building from.
    func tileBuilder() throws -> TileBuilder {
        var edges: [[UInt8]] = []
        for level in 0..<TileLayout.levelCount(size: size) {
            let count = TileLayout.hashCount(level: level, size: size)
            edges.append(count % TileLayout.width == 0 ? [] : try tile(level: level, index: count / TileLayout.width))
        }
        let bundle = size % TileLayout.width == 0 ? [] : try tile(level: -1, index: size / TileLayout.width)
        return TileBuilder(size: size, edges: edges, bundle: bundle)
    }
}
