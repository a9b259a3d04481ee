import AuditLog
import CaduceusCore
import CaduceusTesting
import Foundation
@_spi(Testing) import Persistence
import Testing

/// The audit log's shared journal in the database: batches recorded only where the log ends, read back
/// intact, and two writers racing for the same place never both recorded.
struct AuditJournalTests {
    /// Runs `work` on a thread of its own, as the audit log's committer does: the journal blocks its caller.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    static func batch(_ first: UInt64, _ count: Int, tag: String = "") -> JournalRecord {
        JournalRecord(
            firstIndex: first, entries: (0..<count).map { Array("entry \(first + UInt64($0))\(tag)".utf8) },
            checkpointNote: Array("note \(first)\(tag)\n".utf8))
    }

    @Test("batches are recorded where the log ends and read back intact", arguments: TestDatabase.engines)
    func appendAndRead(engine: StoreEngine) async throws {
        try await TestDatabase.with(engine) { database in
            let journal = database.auditJournal
            #expect(try await Self.onThread { try journal.last() } == nil)
            try await Self.onThread { try journal.append(Self.batch(0, 3)) }
            try await Self.onThread { try journal.append(Self.batch(3, 2)) }
            // Not where the log ends: refused, nothing recorded.
            await #expect(throws: CaduceusError.self) {
                try await Self.onThread { try journal.append(Self.batch(3, 1)) }
            }
            await #expect(throws: CaduceusError.self) {
                try await Self.onThread { try journal.append(Self.batch(9, 1)) }
            }
            #expect(try await Self.onThread { try journal.last() } == Self.batch(3, 2))
            #expect(
                try await Self.onThread { try journal.records(from: 0, limit: 10) } == [
                    Self.batch(0, 3), Self.batch(3, 2),
                ])
            #expect(try await Self.onThread { try journal.records(from: 3, limit: 10) } == [Self.batch(3, 2)])
            #expect(try await Self.onThread { try journal.records(from: 0, limit: 1) } == [Self.batch(0, 3)])
        }
    }

    @Test("a journal whose connection the server ended opens a new one for the next batch")
    func reconnects() async throws {
        guard TestDatabase.engines.contains(.postgres) else { return }
        let url = try await TestDatabase.createPostgresDatabase()
        let database = try await Database.openPostgres(url)
        let admin = try await Database.openPostgres(url)
        do {
            let journal = database.auditJournal
            try await Self.onThread { try journal.append(Self.batch(0, 2)) }
            // A server restart or a network cut ends the journal's connection under it.
            try await admin.terminateOtherConnections()
            var refused = 0
            for _ in 0..<2 {
                do {
                    try await Self.onThread { try journal.append(Self.batch(2, 1)) }
                    break
                } catch let error as CaduceusError {
                    #expect(error.code == "store.unavailable")
                    refused += 1
                }
            }
            #expect(refused <= 1)
            #expect(
                try await Self.onThread { try journal.records(from: 0, limit: 10) } == [
                    Self.batch(0, 2), Self.batch(2, 1),
                ])
            try await database.close()
            try await admin.close()
        } catch {
            try? await database.close()
            try? await admin.close()
            throw error
        }
    }

    @Test("writers racing for the same place: exactly one is recorded", arguments: TestDatabase.engines)
    func racingWriters(engine: StoreEngine) async throws {
        try await TestDatabase.with(engine) { database in
            let journal = database.auditJournal
            try await Self.onThread { try journal.append(Self.batch(0, 1)) }
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for writer in 0..<6 {
                    group.addTask {
                        try await Self.onThread {
                            (try? journal.append(Self.batch(1, 2, tag: " by \(writer)"))) != nil
                        }
                    }
                }
                var all: [Bool] = []
                for try await outcome in group { all.append(outcome) }
                return all
            }
            #expect(outcomes.filter { $0 }.count == 1)
            let records = try await Self.onThread { try journal.records(from: 0, limit: 10) }
            #expect(records.map(\.firstIndex) == [0, 1])
        }
    }

    @Test("a journal fenced by a lease appends only while that lease is its holder's", arguments: TestDatabase.engines)
    func fencedByLease(engine: StoreEngine) async throws {
        try await TestDatabase.with(engine) { database in
            let start = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)
            let mine = try await database.cluster.acquire(
                "leader", holder: "rep-a", now: start, expiresAt: start.adding(milliseconds: 6000))
            let fenced = database.auditJournal.fenced(by: mine)
            try await Self.onThread { try fenced.append(Self.batch(0, 2)) }
            // The lease runs out and another replica takes it: the old holder's appends are refused.
            let later = start.adding(milliseconds: 7000)
            let theirs = try await database.cluster.acquire(
                "leader", holder: "rep-b", now: later, expiresAt: later.adding(milliseconds: 6000))
            #expect(theirs.holder == "rep-b" && theirs.token > mine.token)
            await #expect(throws: CaduceusError.self) {
                try await Self.onThread { try fenced.append(Self.batch(2, 1)) }
            }
            try await Self.onThread { try database.auditJournal.fenced(by: theirs).append(Self.batch(2, 1)) }
            #expect(try await Self.onThread { try database.auditJournal.last() }?.endIndex == 3)
        }
    }
}
