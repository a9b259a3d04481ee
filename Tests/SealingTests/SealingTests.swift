import CaduceusCore
import Crypto
import Foundation
import Testing

@testable import Sealing

/// The sealed-object format, to the byte: vectors made by a second implementation
/// (`scripts/sealed_object.py`), streaming in any piece sizes, random access, and every kind of tampering.
struct SealingTests {
    static let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors")
    static let key = SymmetricKey(data: Array(0x80..<0xA0).map { UInt8($0) })
    static let objectID = Array(0..<16).map { UInt8($0) }
    static let salt = Array(32..<64).map { UInt8($0) }
    /// `NONC` then the chunk index as a u64, as the vectors were made.
    static let fixedNonce: @Sendable (Int) -> [UInt8] = { index in
        var bytes: [UInt8] = Array("NONC".utf8)
        SealHeader.append(UInt64(index), width: 8, to: &bytes)
        return bytes
    }

    static func file(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: vectors.appendingPathComponent(name)))
    }

    static func seal(
        _ plaintext: [UInt8], chunkSize: Int, context: String = "", key: SymmetricKey = key, pieces: Int? = nil,
        fixed: Bool = true
    ) throws -> [UInt8] {
        var sealer = try Sealer(
            dataKey: key, keyID: [UInt8](repeating: 0, count: 16), keyVersion: 1,
            plaintextLength: UInt64(plaintext.count), chunkSize: chunkSize, context: context,
            objectID: fixed ? objectID : nil, salt: fixed ? salt : nil, nonce: fixed ? fixedNonce : nil)
        var output = sealer.headerBytes
        var offset = 0
        var generator = SeededBytes(seed: UInt64(plaintext.count))
        while offset < plaintext.count {
            let step = pieces ?? Int(generator.next() % 9_000) + 1
            let end = min(plaintext.count, offset + step)
            for chunk in try sealer.append(plaintext[offset..<end]) { output += chunk }
            offset = end
        }
        for chunk in try sealer.finish() { output += chunk }
        return output
    }

    static func open(_ sealed: [UInt8], key: SymmetricKey = key, range: Range<UInt64>? = nil) throws -> [UInt8] {
        let opener = try Opener(headerBytes: Array(sealed.prefix(SealHeader.size)), dataKey: key)
        try opener.check(objectSize: sealed.count)
        let wanted = range ?? 0..<opener.header.plaintextLength
        var plaintext: [UInt8] = []
        for index in opener.chunks(covering: wanted) {
            let (offset, size) = opener.header.location(ofChunk: index)
            plaintext += try opener.open(chunk: index, sealed[offset..<(offset + size)])
        }
        let start =
            Int(wanted.lowerBound) - opener.chunks(covering: wanted).lowerBound * opener.header.plaintextPerChunk
        return Array(plaintext[start..<(start + wanted.count)])
    }

    @Test(
        "known answers: fixed key, salt, object id and nonces give the checked-in bytes, which open",
        arguments: [
            ("empty", ""), ("short", "tnt-0001/dst-0002/obj-0003"), ("three-chunks", "tnt-0001/dst-0002"),
            ("two-full-chunks", ""),
        ])
    func knownAnswers(name: String, context: String) throws {
        let plaintext = try Self.file(name + ".plain")
        let expected = try Self.file(name + ".sealed")
        #expect(
            Array(try Data(contentsOf: Self.vectors.appendingPathComponent("key.bin")))
                == Self.key.withUnsafeBytes { Array($0) })
        for pieces in [1, 7, 4068, 100_000] {
            #expect(try Self.seal(plaintext, chunkSize: 4096, context: context, pieces: pieces) == expected, "\(name)")
        }
        #expect(try Self.open(expected) == plaintext)
        let header = try Opener(headerBytes: expected, dataKey: Self.key).header
        #expect(header.context == context && header.keyVersion == 1 && header.chunkSize == 4096)
    }

    @Test("random objects of any size round-trip through streaming, and any range reads back alone")
    func roundTripAndRanges() throws {
        var generator = SeededBytes(seed: 42)
        for _ in 0..<40 {
            let length = Int(generator.next() % 30_000)
            let plaintext = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let chunkSize = 4096 * Int(1 + generator.next() % 3)
            let sealed = try Self.seal(plaintext, chunkSize: chunkSize, fixed: false)
            #expect(try Self.open(sealed) == plaintext)
            for _ in 0..<5 where length > 0 {
                let a = Int(generator.next() % UInt64(length))
                let b = a + Int(generator.next() % UInt64(length - a + 1))
                #expect(try Self.open(sealed, range: UInt64(a)..<UInt64(b)) == Array(plaintext[a..<b]))
            }
        }
    }

    @Test("sealing refuses more or less plaintext than declared, and formats it cannot write")
    func badInput() throws {
        var sealer = try Sealer(
            dataKey: Self.key, keyID: Array(repeating: 0, count: 16), keyVersion: 1, plaintextLength: 10,
            chunkSize: 4096, context: "")
        #expect(throws: CaduceusError.self) { _ = try sealer.append([UInt8](repeating: 1, count: 11)) }
        #expect(try sealer.append([UInt8]()).isEmpty)
        _ = try sealer.append([UInt8](repeating: 1, count: 9))
        #expect(throws: CaduceusError.self) { _ = try sealer.finish() }
        #expect(throws: CaduceusError.self) {
            _ = try Sealer(
                dataKey: Self.key, keyID: Array(repeating: 0, count: 16), keyVersion: 1, plaintextLength: 1,
                chunkSize: 5000, context: "")
        }
        #expect(throws: CaduceusError.self) {
            _ = try Sealer(
                dataKey: Self.key, keyID: Array(repeating: 0, count: 16), keyVersion: 1, plaintextLength: 1,
                context: String(repeating: "x", count: 3901))
        }
    }

    /// Every way of altering a sealed object fails with an integrity error, never with other plaintext.
    @Test("wrong key, truncation, extension, reordering, splicing and bit flips all fail as integrity errors")
    func tampering() throws {
        var generator = SeededBytes(seed: 7)
        for round in 0..<30 {
            let length = 4068 * 3 + Int(generator.next() % 5000)
            let plaintext = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let sealed = try Self.seal(plaintext, chunkSize: 4096, fixed: false)
            let other = try Self.seal(plaintext, chunkSize: 4096, fixed: false)
            func refused(_ bytes: [UInt8], key: SymmetricKey = Self.key, _ what: String) {
                do {
                    let opened = try Self.open(bytes, key: key)
                    Issue.record("\(what) (round \(round)) opened to \(opened.count) bytes")
                } catch let error as CaduceusError {
                    #expect(error.code == "seal.integrity", "\(what): \(error)")
                } catch {
                    Issue.record("\(what): \(error)")
                }
            }
            refused(sealed, key: SymmetricKey(size: .bits256), "a wrong key")
            refused(Array(sealed.dropLast(1 + Int(generator.next() % 100))), "truncated")
            refused(Array(sealed.prefix(4096 + 4096 * 2)), "cut at a chunk boundary")
            refused(sealed + [0], "extended by a byte")
            refused(sealed + Array(sealed[4096..<8192]), "extended by a chunk")
            var swapped = sealed
            swapped.replaceSubrange(4096..<8192, with: sealed[8192..<12288])
            swapped.replaceSubrange(8192..<12288, with: sealed[4096..<8192])
            refused(swapped, "two chunks swapped")
            var spliced = sealed
            spliced.replaceSubrange(8192..<12288, with: other[8192..<12288])
            refused(spliced, "a chunk of another object with the same key")
            var headerSpliced = other
            headerSpliced.replaceSubrange(0..<4096, with: sealed[0..<4096])
            refused(headerSpliced, "another object's header")
            for _ in 0..<20 {
                var flipped = sealed
                let position = Int(generator.next() % UInt64(sealed.count))
                flipped[position] ^= UInt8(1 << (generator.next() % 8))
                refused(flipped, "bit flipped at \(position)")
            }
        }
    }

    @Test("files: sealed under a temporary name, read back whole or by range; a cut file fails")
    func files() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/caduceus-seal-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let plaintext = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(plaintext).write(to: URL(fileURLWithPath: directory + "/in"))
        let sealed = try SealedFile.seal(
            input: directory + "/in", output: directory + "/out", dataKey: Self.key,
            keyID: Array(repeating: 0, count: 16), keyVersion: 1, chunkSize: 8192, context: "ctx")
        #expect(sealed.plaintextSHA256 == SHA256.hash(data: plaintext).map { String(format: "%02x", $0) }.joined())
        #expect(!FileManager.default.fileExists(atPath: directory + "/out.partial"))
        var whole: [UInt8] = []
        try SealedFile.open(path: directory + "/out", dataKey: Self.key) { whole += Array($0) }
        #expect(whole == plaintext)
        var part: [UInt8] = []
        try SealedFile.open(path: directory + "/out", dataKey: Self.key, range: 8000..<20_000) { part += Array($0) }
        #expect(part == Array(plaintext[8000..<20_000]))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/out"))
        try bytes.prefix(bytes.count - 5).write(to: URL(fileURLWithPath: directory + "/cut"))
        #expect(throws: CaduceusError.self) {
            try SealedFile.open(path: directory + "/cut", dataKey: Self.key) { _ in }
        }
    }
}

/// A small deterministic generator (SplitMix64).
struct SeededBytes {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
