import CaduceusCore
import Foundation
import Identity
import Testing

/// A clock tests set by hand.
final class ManualClock: WallClock, @unchecked Sendable {
    // Safe: `value` is only touched with `lock` held.
    private let lock = NSLock()
    private var value: Int64

    init(_ milliseconds: Int64 = 1_795_000_000_000) { value = milliseconds }

    func now() -> Timestamp { lock.withLock { Timestamp(millisecondsSinceEpoch: value) } }

    func advance(milliseconds: Int64) { lock.withLock { value += milliseconds } }
}

func vector(_ name: String) throws -> Data {
    try Data(
        contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Vectors/\(name)"))
}

struct TOTPTests {
    struct Vectors: Decodable {
        struct Case: Decodable {
            var time: Int64
            var code8: String
            var code6: String
        }
        var secretASCII: String
        var cases: [Case]
    }

    @Test("RFC 6238 Appendix B codes")
    func rfcVectors() throws {
        let vectors = try JSONDecoder().decode(Vectors.self, from: vector("totp-rfc6238.json"))
        let totp = TOTP(secret: Array(vectors.secretASCII.utf8))
        for item in vectors.cases {
            let step = TOTP.step(at: Timestamp(millisecondsSinceEpoch: item.time * 1000))
            #expect(totp.code(step: step, digits: 8) == item.code8)
            #expect(totp.code(step: step) == item.code6)
        }
    }

    @Test("codes are accepted one step either way, and never twice")
    func driftAndReplay() {
        let totp = TOTP(secret: TOTP.generateSecret())
        let now = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)
        let step = TOTP.step(at: now)
        #expect(totp.verify(totp.code(step: step), at: now, lastUsedStep: nil) == step)
        #expect(totp.verify(totp.code(step: step - 1), at: now, lastUsedStep: nil) == step - 1)
        #expect(totp.verify(totp.code(step: step + 1), at: now, lastUsedStep: nil) == step + 1)
        #expect(totp.verify(totp.code(step: step - 2), at: now, lastUsedStep: nil) == nil)
        #expect(totp.verify(totp.code(step: step), at: now, lastUsedStep: step) == nil)
        #expect(totp.verify("12345", at: now, lastUsedStep: nil) == nil)
        #expect(totp.verify("abcdef", at: now, lastUsedStep: nil) == nil)
    }

    @Test("the otpauth URI carries the secret in base32")
    func provisioning() throws {
        let totp = TOTP(secret: Array("12345678901234567890".utf8))
        let uri = totp.provisioningURI(issuer: "Caduceus", account: "admin@st marys")
        #expect(uri.hasPrefix("otpauth://totp/Caduceus:admin%40st%20marys?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"))
        #expect(Base32.decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ") == Array("12345678901234567890".utf8))
    }
}

struct PasswordTests {
    @Test("hashes verify, wrong passwords do not, and the encoding names its parameters")
    func roundTrip() async throws {
        let hasher = PasswordHasher(logN: 10)
        let hash = try await hasher.hash("correct horse battery staple")
        #expect(hash.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        #expect(try await hasher.verify("correct horse battery staple", against: hash))
        #expect(!(try await hasher.verify("correct horse battery stapler", against: hash)))
        #expect(try await hasher.hash("correct horse battery staple") != hash)
        await #expect(throws: CaduceusError.self) { try await hasher.verify("x", against: "$bcrypt$whatever") }
    }

    @Test("OWASP parameters by default: N = 2^17, r = 8, p = 1")
    func owaspParameters() async throws {
        let hasher = PasswordHasher()
        let hash = try await hasher.hash("a long enough password")
        #expect(hash.hasPrefix("$scrypt$ln=17,r=8,p=1$"))
        #expect(try await hasher.verify("a long enough password", against: hash))
    }

    @Test("passwords need 12 characters")
    func rules() {
        #expect(throws: CaduceusError.self) { try PasswordRules.check("short") }
        #expect(throws: CaduceusError.self) { try PasswordRules.check(String(repeating: "x", count: 300)) }
        #expect(throws: Never.self) { try PasswordRules.check("twelve chars") }
    }
}

struct TokenTests {
    @Test("tokens carry 256 bits behind their kind, and only their digest is stored")
    func tokens() throws {
        let token = OpaqueToken.generate(.session)
        #expect(token.text.hasPrefix("cds_"))
        #expect(OpaqueToken(text: token.text) == token)
        #expect(token.digest.count == 64)
        #expect(OpaqueToken(text: "cds_short") == nil)
        #expect(OpaqueToken(text: "xyz_" + token.text.dropFirst(4)) == nil)
        #expect(OpaqueToken.generate(.api).text != OpaqueToken.generate(.api).text)
        let body = token.text.dropFirst(4)
        // An underscore is in the base64url alphabet; '+', '/' and '=' are not; the body is exactly 43 long.
        #expect(OpaqueToken(text: "cdt_" + body.dropLast() + "_")?.kind == .api)
        for bad in ["+", "/", "=", " ", "é"] { #expect(OpaqueToken(text: "cds_" + body.dropLast() + bad) == nil) }
        #expect(OpaqueToken(text: "cds_" + body.dropLast()) == nil)
        #expect(OpaqueToken(text: "cds_" + body + "A") == nil)
        #expect(OpaqueToken(text: "cds-" + body) == nil)
        #expect(OpaqueToken(text: "_cds" + body) == nil)
        #expect(OpaqueToken(text: "") == nil)
    }

    @Test("base64url round-trips every length, as Foundation's base64 spells it, and refuses anything else")
    func base64URL() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let expected = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == expected)
            #expect(Base64URL.decode(expected) == bytes)
        }
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.decode("A") == nil)
        #expect(Base64URL.decode("AAAAA") == nil)
        #expect(Base64URL.decode("AA==") == nil)
        #expect(Base64URL.decode("AB+/") == nil)
        #expect(Base64URL.decode("AAAA AAAA") == nil)
        #expect(Base64URL.decode("_-8") == [0xFF, 0xEF])
    }
}

struct ThrottleTests {
    @Test("five failures within 15 minutes lock the account for 15 minutes")
    func lockout() {
        var throttle = LoginThrottle()
        var now = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)
        for _ in 0..<4 {
            let locked = throttle.recordFailure(at: now)
            #expect(!locked)
            now = now.adding(milliseconds: 60_000)
        }
        #expect(!throttle.isLocked(at: now))
        let locked = throttle.recordFailure(at: now)
        #expect(locked)
        #expect(throttle.isLocked(at: now.adding(milliseconds: 14 * 60_000)))
        #expect(!throttle.isLocked(at: now.adding(milliseconds: 15 * 60_000)))
    }

    @Test("failures older than the window do not count")
    func window() {
        var throttle = LoginThrottle()
        var now = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)
        for _ in 0..<10 {
            let locked = throttle.recordFailure(at: now)
            #expect(!locked)
            now = now.adding(milliseconds: 4 * 60_000)
        }
    }

    @Test("the rate limiter allows a burst, then the refill rate, per address")
    func rateLimiter() async {
        let clock = ManualClock()
        let limiter = RateLimiter(burst: 3, perSecond: 2, clock: clock)
        for _ in 0..<3 { #expect(await limiter.allow("10.0.0.1")) }
        #expect(!(await limiter.allow("10.0.0.1")))
        #expect(await limiter.allow("10.0.0.2"))
        clock.advance(milliseconds: 500)
        #expect(await limiter.allow("10.0.0.1"))
        #expect(!(await limiter.allow("10.0.0.1")))
    }
}

struct AccessPolicyTests {
    let tenant = TenantID.generate()
    let other = TenantID.generate()
    let project = ProjectID.generate()
    let now = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)

    func principal(_ role: Role, _ scope: Scope) -> Principal {
        let id = UserID.generate()
        return Principal(
            id: id, name: "someone", kind: .user,
            bindings: [RoleBinding(id: .generate(), user: id, role: role, scope: scope)])
    }

    @Test("least privilege: the platform admin reads no PHI and no audit trail")
    func platformAdmin() {
        let admin = principal(.platformAdmin, .platform)
        #expect(!AccessPolicy.decide(admin, .phiRead, in: .project(tenant, project), at: now).allowed)
        #expect(!AccessPolicy.decide(admin, .auditRead, in: .platform, at: now).allowed)
        #expect(AccessPolicy.decide(admin, .userCreate, in: .platform, at: now).allowed)
    }

    @Test("roles apply only inside their scope")
    func scopes() {
        let researcher = principal(.researcher, .project(tenant, project))
        #expect(AccessPolicy.decide(researcher, .phiRead, in: .project(tenant, project), at: now).allowed)
        #expect(!AccessPolicy.decide(researcher, .phiRead, in: .project(tenant, .generate()), at: now).allowed)
        #expect(!AccessPolicy.decide(researcher, .phiRead, in: .project(other, project), at: now).allowed)
        #expect(!AccessPolicy.decide(researcher, .userCreate, in: .platform, at: now).allowed)
        let tenantAdmin = principal(.tenantAdmin, .tenant(tenant))
        #expect(AccessPolicy.decide(tenantAdmin, .projectCreate, in: .tenant(tenant), at: now).allowed)
        #expect(!AccessPolicy.decide(tenantAdmin, .projectCreate, in: .tenant(other), at: now).allowed)
        #expect(!AccessPolicy.decide(tenantAdmin, .roleGrant, in: .platform, at: now).allowed)
    }

    @Test("jobs: the project's people see what a job runs; operators and tenant admins see only where it runs")
    func jobPrivacy() {
        let scope = Scope.project(tenant, project)
        let researcher = principal(.researcher, scope)
        let platformAdmin = principal(.platformAdmin, .platform)
        let tenantAdmin = principal(.tenantAdmin, .tenant(tenant))
        for permission: Permission in [.jobSubmit, .jobRead, .jobInspect, .jobCancel] {
            #expect(AccessPolicy.decide(researcher, permission, in: scope, at: now).allowed)
        }
        #expect(AccessPolicy.decide(platformAdmin, .jobRead, in: scope, at: now).allowed)
        #expect(AccessPolicy.decide(platformAdmin, .fleetManage, in: .platform, at: now).allowed)
        #expect(AccessPolicy.decide(tenantAdmin, .quotaManage, in: scope, at: now).allowed)
        for permission: Permission in [.jobInspect, .jobSubmit, .jobCancel] {
            #expect(!AccessPolicy.decide(platformAdmin, permission, in: scope, at: now).allowed)
            #expect(!AccessPolicy.decide(tenantAdmin, permission, in: scope, at: now).allowed)
        }
        #expect(!AccessPolicy.decide(tenantAdmin, .fleetManage, in: .platform, at: now).allowed)
        #expect(!AccessPolicy.decide(platformAdmin, .quotaManage, in: scope, at: now).allowed)
    }

    @Test("no binding, no access: deny by default")
    func denyByDefault() {
        let nobody = Principal(id: .generate(), name: "nobody", kind: .user)
        for permission in Permission.allCases {
            #expect(!AccessPolicy.decide(nobody, permission, in: .project(tenant, project), at: now).allowed)
        }
    }

    @Test("break-glass opens the tenant's PHI for its duration only, and says so")
    func breakGlass() {
        var researcher = principal(.researcher, .project(tenant, project))
        #expect(AccessPolicy.decide(researcher, .emergencyAccess, in: .tenant(tenant), at: now).allowed)
        #expect(!AccessPolicy.decide(researcher, .emergencyAccess, in: .tenant(other), at: now).allowed)
        let elsewhere = Scope.project(tenant, .generate())
        #expect(!AccessPolicy.decide(researcher, .phiRead, in: elsewhere, at: now).allowed)
        let grant = BreakGlassGrant(
            id: .generate(), user: researcher.id, tenant: tenant, reason: "patient in resuscitation bay 3",
            openedAt: now, expiresAt: now.adding(milliseconds: 3_600_000))
        researcher.breakGlass = [grant]
        let decision = AccessPolicy.decide(researcher, .phiRead, in: elsewhere, at: now.adding(milliseconds: 1000))
        #expect(decision == AccessDecision(allowed: true, breakGlass: grant.id))
        #expect(
            !AccessPolicy.decide(researcher, .phiRead, in: elsewhere, at: now.adding(milliseconds: 3_600_000)).allowed)
        #expect(!AccessPolicy.decide(researcher, .userCreate, in: .platform, at: now).allowed)
        #expect(grant.isOverdueForReview(at: now.adding(milliseconds: 25 * 3_600_000)))
        #expect(!grant.isOverdueForReview(at: now.adding(milliseconds: 23 * 3_600_000)))
    }

    @Test("break-glass needs a real reason and at most 4 hours")
    func breakGlassRules() {
        #expect(throws: CaduceusError.self) { try BreakGlassRules.check(reason: "urgent", durationSeconds: 600) }
        #expect(throws: CaduceusError.self) {
            try BreakGlassRules.check(reason: "patient in resuscitation bay 3", durationSeconds: 4 * 3600 + 1)
        }
        #expect(throws: Never.self) {
            try BreakGlassRules.check(reason: "patient in resuscitation bay 3", durationSeconds: 4 * 3600)
        }
    }

    @Test("sessions end after the idle timeout and after their lifetime")
    func sessions() throws {
        let rules = try SessionRules(idleMinutes: 15, lifetimeHours: 12)
        let created = now
        #expect(rules.isAlive(created: created, lastSeen: created, at: created.adding(milliseconds: 14 * 60_000)))
        #expect(!rules.isAlive(created: created, lastSeen: created, at: created.adding(milliseconds: 15 * 60_000)))
        let late = created.adding(milliseconds: 12 * 3_600_000)
        #expect(!rules.isAlive(created: created, lastSeen: late.adding(milliseconds: -1000), at: late))
        #expect(throws: CaduceusError.self) { try SessionRules(idleMinutes: 61) }
        #expect(throws: CaduceusError.self) { try SessionRules(idleMinutes: 0) }
    }
}
