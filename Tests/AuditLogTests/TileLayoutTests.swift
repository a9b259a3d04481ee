import Testing

@testable import AuditLog

struct TileLayoutTests {
    @Test(
        "tile indexes are written in groups of three digits",
        arguments: [
            (UInt64(0), "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1234, "x001/234"),
            (1_234_067, "x001/x234/067"), (1_000_000, "x001/x000/000"),
        ])
    func indexPaths(index: UInt64, path: String) {
        #expect(TileLayout.indexPath(index) == path)
    }

    @Test("tile and bundle paths, full and partial")
    func paths() {
        #expect(TileLayout.tilePath(level: 0, index: 1234) == "tile/0/x001/234")
        #expect(TileLayout.tilePath(level: 1, index: 0, width: 3) == "tile/1/000.p/3")
        #expect(TileLayout.bundlePath(index: 7) == "tile/entries/007")
        #expect(TileLayout.bundlePath(index: 7, width: 255) == "tile/entries/007.p/255")
    }

    @Test("widths and counts per level")
    func widths() {
        #expect(TileLayout.hashCount(level: 0, size: 70_000) == 70_000)
        #expect(TileLayout.hashCount(level: 1, size: 70_000) == 273)
        #expect(TileLayout.hashCount(level: 2, size: 70_000) == 1)
        #expect(TileLayout.levelCount(size: 70_000) == 3)
        #expect(TileLayout.width(index: 273, count: 70_000) == 112)
        #expect(TileLayout.width(index: 0, count: 70_000) == 256)
        #expect(TileLayout.width(index: 300, count: 70_000) == 0)
    }

    @Test("bundles are big-endian uint16 length-prefixed entries")
    func bundles() throws {
        var bundle: [UInt8] = []
        TileLayout.appendEntry([0x61], to: &bundle)
        TileLayout.appendEntry([UInt8](repeating: 7, count: 300), to: &bundle)
        #expect(Array(bundle[0..<3]) == [0x00, 0x01, 0x61])
        #expect(Array(bundle[3..<5]) == [0x01, 0x2C])
        let entries = try #require(TileLayout.parseBundle(bundle))
        #expect(entries.map(\.count) == [1, 300])
        #expect(TileLayout.parseBundle(Array(bundle.dropLast())) == nil)
    }
}
