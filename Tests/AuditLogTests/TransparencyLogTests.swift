import CaduceusCore
import Foundation
import Testing

@testable import AuditLog

struct TransparencyLogTests {
    @Test("concurrent appends get distinct indexes, each covered by a signed checkpoint")
    func concurrentAppends() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try AuditKeys.loadOrCreate(directory: dir.path + "/keys", origin: "test.caduceus/audit")
        let log = try TransparencyLog(directory: dir.path + "/audit", signer: keys.signer)
        let indexes = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for worker in 0..<40 {
                group.addTask {
                    var mine: [UInt64] = []
                    for i in 0..<25 {
                        let index = try await log.append(Array("worker \(worker) entry \(i)".utf8))
                        #expect(log.checkpoint.checkpoint.size > index)
                        mine.append(index)
                    }
                    return mine
                }
            }
            var all: [UInt64] = []
            for try await part in group { all += part }
            return all
        }
        #expect(indexes.sorted() == Array(0..<1000))
        let synced = try await log.sync()
        #expect(synced.checkpoint.size == 1000)
        try await log.close()
        let report = try await LogVerifier(directory: dir.path + "/audit", key: keys.signer.verifierKey).verify()
        #expect(report.entries == 1000)
        let reader = TileReader(directory: dir.path + "/audit", size: 1000)
        for index in [0, 255, 256, 999] as [UInt64] {
            let text = String(decoding: try reader.entry(at: index), as: UTF8.self)
            #expect(indexes.firstIndex(of: index) != nil && text.hasPrefix("worker "))
        }
    }

    /// A thread's name and nice value, as the kernel reports them (`stat`'s nineteenth field is the nice value).
    static func thread(_ id: Int) throws -> (name: String, nice: Int32) {
        let task = "/proc/self/task/\(id)"
        let name = try String(contentsOfFile: task + "/comm", encoding: .utf8).trimmingCharacters(in: .newlines)
        let stat = try String(contentsOfFile: task + "/stat", encoding: .utf8)
        // The name, in parentheses, may hold spaces: count the fields after it (the third field is the state).
        let fields = stat[stat.range(of: ")", options: .backwards)!.upperBound...].split(separator: " ")
        return (name, Int32(fields[16])!)
    }

    /// Whether this process may give a thread `nice`: with `CAP_SYS_NICE` (bit 23 of the effective
    /// capabilities), or within its `RLIMIT_NICE` ("Max nice priority" in its limits, which allows down to 20
    /// minus the limit).
    static func mayTake(nice: Int32) throws -> Bool {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let effective =
            status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
            .flatMap { UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) } ?? 0
        let limits = try String(contentsOfFile: "/proc/self/limits", encoding: .utf8)
        let limit =
            limits.split(separator: "\n").first { $0.hasPrefix("Max nice priority") }
            .flatMap { Int64($0.split(separator: " ").dropFirst(3).first ?? "") } ?? 0
        return effective & (1 << 23) != 0 || 20 - limit <= Int64(nice)
    }

    @Test("the committer runs on a named thread at the nice value asked for, where the process may raise it")
    func committerPriority() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try AuditKeys.loadOrCreate(directory: dir.path + "/keys", origin: "test.caduceus/audit")
        // A thread the process starts runs as the process does, unless it raises itself.
        let own = try Self.thread(Int(getpid())).nice
        for nice: Int32 in [-3, 0] {
            var options = TransparencyLogOptions()
            options.committerNice = nice
            let log = try TransparencyLog(directory: dir.path + "/audit", signer: keys.signer, options: options)
            let priority = log.committerPriority
            #expect(priority.requested == nice)
            let seen = try Self.thread(try #require(priority.thread))
            #expect(seen.name == "audit-commit")
            #expect(seen.nice == priority.granted)
            if nice < own, try Self.mayTake(nice: nice) {
                #expect(priority.isGranted && seen.nice == nice)
            } else {
                #expect(seen.nice == own && priority.isGranted == (nice == 0 || own <= nice))
            }
            _ = try await log.append(Array("entry at nice \(nice)".utf8))
            try await log.close()
        }
    }

    @Test("a reopened log continues where it stopped, and its checkpoints stay consistent")
    func reopen() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try await makeLog(in: dir.path, count: 300)
        let first = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/audit/checkpoint"))
        let log = try TransparencyLog(directory: dir.path + "/audit", signer: keys.signer)
        #expect(log.checkpoint.checkpoint.size == 300)
        #expect(try await log.append(Array("after reopen".utf8)) == 300)
        try await log.close()
        let report = try await LogVerifier(directory: dir.path + "/audit", key: keys.signer.verifierKey)
            .verify(trusted: Array(first))
        #expect(report.checkpoint.size == 301)
    }

    @Test("entries acknowledged before tiles were written are replayed from the journal")
    func recoversFromJournal() async throws {
        let dir = try TemporaryDirectory()
        let crash = try TemporaryDirectory("crash")
        defer {
            dir.remove()
            crash.remove()
        }
        let keys = try await makeLog(in: dir.path, count: 10)
        var options = TransparencyLogOptions()
        options.materializeInterval = 3_600_000_000_000
        let log = try TransparencyLog(directory: dir.path + "/audit", signer: keys.signer, options: options)
        for i in 0..<600 { _ = try await log.append(Array("more \(i)".utf8)) }
        // What a crash now would leave on disk: the journal holds the 600 entries, the tiles do not.
        try FileManager.default.copyItem(atPath: dir.path + "/audit", toPath: crash.path + "/audit")
        try await log.close()
        let before = Array(try Data(contentsOf: URL(fileURLWithPath: crash.path + "/audit/checkpoint")))
        #expect(try Checkpoint.readUnverified(before).size == 10)
        let recovered = try TransparencyLog(directory: crash.path + "/audit", signer: keys.signer)
        #expect(recovered.checkpoint.checkpoint.size == 610)
        #expect(try await recovered.append(Array("after recovery".utf8)) == 610)
        try await recovered.close()
        let report = try await LogVerifier(directory: crash.path + "/audit", key: keys.signer.verifierKey)
            .verify(trusted: before)
        #expect(report.entries == 611)
    }

    @Test("a log whose tiles are gone refuses to open rather than restart from empty")
    func refusesMissingTiles() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try await makeLog(in: dir.path, count: 600)
        try FileManager.default.removeItem(atPath: dir.path + "/audit/tile")
        try FileManager.default.removeItem(atPath: dir.path + "/audit/checkpoint")
        #expect(throws: CaduceusError.self) { try TransparencyLog(directory: dir.path + "/audit", signer: keys.signer) }
    }

    @Test("oversize and empty entries are refused before anything is written")
    func refusesBadEntries() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try AuditKeys.loadOrCreate(directory: dir.path + "/keys", origin: "test.caduceus/audit")
        let log = try TransparencyLog(directory: dir.path + "/audit", signer: keys.signer)
        await #expect(throws: CaduceusError.self) { try await log.append([UInt8](repeating: 1, count: 65_536)) }
        await #expect(throws: CaduceusError.self) { try await log.append([]) }
        #expect(try await log.append([UInt8](repeating: 1, count: 65_535)) == 0)
        try await log.close()
        await #expect(throws: CaduceusError.self) { try await log.append([1]) }
    }

    @Test("a log signed by another key or for another origin does not open")
    func wrongKey() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        _ = try await makeLog(in: dir.path, count: 3)
        let stranger = try NoteSigner.generate(name: "test.caduceus/audit")
        #expect(throws: CaduceusError.self) { try TransparencyLog(directory: dir.path + "/audit", signer: stranger) }
        let otherOrigin = try NoteSigner.generate(name: "other.caduceus/audit")
        #expect(throws: CaduceusError.self) { try TransparencyLog(directory: dir.path + "/audit", signer: otherOrigin) }
    }

    @Test("proofs built from tiles verify against the materialised checkpoint")
    func proofsFromTiles() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try await makeLog(in: dir.path, count: 70_000 / 100)
        let note = Array(try Data(contentsOf: URL(fileURLWithPath: dir.path + "/audit/checkpoint")))
        let checkpoint = try Checkpoint.open(note, key: keys.signer.verifierKey)
        let reader = TileReader(directory: dir.path + "/audit", size: checkpoint.size)
        for index in [0, 1, 255, 256, 511, 699] as [UInt64] {
            let proof = TlogProof(
                index: index,
                hashes: try MerkleProof.inclusionPath(index: index, size: checkpoint.size, reader: reader),
                checkpoint: note)
            let parsed = try TlogProof(text: proof.text)
            #expect(parsed == proof)
            try parsed.verify(entry: try reader.entry(at: index), key: keys.signer.verifierKey)
            #expect(throws: (any Error).self) {
                try parsed.verify(entry: Array("forged".utf8), key: keys.signer.verifierKey)
            }
        }
        for old in [1, 256, 300, 699] as [UInt64] {
            let path = try MerkleProof.consistencyPath(oldSize: old, newSize: checkpoint.size, reader: reader)
            let oldRoot = try MerkleProof.subtreeRoot(0, old, reader)
            try MerkleProof.verifyConsistency(
                size1: old, size2: checkpoint.size, proof: path.map(\.bytes), root1: oldRoot.bytes,
                root2: checkpoint.root.bytes)
        }
    }
}
