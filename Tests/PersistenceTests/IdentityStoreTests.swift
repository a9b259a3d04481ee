import CaduceusCore
import CaduceusTesting
import Foundation
import Identity
import Persistence
import Testing

struct IdentityStoreTests {
    let now = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)

    func withStore(_ engine: StoreEngine, _ body: (SQLIdentityStore) async throws -> Void) async throws {
        try await TestDatabase.with(engine) { database in try await body(database.identity) }
    }

    func user(_ name: String) -> UserRecord {
        UserRecord(id: .generate(), name: name, kind: .user, passwordHash: "$scrypt$x", createdAt: now)
    }

    @Test("users round-trip; names are unique; updates persist", arguments: TestDatabase.engines)
    func users(engine: StoreEngine) async throws {
        try await withStore(engine) { store in
            var alice = user("alice")
            alice.throttle.recordFailure(at: now)
            try await store.insertUser(alice)
            #expect(try await store.user(id: alice.id) == alice)
            #expect(try await store.user(named: "alice") == alice)
            await #expect(throws: CaduceusError.self) { try await store.insertUser(user("alice")) }
            alice.disabled = true
            alice.totpLastStep = 42
            try await store.updateUser(alice)
            #expect(try await store.user(id: alice.id) == alice)
            #expect(try await store.userCount() == 1)
        }
    }

    @Test("lists are cursor-paginated in ID order without gaps or repeats", arguments: TestDatabase.engines)
    func pagination(engine: StoreEngine) async throws {
        try await withStore(engine) { store in
            var ids: [UserID] = []
            for i in 0..<25 {
                let record = user("user\(i)")
                ids.append(record.id)
                try await store.insertUser(record)
            }
            var seen: [UserID] = []
            var cursor: String?
            repeat {
                let page = try await store.users(after: cursor, limit: 10)
                #expect(page.items.count <= 10)
                seen += page.items.map(\.id)
                cursor = page.next
            } while cursor != nil
            #expect(seen == ids.sorted())
        }
    }

    @Test("sessions end one by one or all at once for a user", arguments: TestDatabase.engines)
    func sessions(engine: StoreEngine) async throws {
        try await withStore(engine) { store in
            let alice = user("alice")
            try await store.insertUser(alice)
            let one = SessionRecord(id: .generate(), user: alice.id, tokenDigest: "d1", createdAt: now, lastSeenAt: now)
            let two = SessionRecord(id: .generate(), user: alice.id, tokenDigest: "d2", createdAt: now, lastSeenAt: now)
            try await store.insertSession(one)
            try await store.insertSession(two)
            try await store.touchSession(one.id, at: now.adding(milliseconds: 5000))
            #expect(try await store.session(digest: "d1")?.lastSeenAt == now.adding(milliseconds: 5000))
            try await store.endSession(one.id, at: now.adding(milliseconds: 6000))
            let ended = try await store.endSessions(of: alice.id, at: now.adding(milliseconds: 7000))
            #expect(ended == [two.id])
            #expect(try await store.session(digest: "d1")?.endedAt == now.adding(milliseconds: 6000))
            #expect(try await store.session(digest: "d2")?.endedAt == now.adding(milliseconds: 7000))
        }
    }

    @Test("a failed transaction changes nothing", arguments: TestDatabase.engines)
    func rollback(engine: StoreEngine) async throws {
        try await withStore(engine) { store in
            struct Boom: Error {}
            await #expect(throws: (any Error).self) {
                try await store.transaction { tx in
                    try await tx.insertUser(user("carol"))
                    throw Boom()
                }
            }
            #expect(try await store.user(named: "carol") == nil)
            try await store.transaction { tx in try await tx.insertUser(user("dave")) }
            #expect(try await store.user(named: "dave") != nil)
        }
    }

    @Test(
        "tenants, projects, bindings, tokens, grants and idempotency keys round-trip", arguments: TestDatabase.engines)
    func everythingElse(engine: StoreEngine) async throws {
        try await withStore(engine) { store in
            let alice = user("alice")
            try await store.insertUser(alice)
            let tenant = TenantRecord(id: .generate(), name: "st-marys", createdAt: now)
            try await store.insertTenant(tenant)
            let project = ProjectRecord(id: .generate(), tenant: tenant.id, name: "radiology", createdAt: now)
            try await store.insertProject(project)
            #expect(try await store.projects(of: tenant.id, after: nil, limit: 10).items == [project])
            #expect(try await store.projects(of: .generate(), after: nil, limit: 10).items.isEmpty)
            await #expect(throws: CaduceusError.self) {
                try await store.insertProject(
                    ProjectRecord(id: .generate(), tenant: .generate(), name: "x", createdAt: now))
            }
            let binding = RoleBindingRecord(
                binding: RoleBinding(
                    id: .generate(), user: alice.id, role: .researcher, scope: .project(tenant.id, project.id)),
                grantedBy: nil, grantedAt: now)
            try await store.insertBinding(binding)
            #expect(try await store.bindings(of: alice.id) == [binding])
            await #expect(throws: CaduceusError.self) {
                var duplicate = binding
                duplicate.binding.id = .generate()
                try await store.insertBinding(duplicate)
            }
            try await store.deleteBinding(binding.binding.id)
            #expect(try await store.bindings(of: alice.id).isEmpty)

            let token = APITokenRecord(
                id: .generate(), user: alice.id, name: "ci", tokenDigest: "t1", scope: .tenant(tenant.id),
                createdAt: now,
                expiresAt: now.adding(milliseconds: 86_400_000))
            try await store.insertToken(token)
            #expect(try await store.token(digest: "t1") == token)
            #expect(try await store.revokeTokens(of: alice.id, at: now) == [token.id])
            #expect(try await store.token(id: token.id)?.revokedAt == now)

            var grant = BreakGlassGrant(
                id: .generate(), user: alice.id, tenant: tenant.id, reason: "patient in resuscitation bay 3",
                openedAt: now, expiresAt: now.adding(milliseconds: 3_600_000))
            try await store.insertGrant(grant)
            grant.reviewedBy = alice.id
            grant.reviewedAt = now
            grant.reviewNote = "justified"
            try await store.updateGrant(grant)
            #expect(try await store.grant(id: grant.id) == grant)

            let record = IdempotencyRecord(
                principal: alice.id, key: "k1", requestDigest: "r", status: 201, body: "{}", createdAt: now)
            try await store.saveIdempotency(record)
            #expect(try await store.idempotency(principal: alice.id, key: "k1") == record)
            await #expect(throws: CaduceusError.self) { try await store.saveIdempotency(record) }
        }
    }

    @Test("migrations run once; a reopened database keeps its data")
    func reopen() async throws {
        let dir = FileManager.default.temporaryDirectory.path + "/caduceus-db-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try await Database.openSQLite(path: dir + "/caduceus.sqlite")
        try await first.identity.insertUser(user("alice"))
        try await first.close()
        let second = try await Database.openSQLite(path: dir + "/caduceus.sqlite")
        #expect(try await second.identity.user(named: "alice") != nil)
        try await second.close()
    }

    @Test(
        "session changes are noted with their transaction, read back since a time, and pruned after an hour",
        arguments: TestDatabase.engines)
    func sessionChanges(engine: StoreEngine) async throws {
        try await withStore(engine) { store in
            let (alice, bob) = (user("alice"), user("bob"))
            try await store.recordSessionChange(of: alice.id, at: now)
            // A transaction that fails notes nothing.
            await #expect(throws: CaduceusError.self) {
                try await store.transaction { tx in
                    try await tx.recordSessionChange(of: bob.id, at: now)
                    throw CaduceusError(code: "test", message: "rolled back")
                }
            }
            #expect(try await store.sessionChanges(since: now).map(\.user) == [alice.id])
            try await store.transaction { tx in
                try await tx.recordSessionChange(of: bob.id, at: now.adding(milliseconds: 5))
            }
            #expect(try await store.sessionChanges(since: now.adding(milliseconds: 1)).map(\.user) == [bob.id])
            let both = try await store.sessionChanges(since: now)
            #expect(Set(both.map(\.user)) == [alice.id, bob.id] && Set(both.map(\.id)).count == 2)
            // An hour later, the old notes go.
            let later = now.adding(milliseconds: 3_600_010)
            try await store.recordSessionChange(of: bob.id, at: later)
            #expect(try await store.sessionChanges(since: now).count == 1)
        }
    }
}
