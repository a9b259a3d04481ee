import AuditLog
import CaduceusCore
import CaduceusTesting
import ControlPlane
import Crypto
import Identity
import Persistence
import Testing

struct ControlPlaneTests {
    @Test("the bootstrap admin logs in with password and TOTP, must set a password, then administers")
    func bootstrapFlow() async throws {
        try await Harness.with { h in
            #expect(try await h.plane.bootstrapIfEmpty() == nil)
            let (first, token) = try await h.login("admin", h.admin.password, secret: h.admin.totpSecret)
            #expect(first.principal?.mustChangePassword == true)
            await #expect(throws: CaduceusError.self) {
                try await h.plane.createTenant(first, CreateTenantRequest(name: "st-marys"))
            }
            await #expect(throws: CaduceusError.self) {
                try await h.plane.changePassword(
                    first, ChangePasswordRequest(currentPassword: h.admin.password, newPassword: "short"))
            }
            try await h.plane.changePassword(
                first, ChangePasswordRequest(currentPassword: h.admin.password, newPassword: "a much better password"))
            let admin = try await h.authenticated(token)
            let tenant = try await h.plane.createTenant(admin, CreateTenantRequest(name: "st-marys"))
            #expect(tenant.name == "st-marys")
            let events = try await h.events()
            #expect(
                events.contains {
                    $0.action == "tenant.create" && $0.outcome == .success && $0.tenant == tenant.id.rawValue
                })
            #expect(events.contains { $0.action == "tenant.create" && $0.outcome == .denied })
            #expect(events.allSatisfy { $0.requestId != nil || $0.action == "user.bootstrap" })
        }
    }

    @Test("a researcher is refused an admin action, and the refusal is audited")
    func researcherDenied() async throws {
        try await Harness.with { h in
            let admin = try await h.adminRequest()
            let tenant = try await h.plane.createTenant(admin, CreateTenantRequest(name: "st-marys"))
            let project = try await h.plane.createProject(
                admin, CreateProjectRequest(tenant: tenant.id, name: "radiology"))
            let created = try await h.plane.createUser(admin, CreateUserRequest(name: "rita"))
            let password = try #require(created.initialPassword)
            let uri = try #require(created.otpauthURI)
            _ = try await h.plane.grantRole(
                admin,
                GrantRoleRequest(user: created.user.id, role: .researcher, scope: .project(tenant.id, project.id)))
            let (rita, _) = try await h.login("rita", password, secret: uri)
            try await h.plane.changePassword(
                rita, ChangePasswordRequest(currentPassword: password, newPassword: "rita's own password"))
            let (researcher, _) = try await h.login("rita", "rita's own password", secret: uri)
            await #expect(throws: CaduceusError.self) {
                try await h.plane.createUser(researcher, CreateUserRequest(name: "eve"))
            }
            #expect(try await h.plane.showProject(researcher, project.id).name == "radiology")
            let events = try await h.events()
            #expect(
                events.contains {
                    $0.action == "user.create" && $0.outcome == .denied && $0.actor.id == created.user.id.rawValue
                        && $0.sourceAddress == "127.0.0.1"
                })
        }
    }

    @Test("five wrong log-ins lock the account; the error never says which factor was wrong")
    func lockout() async throws {
        try await Harness.with { h in
            var messages = Set<String>()
            for attempt in 0..<5 {
                do {
                    _ = try await h.plane.login(
                        RequestInfo(sourceAddress: "10.0.0.9"),
                        LoginRequest(
                            user: "admin", password: attempt % 2 == 0 ? "wrong password!" : h.admin.password,
                            code: "000000"
                        ))
                } catch let error as CaduceusError {
                    messages.insert(error.message)
                }
            }
            do {
                _ = try await h.plane.login(
                    RequestInfo(sourceAddress: "10.0.0.9"),
                    LoginRequest(user: "admin", password: h.admin.password, code: h.code(h.admin.totpSecret)))
                Issue.record("a locked account logged in")
            } catch let error as CaduceusError {
                messages.insert(error.message)
            }
            do {
                _ = try await h.plane.login(
                    RequestInfo(), LoginRequest(user: "nobody", password: "whatever12345", code: "123456"))
            } catch let error as CaduceusError {
                messages.insert(error.message)
            }
            #expect(messages.count == 1)
            h.clock.advance(seconds: 15 * 60)
            _ = try await h.login("admin", h.admin.password, secret: h.admin.totpSecret)
            let attempts = try await h.events().filter { $0.action == "session.create" }
            #expect(attempts.count == 8)
            #expect(attempts.filter { $0.outcome == .denied }.count == 7)
        }
    }

    @Test("a TOTP code is accepted once only")
    func replay() async throws {
        try await Harness.with { h in
            let code = h.code(h.admin.totpSecret)
            _ = try await h.plane.login(
                RequestInfo(), LoginRequest(user: "admin", password: h.admin.password, code: code))
            await #expect(throws: CaduceusError.self) {
                try await h.plane.login(
                    RequestInfo(), LoginRequest(user: "admin", password: h.admin.password, code: code))
            }
        }
    }

    @Test("sessions end after the idle timeout and on logout; disabling a user ends them at once")
    func sessionsEnd() async throws {
        try await Harness.with { h in
            let admin = try await h.adminRequest()
            let created = try await h.plane.createUser(admin, CreateUserRequest(name: "sam"))
            let (_, token) = try await h.login(
                "sam", try #require(created.initialPassword), secret: try #require(created.otpauthURI))
            h.clock.advance(seconds: 14 * 60)
            _ = try await h.plane.authenticate(token)
            h.clock.advance(seconds: 14 * 60)
            _ = try await h.plane.authenticate(token)
            h.clock.advance(seconds: 15 * 60)
            await #expect(throws: CaduceusError.self) { try await h.plane.authenticate(token) }

            let (_, second) = try await h.login(
                "sam", try #require(created.initialPassword), secret: try #require(created.otpauthURI))
            _ = try await h.plane.authenticate(second)
            let freshAdmin = try await h.login("admin", "a much better password", secret: h.admin.totpSecret).0
            _ = try await h.plane.setUserDisabled(freshAdmin, created.user.id, disabled: true)
            await #expect(throws: CaduceusError.self) { try await h.plane.authenticate(second) }

            let (me, adminToken) = try await h.login("admin", "a much better password", secret: h.admin.totpSecret)
            try await h.plane.logout(me, token: adminToken)
            await #expect(throws: CaduceusError.self) { try await h.plane.authenticate(adminToken) }
        }
    }

    @Test("two replicas over one database: neither logs off a session the other uses; changes reach both")
    func sessionsAcrossReplicas() async throws {
        try await Harness.with { h in
            // A second control plane over the same database, as a second replica has.
            let other = ControlPlane(
                store: h.database.identity, fleet: h.database.fleet,
                audit: AuditRecorder(trail: h.trail, clock: h.clock), clock: h.clock,
                hasher: PasswordHasher(logN: 10),
                totpBox: SecretBox(rootKey: SymmetricKey(size: .bits256), purpose: "t"),
                settings: ControlPlaneSettings(sessions: try SessionRules(idleMinutes: 15)))
            let admin = try await h.adminRequest()
            let created = try await h.plane.createUser(admin, CreateUserRequest(name: "sam"))
            let (_, token) = try await h.login(
                "sam", try #require(created.initialPassword), secret: try #require(created.otpauthURI))
            _ = try await other.authenticate(token)
            // Used through the first replica only, for 40 minutes: the second's cached use is old, but the
            // database's is not, and the second lets the session on.
            for _ in 0..<10 {
                h.clock.advance(seconds: 4 * 60)
                _ = try await h.plane.authenticate(token)
            }
            _ = try await other.authenticate(token)
            // Idle on both for longer than the timeout: ended.
            h.clock.advance(seconds: 16 * 60)
            await #expect(throws: CaduceusError.self) { try await other.authenticate(token) }

            // A change on one replica reaches the other's cache through the changes it follows.
            let (_, second) = try await h.login(
                "sam", try #require(created.initialPassword), secret: try #require(created.otpauthURI))
            _ = try await other.authenticate(second)
            let freshAdmin = try await h.login("admin", "a much better password", secret: h.admin.totpSecret).0
            // Followed until the harness closes the database: the task ends first.
            let following = Task { await other.followSessionChanges(every: .milliseconds(10)) }
            var failure: (any Error)?
            do {
                _ = try await h.plane.setUserDisabled(freshAdmin, created.user.id, disabled: true)
            } catch {
                failure = error
            }
            var refused = false
            for _ in 0..<200 where !refused {
                refused = (try? await other.authenticate(second)) == nil
                if !refused { try? await Task.sleep(for: .milliseconds(10)) }
            }
            following.cancel()
            await following.value
            if let failure { throw failure }
            #expect(refused, "the other replica still accepts a disabled user's session")
        }
    }

    @Test("when the audit trail cannot record, the request fails and nothing changes")
    func failClosed() async throws {
        try await Harness.with { h in
            let admin = try await h.adminRequest()
            try await h.trail.close()
            do {
                _ = try await h.plane.createTenant(admin, CreateTenantRequest(name: "lost"))
                Issue.record("the change went through without an audit event")
            } catch let error as CaduceusError {
                #expect(error.code == "audit.unavailable")
            }
            #expect(try await h.database.identity.tenants(after: nil, limit: 10).items.isEmpty)
        }
    }

    @Test("break-glass: opened with a reason, flagged on every action, reviewed by someone else")
    func breakGlass() async throws {
        try await Harness.with { h in
            let admin = try await h.adminRequest()
            let tenant = try await h.plane.createTenant(admin, CreateTenantRequest(name: "st-marys"))
            let project = try await h.plane.createProject(admin, CreateProjectRequest(tenant: tenant.id, name: "icu"))
            let other = try await h.plane.createProject(
                admin, CreateProjectRequest(tenant: tenant.id, name: "oncology"))
            let doctor = try await h.plane.createUser(admin, CreateUserRequest(name: "dr-lee"))
            let officer = try await h.plane.createUser(admin, CreateUserRequest(name: "sec-ops"))
            _ = try await h.plane.grantRole(
                admin, GrantRoleRequest(user: doctor.user.id, role: .researcher, scope: .project(tenant.id, project.id))
            )
            _ = try await h.plane.grantRole(
                admin, GrantRoleRequest(user: officer.user.id, role: .securityOfficer, scope: .platform))
            let doctorRequest = try await h.login(
                "dr-lee", try #require(doctor.initialPassword), secret: try #require(doctor.otpauthURI))
            try await h.plane.changePassword(
                doctorRequest.0,
                ChangePasswordRequest(
                    currentPassword: try #require(doctor.initialPassword), newPassword: "doctor lee password"))
            let (lee, leeToken) = try await h.login(
                "dr-lee", "doctor lee password", secret: try #require(doctor.otpauthURI))
            await #expect(throws: CaduceusError.self) { try await h.plane.showProject(lee, other.id) }
            await #expect(throws: CaduceusError.self) {
                try await h.plane.openBreakGlass(
                    lee, OpenBreakGlassRequest(tenant: tenant.id, reason: "urgent", minutes: 30))
            }
            await #expect(throws: CaduceusError.self) {
                try await h.plane.openBreakGlass(
                    lee,
                    OpenBreakGlassRequest(
                        tenant: tenant.id, reason: "patient coding in ICU bed 4, chart needed", minutes: 300))
            }
            let grant = try await h.plane.openBreakGlass(
                lee,
                OpenBreakGlassRequest(
                    tenant: tenant.id, reason: "patient coding in ICU bed 4, chart needed", minutes: 30))
            let elevated = try await h.authenticated(leeToken)
            #expect(try await h.plane.showProject(elevated, other.id).name == "oncology")
            let flagged = try await h.events().filter { $0.action == "project.show" && $0.outcome == .success }
            #expect(flagged.last?.breakGlass == true)
            #expect(flagged.last?.breakGlassGrant == grant.id.rawValue)

            let officerLogin = try await h.login(
                "sec-ops", try #require(officer.initialPassword), secret: try #require(officer.otpauthURI))
            try await h.plane.changePassword(
                officerLogin.0,
                ChangePasswordRequest(
                    currentPassword: try #require(officer.initialPassword), newPassword: "security officer pw"))
            let (sec, _) = try await h.login("sec-ops", "security officer pw", secret: try #require(officer.otpauthURI))
            h.clock.advance(seconds: 25 * 3600)
            let pending = try await h.plane.listBreakGlass(sec, pending: true, after: nil, limit: 50)
            #expect(pending.items.map(\.id) == [grant.id])
            #expect(pending.items.first?.overdue == true)
            let reviewed = try await h.plane.reviewBreakGlass(
                sec, grant.id, ReviewBreakGlassRequest(note: "justified: code blue"))
            #expect(reviewed.reviewedBy == officer.user.id)
            #expect(try await h.plane.listBreakGlass(sec, pending: true, after: nil, limit: 50).items.isEmpty)
        }
    }

    @Test("service accounts act through scoped, expiring, revocable API tokens")
    func apiTokens() async throws {
        try await Harness.with { h in
            let admin = try await h.adminRequest()
            let tenant = try await h.plane.createTenant(admin, CreateTenantRequest(name: "st-marys"))
            let project = try await h.plane.createProject(
                admin, CreateProjectRequest(tenant: tenant.id, name: "triage"))
            let service = try await h.plane.createUser(admin, CreateUserRequest(name: "triage-app", kind: .service))
            #expect(service.initialPassword == nil)
            _ = try await h.plane.grantRole(
                admin, GrantRoleRequest(user: service.user.id, role: .service, scope: .project(tenant.id, project.id)))
            let created = try await h.plane.createToken(
                admin,
                CreateTokenRequest(
                    user: service.user.id, name: "prod", scope: .project(tenant.id, project.id), days: 30))
            let app = try await h.authenticated(created.token)
            #expect(app.principal?.kind == .service)
            #expect(try await h.plane.showProject(app, project.id).name == "triage")
            try await h.plane.revokeToken(admin, created.details.id)
            await #expect(throws: CaduceusError.self) { try await h.plane.authenticate(created.token) }
            let expiring = try await h.plane.createToken(
                admin, CreateTokenRequest(user: service.user.id, name: "short", scope: .tenant(tenant.id), days: 1))
            _ = try await h.plane.authenticate(expiring.token)
            h.clock.advance(seconds: 86_400)
            await #expect(throws: CaduceusError.self) { try await h.plane.authenticate(expiring.token) }
        }
    }
}
