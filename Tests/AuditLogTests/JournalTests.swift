import Foundation
import Testing

@testable import AuditLog

struct JournalTests {
    static func record(_ first: UInt64, _ count: Int) -> JournalRecord {
        JournalRecord(
            firstIndex: first, entries: (0..<count).map { Array("entry \(first + UInt64($0))".utf8) },
            checkpointNote: Array("note \(first)\n".utf8))
    }

    @Test("records round-trip and detect any damaged byte")
    func roundTrip() throws {
        let encoded = Self.record(10, 3).encoded()
        let decoded = try #require(JournalRecord.decode(encoded, at: 0))
        #expect(decoded.record == Self.record(10, 3))
        #expect(decoded.length == encoded.count)
        for i in stride(from: 0, to: encoded.count, by: 7) {
            var damaged = encoded
            damaged[i] ^= 0x04
            #expect(JournalRecord.decode(damaged, at: 0) == nil, "byte \(i)")
        }
        #expect(JournalRecord.decode(Array(encoded.dropLast()), at: 0) == nil)
    }

    @Test("a torn record at the end is cut off; acknowledged records stay")
    func tornTail() throws {
        let dir = try TemporaryDirectory("journal")
        defer { dir.remove() }
        var journal = Journal(directory: dir.path)
        try journal.openSegment(startingAt: 0)
        try journal.append(Self.record(0, 2).encoded())
        try journal.append(Self.record(2, 2).encoded())
        journal.close()
        let path = dir.path + "/" + Journal.segmentName(0)
        let intact = try Data(contentsOf: URL(fileURLWithPath: path))
        let torn = Self.record(4, 5).encoded()
        try (intact + Data(torn.prefix(torn.count / 2))).write(to: URL(fileURLWithPath: path))
        let records = try Journal.recover(directory: dir.path)
        #expect(records == [Self.record(0, 2), Self.record(2, 2)])
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == intact)
    }

    @Test("damage before an intact record is refused, not silently cut")
    func damageInTheMiddle() throws {
        let dir = try TemporaryDirectory("journal")
        defer { dir.remove() }
        let path = dir.path + "/" + Journal.segmentName(0)
        var bytes = Self.record(0, 2).encoded() + Self.record(2, 2).encoded()
        bytes[20] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: (any Error).self) { try Journal.recover(directory: dir.path) }
    }

    @Test("segments wholly below a materialised size are retired")
    func retire() throws {
        let dir = try TemporaryDirectory("journal")
        defer { dir.remove() }
        var journal = Journal(directory: dir.path)
        try journal.openSegment(startingAt: 0)
        try journal.append(Self.record(0, 4).encoded())
        try journal.rotate(startingAt: 4)
        try journal.append(Self.record(4, 4).encoded())
        try journal.rotate(startingAt: 8)
        journal.close()
        try Journal.retire(directory: dir.path, below: 4)
        #expect(Journal.segments(in: dir.path).map(\.start) == [4, 8])
        #expect(try Journal.recover(directory: dir.path) == [Self.record(4, 4)])
    }
}
