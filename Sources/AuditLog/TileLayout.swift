/// Paths and arithmetic of the C2SP `tlog-tiles` layout.
///
/// A tile at level L holds up to 256 hashes of nodes 8·L levels above the leaves; entry bundles hold up
/// to 256 entries, each prefixed with its length as a big-endian uint16. Tile indexes are written in
/// groups of three digits, all but the last prefixed with `x`: 1234067 → `x001/x234/067`.
public enum TileLayout {
    /// Hashes (or entries) per full tile.
    public static let width: UInt64 = 256
    /// Tree levels spanned by one tile level.
    public static let height = 8
    /// The largest entry a bundle can hold (uint16 length prefix).
    public static let maxEntrySize = 65_535

    /// The path element for tile index `n`, e.g. `x001/x234/067`.
    public static func indexPath(_ n: UInt64) -> String {
        var groups: [String] = []
        var rest = n
        repeat {
            let group = String(rest % 1000)
            groups.append(String(repeating: "0", count: 3 - group.count) + group)
            rest /= 1000
        } while rest > 0
        groups.reverse()
        return groups.enumerated().map { i, g in i < groups.count - 1 ? "x" + g : g }.joined(separator: "/")
    }

    /// The relative path of hash tile `index` at `level`, partial with `width` hashes when width < 256.
    public static func tilePath(level: Int, index: UInt64, width: UInt64 = TileLayout.width) -> String {
        "tile/\(level)/\(indexPath(index))" + (width < TileLayout.width ? ".p/\(width)" : "")
    }

    /// The relative path of entry bundle `index`, partial with `width` entries when width < 256.
    public static func bundlePath(index: UInt64, width: UInt64 = TileLayout.width) -> String {
        "tile/entries/\(indexPath(index))" + (width < TileLayout.width ? ".p/\(width)" : "")
    }

    /// The number of stored hashes at tile level `level` in a tree of `size` leaves.
    public static func hashCount(level: Int, size: UInt64) -> UInt64 {
        let shift = UInt64(level * height)
        return shift >= 64 ? 0 : size >> shift
    }

    /// The width of tile `index` among `count` stored hashes (256 when full, 0 when absent).
    public static func width(index: UInt64, count: UInt64) -> UInt64 {
        let start = index * width
        return count <= start ? 0 : min(width, count - start)
    }

    /// The number of tile levels holding at least one hash in a tree of `size` leaves.
    public static func levelCount(size: UInt64) -> Int {
        var level = 0
        while hashCount(level: level, size: size) > 0 { level += 1 }
        return level
    }

    /// Splits an entry bundle into its entries; nil when the bytes are not a well-formed bundle.
    public static func parseBundle(_ bytes: [UInt8]) -> [ArraySlice<UInt8>]? {
        var entries: [ArraySlice<UInt8>] = []
        var offset = 0
        while offset < bytes.count {
            guard offset + 2 <= bytes.count else { return nil }
            let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            offset += 2
            guard offset + length <= bytes.count else { return nil }
            entries.append(bytes[offset..<(offset + length)])
            offset += length
        }
        return entries
    }

    /// Appends an entry to a bundle being built.
    public static func appendEntry(_ entry: some Collection<UInt8>, to bundle: inout [UInt8]) {
        bundle.append(UInt8(entry.count >> 8))
        bundle.append(UInt8(entry.count & 0xFF))
        bundle.append(contentsOf: entry)
    }
}
