import AuditLog
import CaduceusCore
import Identity
import Logging

/// The first administrator, created when the database has no account at all.
public struct BootstrapAdmin: Codable, Sendable {
    public var user: String
    public var userID: UserID
    /// The one-time password; the first log-in must replace it.
    public var password: String
    /// The TOTP secret in base32, for entering by hand.
    public var totpSecret: String
    /// The TOTP enrolment URI for authenticator apps.
    public var otpauthURI: String
    public var note: String
}

extension ControlPlane {
    /// Creates the platform administrator `admin` if there is no account yet; returns its one-time
    /// credentials (to be written to the bootstrap file, never to the log), or nil if accounts exist.
    public func bootstrapIfEmpty() async throws -> BootstrapAdmin? {
        guard try await store.userCount() == 0 else { return nil }
        let id = UserID.generate()
        let password = Self.oneTimePassword()
        let secret = TOTP.generateSecret()
        let user = UserRecord(
            id: id, name: "admin", kind: .user, passwordHash: try await hasher.hash(password),
            sealedTOTPSecret: try totpBox.seal(secret, context: id.rawValue), mustChangePassword: true, createdAt: now)
        let binding = RoleBindingRecord(
            binding: RoleBinding(id: .generate(), user: id, role: .platformAdmin, scope: .platform), grantedBy: nil,
            grantedAt: now)
        let request = RequestInfo()
        let subject = AuditRecorder.Subject(action: "user.bootstrap", resourceType: "user", resourceID: id.rawValue)
        try await store.transaction { [self] tx in
            try await tx.insertUser(user)
            try await tx.insertBinding(binding)
            try await audit.record(request, subject, outcome: .success, actorOverride: (id: "caduceus", type: "system"))
        }
        return BootstrapAdmin(
            user: "admin", userID: id, password: password, totpSecret: Base32.encode(secret),
            otpauthURI: TOTP(secret: secret).provisioningURI(issuer: settings.issuer, account: "admin"),
            note:
                "Log in with this password and a code from the authenticator, then set a new password. Delete this file."
        )
    }
}
