import CaduceusCore
import Foundation
import Synchronization
import Testing

@testable import AuditLog

/// Logs of several replicas sharing one durable record: one writer at a time, each new writer catching up
/// from the shared journal, and no way for two writers to fork the log.
struct SharedJournalTests {
    static func options(_ shared: any SharedJournal) -> TransparencyLogOptions {
        var options = TransparencyLogOptions()
        options.shared = shared
        return options
    }

    @Test("a replica with an empty directory catches up from the shared journal and continues the same tree")
    func catchUp() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try AuditKeys.loadOrCreate(directory: dir.path + "/keys", origin: "test.caduceus/audit")
        let shared = MemorySharedJournal()
        let first = try TransparencyLog(directory: dir.path + "/a", signer: keys.signer, options: Self.options(shared))
        for i in 0..<300 { _ = try await first.append(Array("first \(i)".utf8)) }
        try await first.close()
        let trusted = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/a/checkpoint"))
        #expect(try shared.last()?.endIndex == 300)

        let second = try TransparencyLog(directory: dir.path + "/b", signer: keys.signer, options: Self.options(shared))
        #expect(second.checkpoint.checkpoint.size == 300)
        #expect(try await second.append(Array("second".utf8)) == 300)
        try await second.close()
        let report = try await LogVerifier(directory: dir.path + "/b", key: keys.signer.verifierKey)
            .verify(trusted: Array(trusted))
        #expect(report.entries == 301)

        // The first replica leads again: it catches up on what the second appended, from where it stopped.
        let again = try TransparencyLog(directory: dir.path + "/a", signer: keys.signer, options: Self.options(shared))
        #expect(again.checkpoint.checkpoint.size == 301)
        #expect(try await again.append(Array("first again".utf8)) == 301)
        try await again.close()
        #expect(try await LogVerifier(directory: dir.path + "/a", key: keys.signer.verifierKey).verify().entries == 302)
    }

    @Test("a writer that fell behind cannot fork the log: its append fails and the log refuses more")
    func staleWriterRefused() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try AuditKeys.loadOrCreate(directory: dir.path + "/keys", origin: "test.caduceus/audit")
        let shared = MemorySharedJournal()
        let stale = try TransparencyLog(directory: dir.path + "/a", signer: keys.signer, options: Self.options(shared))
        _ = try await stale.append(Array("one".utf8))
        let current = try TransparencyLog(
            directory: dir.path + "/b", signer: keys.signer, options: Self.options(shared))
        #expect(try await current.append(Array("two".utf8)) == 1)
        await #expect(throws: (any Error).self) { _ = try await stale.append(Array("fork".utf8)) }
        await #expect(throws: (any Error).self) { _ = try await stale.append(Array("again".utf8)) }
        try? await stale.close()
        try await current.close()
        let records = try shared.records(from: 0, limit: 10)
        #expect(records.map(\.firstIndex) == [0, 1])
        #expect(records.flatMap(\.entries).map { String(decoding: $0, as: UTF8.self) } == ["one", "two"])
    }

    @Test("a local log that the shared journal does not contain refuses to open")
    func foreignLocalLog() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try AuditKeys.loadOrCreate(directory: dir.path + "/keys", origin: "test.caduceus/audit")
        let local = try TransparencyLog(directory: dir.path + "/a", signer: keys.signer)
        _ = try await local.append(Array("embedded".utf8))
        try await local.close()
        // An empty shared journal, and one holding a different history of the same length.
        #expect(throws: CaduceusError.self) {
            _ = try TransparencyLog(
                directory: dir.path + "/a", signer: keys.signer, options: Self.options(MemorySharedJournal()))
        }
        let other = MemorySharedJournal()
        let elsewhere = try TransparencyLog(
            directory: dir.path + "/b", signer: keys.signer, options: Self.options(other))
        _ = try await elsewhere.append(Array("different".utf8))
        try await elsewhere.close()
        #expect(throws: CaduceusError.self) {
            _ = try TransparencyLog(directory: dir.path + "/a", signer: keys.signer, options: Self.options(other))
        }
    }

    /// A shared journal whose database can be made unreachable.
    final class Unreachable: SharedJournal {
        let inner = MemorySharedJournal()
        let down = Mutex(false)

        func check() throws {
            if down.withLock({ $0 }) { throw CaduceusError(code: "store.unavailable", message: "the database is away") }
        }
        func last() throws -> JournalRecord? {
            try check()
            return try inner.last()
        }
        func append(_ record: JournalRecord) throws {
            try check()
            try inner.append(record)
        }
        func records(from index: UInt64, limit: Int) throws -> [JournalRecord] {
            try check()
            return try inner.records(from: index, limit: limit)
        }
    }

    @Test("while the shared journal cannot be reached appends are refused; once it can, the log goes on")
    func outage() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try AuditKeys.loadOrCreate(directory: dir.path + "/keys", origin: "test.caduceus/audit")
        let shared = Unreachable()
        let log = try TransparencyLog(directory: dir.path + "/a", signer: keys.signer, options: Self.options(shared))
        #expect(try await log.append(Array("before".utf8)) == 0)
        shared.down.withLock { $0 = true }
        await #expect(throws: CaduceusError.self) { _ = try await log.append(Array("during".utf8)) }
        #expect(log.checkpoint.checkpoint.size == 1)
        shared.down.withLock { $0 = false }
        #expect(try await log.append(Array("after".utf8)) == 1)
        try await log.close()
        #expect(try await LogVerifier(directory: dir.path + "/a", key: keys.signer.verifierKey).verify().entries == 2)
        let entries = try shared.inner.records(from: 0, limit: 10).flatMap(\.entries)
        #expect(entries.map { String(decoding: $0, as: UTF8.self) } == ["before", "after"])
    }

    /// Shared payloads in memory.
    final class MemoryPayloads: SharedPayloads {
        let stored = Mutex<[String: [UInt8]]>([:])
        func put(_ commitment: String, sealed: [UInt8]) async throws {
            stored.withLock { $0[commitment] = sealed }
        }
        func get(_ commitment: String) async throws -> [UInt8]? { stored.withLock { $0[commitment] } }
    }

    @Test("details recorded on one replica are copied to another that catches up, and open there")
    func payloadsFollowTheLog() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let keys = try AuditKeys.loadOrCreate(directory: dir.path + "/keys", origin: "test.caduceus/audit")
        let journal = MemorySharedJournal()
        let payloads = MemoryPayloads()
        let first = try AuditTrail(
            directory: dir.path + "/a", keys: keys, options: Self.options(journal), sharedPayloads: payloads)
        var commitments: [String] = []
        for n in 0..<300 {
            let index = try await first.record(
                sampleEvent(n), details: n % 3 == 0 ? .object(["n": .integer(Int64(n))]) : nil)
            #expect(index == UInt64(n))
        }
        try await first.close()
        commitments = payloads.stored.withLock { Array($0.keys) }
        #expect(commitments.count == 100)

        let second = try AuditTrail(
            directory: dir.path + "/b", keys: keys, options: Self.options(journal), sharedPayloads: payloads)
        let size = second.log.materializedCheckpoint.checkpoint.size
        #expect(size == 300)
        let copied = try await AuditTrail.copyPayloads(
            log: dir.path + "/b", size: size, payloads: second.payloads, from: payloads)
        #expect(copied == 100)
        for commitment in commitments { #expect(try second.payloads.get(commitment) != nil) }
        // Copied once: a second pass starts where the first stopped.
        #expect(
            try await AuditTrail.copyPayloads(
                log: dir.path + "/b", size: size, payloads: second.payloads, from: payloads) == 0)
        try await second.close()
    }
}
