import AuditLog
import CaduceusCore
import CaduceusTesting
import ControlPlane
import Foundation
import SQLKit
import Testing

@testable import Persistence

/// PostgreSQL aborts a serializable transaction that conflicts with another, and the engine runs it again. The
/// audit event of a change is appended before its commit, so an aborted attempt has appended it already: the
/// next attempt must not append it a second time.
@Suite("A change whose transaction PostgreSQL aborts and runs again")
struct RetryTests {
    /// Makes the first commit of a tenant insert fail as a serialization failure (a deferred trigger fires at
    /// COMMIT, after the audit append; a sequence counts firings, since an aborted transaction keeps no rows).
    static let abortFirstCommit = [
        "CREATE SEQUENCE tenant_commits",
        """
        CREATE FUNCTION abort_first_tenant_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('tenant_commits') = 1 THEN
                RAISE EXCEPTION 'the first commit is aborted' USING ERRCODE = 'serialization_failure';
            END IF;
            RETURN NULL;
        END $$
        """,
        """
        CREATE CONSTRAINT TRIGGER abort_first_tenant_commit AFTER INSERT ON tenants
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION abort_first_tenant_commit()
        """,
    ]

    @Test(
        "the change is stored once and audited once", .enabled(if: TestDatabase.engines.contains(.postgres)))
    func auditedOnce() async throws {
        try await Harness.with(engine: .postgres) { h in
            let admin = try await h.adminRequest()
            for statement in Self.abortFirstCommit {
                try await h.database.engine.statement { db in try await db.raw(SQLQueryString(statement)).run() }
            }
            let tenant = try await h.plane.createTenant(admin, CreateTenantRequest(name: "retried"))

            let commits = try await h.database.engine.statement { db in
                try await db.raw("SELECT last_value FROM tenant_commits").first(decoding: Commits.self)
            }
            #expect(commits?.last_value == 2, "the first commit was aborted and the second kept")
            let tenants = try await h.plane.listTenants(admin, after: nil, limit: 100).items
            #expect(tenants.filter { $0.name == "retried" }.map(\.id) == [tenant.id])
            let events = try await h.events().filter { $0.action == "tenant.create" }
            #expect(events.count == 1)
            #expect(events.first?.resource.id == tenant.id.rawValue)
            #expect(events.first?.outcome == .success)
        }
    }

    struct Commits: Decodable {
        var last_value: Int
    }
}
