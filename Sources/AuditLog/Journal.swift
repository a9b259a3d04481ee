import CaduceusCore
import Crypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One committed batch as recorded in the journal (and in a shared journal, in distributed mode).
public struct JournalRecord: Equatable, Sendable {
    /// Index of the batch's first entry.
    public var firstIndex: UInt64
    /// The batch's entries, in order.
    public var entries: [[UInt8]]
    /// The checkpoint signed over the tree that ends with this batch.
    public var checkpointNote: [UInt8]

    public init(firstIndex: UInt64, entries: [[UInt8]], checkpointNote: [UInt8]) {
        self.firstIndex = firstIndex
        self.entries = entries
        self.checkpointNote = checkpointNote
    }

    /// The index just past the batch's last entry.
    public var endIndex: UInt64 { firstIndex + UInt64(entries.count) }

    /// `magic ‖ body length ‖ body ‖ SHA-256(magic ‖ length ‖ body)`; the body is
    /// `first index (u64) ‖ count (u32) ‖ (u16 length ‖ entry)* ‖ u16 note length ‖ note`.
    public func encoded() -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(entries.reduce(16 + checkpointNote.count) { $0 + $1.count + 2 })
        body.appendBigEndian(firstIndex)
        body.appendBigEndian(UInt32(entries.count))
        for entry in entries { TileLayout.appendEntry(entry, to: &body) }
        TileLayout.appendEntry(checkpointNote, to: &body)
        var record: [UInt8] = []
        record.reserveCapacity(body.count + 40)
        record.appendBigEndian(Journal.magic)
        record.appendBigEndian(UInt32(body.count))
        record += body
        record += SHA256.hash(data: record)
        return record
    }

    /// Decodes `bytes`, which must be exactly one whole, intact record; nil otherwise.
    public static func decode(_ bytes: [UInt8]) -> JournalRecord? {
        guard let (record, length) = decode(bytes, at: 0), length == bytes.count else { return nil }
        return record
    }

    /// Decodes the record at `offset`; nil if the bytes there are not a whole, intact record.
    static func decode(_ bytes: [UInt8], at offset: Int) -> (record: JournalRecord, length: Int)? {
        guard offset + 8 <= bytes.count, bytes.readBigEndian(UInt32.self, at: offset) == Journal.magic else {
            return nil
        }
        let bodyLength = Int(bytes.readBigEndian(UInt32.self, at: offset + 4))
        let total = 8 + bodyLength + 32
        guard bodyLength >= 14, offset + total <= bytes.count else { return nil }
        let digest = SHA256.hash(data: bytes[offset..<(offset + 8 + bodyLength)])
        guard digest.elementsEqual(bytes[(offset + 8 + bodyLength)..<(offset + total)]) else { return nil }
        var cursor = offset + 8
        let firstIndex = bytes.readBigEndian(UInt64.self, at: cursor)
        let count = Int(bytes.readBigEndian(UInt32.self, at: cursor + 8))
        cursor += 12
        let end = offset + 8 + bodyLength
        var items: [[UInt8]] = []
        items.reserveCapacity(count + 1)
        while cursor < end {
            guard cursor + 2 <= end else { return nil }
            let length = Int(bytes[cursor]) << 8 | Int(bytes[cursor + 1])
            cursor += 2
            guard cursor + length <= end else { return nil }
            items.append(Array(bytes[cursor..<(cursor + length)]))
            cursor += length
        }
        guard items.count == count + 1 else { return nil }
        let note = items.removeLast()
        return (JournalRecord(firstIndex: firstIndex, entries: items, checkpointNote: note), total)
    }
}

/// The append-only write-ahead journal: the durable record of every acknowledged batch.
///
/// Each batch is one record written with one `write` and made durable with one `fdatasync` before any of
/// its appenders is answered. Tiles and checkpoints are materialised from it and, after a crash, rebuilt
/// from it. It is split into segments named by their first index; a segment is deleted once the tiles
/// and checkpoint covering all of it are durable.
struct Journal {
    static let magic: UInt32 = 0x434A_5231  // "CJR1"

    let directory: String
    private var fd: Int32 = -1
    private var path = ""
    private(set) var segmentStart: UInt64 = 0

    init(directory: String) {
        self.directory = directory
    }

    static func segmentName(_ firstIndex: UInt64) -> String {
        let digits = String(firstIndex)
        return String(repeating: "0", count: 20 - digits.count) + digits + ".wal"
    }

    /// The segments present, sorted by first index.
    static func segments(in directory: String) -> [(start: UInt64, path: String)] {
        FileSystem.list(directory).compactMap { name -> (UInt64, String)? in
            guard name.hasSuffix(".wal"), let start = UInt64(name.dropLast(4)) else { return nil }
            return (start, directory + "/" + name)
        }.sorted { $0.0 < $1.0 }
    }

    /// Reads every intact record in order. A torn record at the end of the last segment (an append that
    /// was never acknowledged) is cut off; damage anywhere else is an error, since it would lose
    /// acknowledged entries.
    static func recover(directory: String) throws -> [JournalRecord] {
        let segments = segments(in: directory)
        var records: [JournalRecord] = []
        for (position, segment) in segments.enumerated() {
            let bytes = try FileSystem.read(segment.path)
            var offset = 0
            while offset < bytes.count {
                guard let (record, length) = JournalRecord.decode(bytes, at: offset) else { break }
                records.append(record)
                offset += length
            }
            guard offset < bytes.count else { continue }
            let isLast = position == segments.count - 1
            if !isLast || containsIntactRecord(bytes, after: offset) {
                throw CaduceusError(
                    code: "audit.journal.corrupt",
                    message: "journal \(segment.path) is damaged at byte \(offset); acknowledged entries follow it")
            }
            try truncate(segment.path, to: offset)
        }
        return records
    }

    private static func containsIntactRecord(_ bytes: [UInt8], after offset: Int) -> Bool {
        var i = offset + 1
        while i + 8 <= bytes.count {
            if bytes.readBigEndian(UInt32.self, at: i) == magic, JournalRecord.decode(bytes, at: i) != nil {
                return true
            }
            i += 1
        }
        return false
    }

    private static func truncate(_ path: String, to length: Int) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystem.failure("cannot open", path) }
        defer { _ = closeDescriptor(fd) }
        guard ftruncate(fd, off_t(length)) == 0, fsync(fd) == 0 else {
            throw FileSystem.failure("cannot truncate", path)
        }
    }

    /// Opens (creating if needed) the segment that starts at `firstIndex` for appending.
    mutating func openSegment(startingAt firstIndex: UInt64) throws {
        close()
        try FileSystem.makeDirectories(directory)
        let existing = Self.segments(in: directory).last
        let start = existing.map { $0.start } ?? firstIndex
        let name = directory + "/" + Self.segmentName(start)
        let created = !FileSystem.exists(name)
        fd = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystem.failure("cannot open journal", name) }
        path = name
        segmentStart = start
        if created { try FileSystem.syncDirectory(directory) }
    }

    /// Starts a new segment at `firstIndex`: later records go there, and older segments can be retired.
    mutating func rotate(startingAt firstIndex: UInt64) throws {
        close()
        let name = directory + "/" + Self.segmentName(firstIndex)
        fd = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystem.failure("cannot create journal", name) }
        path = name
        segmentStart = firstIndex
        try FileSystem.syncDirectory(directory)
    }

    /// Appends one record and makes it durable.
    func append(_ record: [UInt8]) throws {
        try record.withUnsafeBytes { try FileSystem.writeAll(fd, $0, path: path) }
        guard fdatasync(fd) == 0 else { throw FileSystem.failure("cannot sync journal", path) }
    }

    /// Deletes segments that hold only entries below `size`, which tiles now cover durably.
    static func retire(directory: String, below size: UInt64) throws {
        let segments = segments(in: directory)
        for (i, segment) in segments.enumerated() where i + 1 < segments.count && segments[i + 1].start <= size {
            try FileSystem.remove(segment.path)
        }
    }

    mutating func close() {
        if fd >= 0 { _ = closeDescriptor(fd) }
        fd = -1
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    func readBigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value = value << 8 | T(self[offset + i]) }
        return value
    }
}
