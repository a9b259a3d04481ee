/// A file of the tile layout to be written: its path relative to the log directory and its bytes.
struct TileFile: Sendable {
    var path: String
    var bytes: [UInt8]
    var isFull: Bool
}

/// Builds tiles and entry bundles as leaves are appended.
///
/// It keeps the right edge of every tile level (the hashes of the partial tile) and the partial entry
/// bundle in memory; full tiles are queued to be written once and never again.
struct TileBuilder {
    private(set) var size: UInt64
    private var edges: [[UInt8]]
    private var bundle: [UInt8]
    private var bundleCount: UInt64
    private var completed: [TileFile] = []

    /// Creates a builder for a tree of `size` leaves whose partial tiles hold `edges` (per level, the
    /// concatenated hashes) and whose partial bundle holds `bundle`.
    init(size: UInt64, edges: [[UInt8]], bundle: [UInt8]) {
        self.size = size
        self.edges = edges
        self.bundle = bundle
        self.bundleCount = size % TileLayout.width
    }

    /// Records a perfect subtree reported by the frontier; heights that are multiples of 8 are stored.
    mutating func addNode(height: Int, index: UInt64, hash: TreeHash) {
        guard height % TileLayout.height == 0 else { return }
        let level = height / TileLayout.height
        while edges.count <= level { edges.append([]) }
        withUnsafeBytes(of: hash.value) { edges[level].append(contentsOf: $0) }
        if edges[level].count == Int(TileLayout.width) * 32 {
            completed.append(
                TileFile(
                    path: TileLayout.tilePath(level: level, index: index / TileLayout.width), bytes: edges[level],
                    isFull: true))
            edges[level].removeAll(keepingCapacity: true)
        }
    }

    /// Records an entry (after its leaf's nodes have been added).
    mutating func addEntry(_ entry: [UInt8]) {
        TileLayout.appendEntry(entry, to: &bundle)
        bundleCount += 1
        if bundleCount == TileLayout.width {
            completed.append(
                TileFile(path: TileLayout.bundlePath(index: size / TileLayout.width), bytes: bundle, isFull: true))
            bundle.removeAll(keepingCapacity: true)
            bundleCount = 0
        }
        size += 1
    }

    /// The files that make the layout whole at the current size: every full tile completed since the last
    /// call, and the partial tile of each level and the partial bundle.
    mutating func takeFiles() -> [TileFile] {
        var files = completed
        completed.removeAll()
        for (level, edge) in edges.enumerated() where !edge.isEmpty {
            let count = TileLayout.hashCount(level: level, size: size)
            files.append(
                TileFile(
                    path: TileLayout.tilePath(
                        level: level, index: count / TileLayout.width, width: count % TileLayout.width),
                    bytes: edge, isFull: false))
        }
        if bundleCount > 0 {
            files.append(
                TileFile(
                    path: TileLayout.bundlePath(index: size / TileLayout.width, width: bundleCount), bytes: bundle,
                    isFull: false))
        }
        return files
    }
}
