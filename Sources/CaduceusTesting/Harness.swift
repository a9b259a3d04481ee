import AuditLog
import CaduceusCore
import ControlPlane
import Crypto
import Foundation
import Identity
import Persistence
import Sealing

/// A clock tests move by hand.
public final class TestClock: WallClock, @unchecked Sendable {
    // Safe: `value` is only touched with `lock` held.
    private let lock = NSLock()
    private var value: Int64 = 1_795_000_000_000

    /// Starts at a fixed time in 2026.
    public init() {}

    public func now() -> Timestamp { lock.withLock { Timestamp(millisecondsSinceEpoch: value) } }

    /// Moves the clock forward.
    public func advance(seconds: Int64) { lock.withLock { value += seconds * 1000 } }
}

/// A control plane over a fresh database (in-memory SQLite, or PostgreSQL when `CADUCEUS_TEST_ENGINE` says so)
/// and a scratch audit log, with its bootstrap administrator.
public struct Harness: Sendable {
    public let plane: ControlPlane
    public let clock: TestClock
    public let database: Database
    public let trail: AuditTrail
    public let keys: AuditKeys
    public let directory: String
    public let admin: BootstrapAdmin

    /// Creates the harness (a fast scrypt setting keeps tests quick) on `engine`, or on the harness engine
    /// (`CADUCEUS_TEST_ENGINE`).
    public static func make(engine: StoreEngine? = nil) async throws -> Harness {
        let directory = FileManager.default.temporaryDirectory.path + "/caduceus-cp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let clock = TestClock()
        let keys = try AuditKeys.loadOrCreate(directory: directory + "/keys", origin: "test.caduceus/audit")
        let trail = try AuditTrail(directory: directory + "/audit", keys: keys)
        let database = try await TestDatabase.open(try engine ?? TestDatabase.harnessEngine, clock: clock)
        let plane = ControlPlane(
            store: database.identity, fleet: database.fleet, audit: AuditRecorder(trail: trail, clock: clock),
            clock: clock,
            hasher: PasswordHasher(logN: 10),
            totpBox: SecretBox(rootKey: SymmetricKey(size: .bits256), purpose: "totp"),
            settings: ControlPlaneSettings(sessions: try SessionRules(idleMinutes: 15)))
        try await plane.enableDatasets(
            DatasetSettings(
                store: database.datasets, root: KeyFileRootKeyProvider(rootKey: SymmetricKey(size: .bits256)),
                files: ObjectFiles(root: directory + "/objects"), storageResidency: Residency(rawValue: "US")!,
                auditDirectory: directory + "/audit", auditVerifierKey: keys.signer.verifierKey,
                certificateSigner: keys.signer))
        guard let admin = try await plane.bootstrapIfEmpty() else {
            throw CaduceusError(code: "test", message: "no admin")
        }
        return Harness(
            plane: plane, clock: clock, database: database, trail: trail, keys: keys, directory: directory, admin: admin
        )
    }

    /// Runs `body` with a new harness and closes it afterwards, whether `body` throws or not.
    public static func with<T>(engine: StoreEngine? = nil, _ body: (Harness) async throws -> T) async throws -> T {
        let harness = try await make(engine: engine)
        do {
            let result = try await body(harness)
            await harness.close()
            return result
        } catch {
            await harness.close()
            throw error
        }
    }

    /// Closes the log and the database and removes the scratch directory.
    public func close() async {
        try? await trail.close()
        try? await database.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The current code for a base32 secret or an otpauth URI.
    public func code(_ secretOrURI: String, stepOffset: Int64 = 0) -> String {
        var secret = secretOrURI
        if let range = secretOrURI.range(of: "secret=") {
            secret = String(secretOrURI[range.upperBound...].prefix { $0 != "&" })
        }
        let totp = TOTP(secret: Base32.decode(secret) ?? [])
        return totp.code(step: TOTP.step(at: clock.now()) + stepOffset)
    }

    /// Logs in and returns request information carrying the principal.
    public func login(_ user: String, _ password: String, secret: String) async throws -> (RequestInfo, String) {
        let response = try await plane.login(
            RequestInfo(sourceAddress: "127.0.0.1"), LoginRequest(user: user, password: password, code: code(secret)))
        clock.advance(seconds: 30)  // the next log-in needs a fresh code
        return (try await authenticated(response.token), response.token)
    }

    public func authenticated(_ token: String) async throws -> RequestInfo {
        RequestInfo(principal: try await plane.authenticate(token), sourceAddress: "127.0.0.1")
    }

    /// Logs the bootstrap admin in and sets a real password.
    public func adminRequest() async throws -> RequestInfo {
        let (request, token) = try await login("admin", admin.password, secret: admin.totpSecret)
        try await plane.changePassword(
            request, ChangePasswordRequest(currentPassword: admin.password, newPassword: "a much better password"))
        return try await authenticated(token)
    }

    /// A person holding `role` in `scope`, created by `admin` and logged in with a password of their own.
    public func userRequest(_ name: String, role: Role, scope: Scope, admin: RequestInfo) async throws -> RequestInfo {
        let created = try await plane.createUser(admin, CreateUserRequest(name: name))
        _ = try await plane.grantRole(admin, GrantRoleRequest(user: created.user.id, role: role, scope: scope))
        guard let password = created.initialPassword, let uri = created.otpauthURI else {
            throw CaduceusError(code: "test", message: "no initial credentials")
        }
        let (first, token) = try await login(name, password, secret: uri)
        try await plane.changePassword(
            first, ChangePasswordRequest(currentPassword: password, newPassword: "\(name)'s own password"))
        return try await authenticated(token)
    }

    /// A second control plane over the same database and audit log, as after a restart.
    public func restartedPlane() throws -> ControlPlane {
        ControlPlane(
            store: database.identity, fleet: database.fleet, audit: AuditRecorder(trail: trail, clock: clock),
            clock: clock, hasher: PasswordHasher(logN: 10),
            totpBox: SecretBox(rootKey: SymmetricKey(size: .bits256), purpose: "totp"),
            settings: ControlPlaneSettings(sessions: try SessionRules(idleMinutes: 15)))
    }

    /// Every audit event so far.
    public func events() async throws -> [AuditEvent] {
        let checkpoint = try await trail.log.sync()
        let reader = TileReader(directory: directory + "/audit", size: checkpoint.checkpoint.size)
        return try (0..<checkpoint.checkpoint.size).map { try AuditEvent.decode(entry: try reader.entry(at: $0)) }
    }
}
