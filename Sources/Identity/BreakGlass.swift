import CaduceusCore

/// A time-boxed emergency elevation: read access to a tenant's PHI, opened with a reason, reviewed after.
public struct BreakGlassGrant: Codable, Sendable, Equatable {
    /// The grant's ID; every action under it carries it in the audit trail.
    public var id: BreakGlassID
    /// Who opened it.
    public var user: UserID
    /// The tenant whose data it opens.
    public var tenant: TenantID
    /// Why (at least 20 characters). Kept in the database, never in an audit entry.
    public var reason: String
    /// When it was opened.
    public var openedAt: Timestamp
    /// When it closes by itself.
    public var expiresAt: Timestamp
    /// When it was closed early, if it was.
    public var closedAt: Timestamp?
    /// The security officer who reviewed it, and when, once reviewed.
    public var reviewedBy: UserID?
    /// When the review was recorded.
    public var reviewedAt: Timestamp?
    /// The reviewer's finding.
    public var reviewNote: String?

    /// Creates a grant.
    public init(
        id: BreakGlassID, user: UserID, tenant: TenantID, reason: String, openedAt: Timestamp, expiresAt: Timestamp,
        closedAt: Timestamp? = nil, reviewedBy: UserID? = nil, reviewedAt: Timestamp? = nil, reviewNote: String? = nil
    ) {
        self.id = id
        self.user = user
        self.tenant = tenant
        self.reason = reason
        self.openedAt = openedAt
        self.expiresAt = expiresAt
        self.closedAt = closedAt
        self.reviewedBy = reviewedBy
        self.reviewedAt = reviewedAt
        self.reviewNote = reviewNote
    }

    /// Whether the grant elevates its holder at `now`.
    public func isOpen(at now: Timestamp) -> Bool {
        openedAt <= now && now < expiresAt && (closedAt.map { now < $0 } ?? true)
    }

    /// Whether it has waited more than 24 hours for a review at `now`.
    public func isOverdueForReview(at now: Timestamp) -> Bool {
        reviewedAt == nil
            && now.millisecondsSinceEpoch - openedAt.millisecondsSinceEpoch > BreakGlassRules.reviewDeadline
    }
}

/// The rules for opening emergency access.
public enum BreakGlassRules {
    /// The shortest reason accepted, in characters.
    public static let minimumReasonLength = 20
    /// The longest grant, in milliseconds (4 hours).
    public static let maximumDuration: Int64 = 4 * 3600 * 1000
    /// How long a grant may wait for review before it is flagged, in milliseconds (24 hours).
    public static let reviewDeadline: Int64 = 24 * 3600 * 1000

    /// Checks a request to open a grant; throws a clear error when it breaks a rule.
    public static func check(reason: String, durationSeconds: Int) throws {
        let trimmed = reason.trimmingWhitespace
        guard trimmed.count >= minimumReasonLength else {
            throw CaduceusError(
                code: "breakglass.reason",
                message: "the reason must be at least \(minimumReasonLength) characters")
        }
        guard trimmed.count <= 2000 else {
            throw CaduceusError(code: "breakglass.reason", message: "the reason must be at most 2000 characters")
        }
        guard durationSeconds > 0, Int64(durationSeconds) * 1000 <= maximumDuration else {
            throw CaduceusError(code: "breakglass.duration", message: "the duration must be 1 second to 4 hours")
        }
    }
}

/// The rules that end sessions: an idle timeout and an absolute lifetime.
public struct SessionRules: Sendable, Equatable {
    /// Minutes without a request after which a session ends (1–60, default 15).
    public var idleMinutes: Int
    /// Hours after log-in after which a session ends whatever (default 12).
    public var lifetimeHours: Int

    /// Creates rules; throws if the idle timeout is outside 1–60 minutes or the lifetime outside 1–24 hours.
    public init(idleMinutes: Int = 15, lifetimeHours: Int = 12) throws {
        guard (1...60).contains(idleMinutes) else {
            throw CaduceusError(code: "config.idleTimeout", message: "the idle timeout must be 1 to 60 minutes")
        }
        guard (1...24).contains(lifetimeHours) else {
            throw CaduceusError(code: "config.sessionLifetime", message: "the session lifetime must be 1 to 24 hours")
        }
        self.idleMinutes = idleMinutes
        self.lifetimeHours = lifetimeHours
    }

    /// Whether a session created at `created` and last used at `lastSeen` is still alive at `now`.
    public func isAlive(created: Timestamp, lastSeen: Timestamp, at now: Timestamp) -> Bool {
        let t = now.millisecondsSinceEpoch
        return t - lastSeen.millisecondsSinceEpoch < Int64(idleMinutes) * 60_000
            && t - created.millisecondsSinceEpoch < Int64(lifetimeHours) * 3_600_000
    }
}

/// The rules for passwords.
public enum PasswordRules {
    /// The shortest password accepted.
    public static let minimumLength = 12
    /// The longest password accepted (bounds the work of hashing).
    public static let maximumLength = 256

    /// Throws a clear error unless `password` is 12–256 characters.
    public static func check(_ password: String) throws {
        guard password.count >= minimumLength else {
            throw CaduceusError(
                code: "identity.passwordTooShort", message: "a password must be at least \(minimumLength) characters")
        }
        guard password.utf8.count <= maximumLength else {
            throw CaduceusError(
                code: "identity.passwordTooLong", message: "a password must be at most \(maximumLength) bytes")
        }
    }
}

extension String {
    var trimmingWhitespace: Substring {
        var slice = self[...]
        while slice.first?.isWhitespace == true { slice = slice.dropFirst() }
        while slice.last?.isWhitespace == true { slice = slice.dropLast() }
        return slice
    }
}
