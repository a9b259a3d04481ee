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

    @Test(
        "an outbox entry leaves the outbox with the batch that holds it, and only then", arguments: TestDatabase.engines
    )
    func outboxConsumedWithTheBatch(engine: StoreEngine) async throws {
        try await TestDatabase.with(engine) { database in
            let outbox = database.auditOutbox
            let (first, second) = (Array("outbox entry 1".utf8), Array("outbox entry 2".utf8))
            try await outbox.put(first)
            try await outbox.put(second)
            try await outbox.put(first)  // again: nothing changes
            #expect(try await outbox.pending(limit: 10).map(\.entry) == [first, second])
            #expect(try await outbox.count() == 2)

            let start = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)
            let mine = try await database.cluster.acquire(
                "leader", holder: "rep-a", now: start, expiresAt: start.adding(milliseconds: 6000))
            let fenced = database.auditJournal.fenced(by: mine)
            // A batch refused (not where the log ends) takes nothing out.
            let misplaced = JournalRecord(firstIndex: 5, entries: [second], checkpointNote: Array("n\n".utf8))
            await #expect(throws: CaduceusError.self) { try await Self.onThread { try fenced.append(misplaced) } }
            #expect(try await outbox.count() == 2)
            // A batch holding the first entry beside one of the leader's own takes exactly the first out.
            let batch = JournalRecord(
                firstIndex: 0, entries: [Array("leader's own".utf8), first], checkpointNote: Array("n\n".utf8))
            try await Self.onThread { try fenced.append(batch) }
            #expect(try await outbox.pending(limit: 10).map(\.entry) == [second])

            // A leader that lost the lease takes nothing out either.
            let later = start.adding(milliseconds: 7000)
            _ = try await database.cluster.acquire(
                "leader", holder: "rep-b", now: later, expiresAt: later.adding(milliseconds: 6000))
            let stale = JournalRecord(firstIndex: 2, entries: [second], checkpointNote: Array("n\n".utf8))
            await #expect(throws: CaduceusError.self) { try await Self.onThread { try fenced.append(stale) } }
            #expect(try await outbox.pending(limit: 10).map(\.entry) == [second])
            try await outbox.discard(OutboxEntry.digest(of: second))
            #expect(try await outbox.count() == 0)
        }
    }

    @Test(
        "the leader drains the outbox into the log: each event once, details with it, what is no event refused",
        arguments: TestDatabase.engines)
    func drainIntoTheLog(engine: StoreEngine) async throws {
        try await TestDatabase.with(engine) { database in
            let folder = FileManager.default.temporaryDirectory.path + "/caduceus-outbox-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let keys = try AuditKeys.loadOrCreate(directory: folder + "/keys", origin: "caduceus.test/outbox")
            var options = TransparencyLogOptions()
            options.shared = database.auditJournal
            let trail = try await Self.onThread { [options] in
                try AuditTrail(
                    directory: folder + "/audit", keys: keys, options: options, sharedPayloads: database.auditPayloads)
            }
            do {
                // A follower records three events, one with details; its own trail is not involved.
                let follower = OutboxRecorder(
                    outbox: database.auditOutbox, payloads: database.auditPayloads, keys: keys)
                let events = (1...3).map { n in
                    AuditEvent(
                        id: "evt-outbox-\(n)", time: Timestamp(millisecondsSinceEpoch: 1_795_000_000_000 + Int64(n)),
                        actor: .init(id: "anonymous", type: "system"),
                        action: "http.get", resource: .init(type: "route", id: "v1.tenants"), outcome: .error,
                        requestId: "req-outbox-\(n)")
                }
                for (n, event) in events.enumerated() {
                    try await follower.append(event, details: n == 1 ? .object(["why": .string("no leader")]) : nil)
                }
                // The leader's own event, beside them.
                _ = try await trail.record(
                    AuditEvent(
                        id: "evt-leader", time: Timestamp(millisecondsSinceEpoch: 1_795_000_000_000),
                        actor: .init(id: "anonymous", type: "system"),
                        action: "http.get", resource: .init(type: "route", id: "healthz"), outcome: .success))
                // Something that is not an audit event, put there by hand.
                try await database.auditOutbox.put(Array("not an event".utf8))

                let (appended, refused) = try await trail.drain(database.auditOutbox, payloads: database.auditPayloads)
                #expect(appended == 3)
                #expect(refused.map(\.entry) == [Array("not an event".utf8)])
                #expect(try await database.auditOutbox.count() == 0)
                // Draining again appends nothing more.
                #expect(try await trail.drain(database.auditOutbox, payloads: database.auditPayloads).appended == 0)

                let checkpoint = try await trail.log.sync()
                #expect(checkpoint.checkpoint.size == 4)
                let reader = TileReader(directory: folder + "/audit", size: checkpoint.checkpoint.size)
                let logged = try (0..<checkpoint.checkpoint.size).map {
                    try AuditEvent.decode(entry: try reader.entry(at: $0))
                }
                #expect(Set(logged.map(\.id)) == ["evt-leader", "evt-outbox-1", "evt-outbox-2", "evt-outbox-3"])
                // The details a follower sealed are in the leader's own payload folder, and open.
                let commitment = try #require(logged.first { $0.id == "evt-outbox-2" }?.payload)
                #expect(trail.payloads.contains(commitment))
                #expect(
                    try trail.payloads.get(commitment).map { String(decoding: $0, as: UTF8.self) }
                        == #"{"why":"no leader"}"#)
                // The shared journal holds the same history.
                #expect(try await Self.onThread { try database.auditJournal.last() }?.endIndex == 4)
                try await trail.close()
            } catch {
                try? await trail.close()
                throw error
            }
        }
    }
}
