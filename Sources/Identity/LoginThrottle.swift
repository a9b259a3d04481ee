import CaduceusCore

/// Counts failed log-ins for one account: after 5 failures within 15 minutes the account is locked for
/// 15 minutes. A value type: the store keeps it, this decides.
public struct LoginThrottle: Codable, Sendable, Equatable {
    /// Failures that lock the account.
    public static let maxFailures = 5
    /// The window failures are counted in, in milliseconds.
    public static let window: Int64 = 15 * 60 * 1000
    /// How long a lock lasts, in milliseconds.
    public static let lockout: Int64 = 15 * 60 * 1000

    /// Times of recent failures (only those inside the window are kept).
    public var failures: [Int64]
    /// When the current lock ends, if locked.
    public var lockedUntil: Int64?

    /// No failures, not locked.
    public init() {
        failures = []
        lockedUntil = nil
    }

    /// Whether the account is locked at `now`.
    public func isLocked(at now: Timestamp) -> Bool {
        guard let lockedUntil else { return false }
        return now.millisecondsSinceEpoch < lockedUntil
    }

    /// Records a failure at `now`; returns true when this failure locked the account.
    @discardableResult
    public mutating func recordFailure(at now: Timestamp) -> Bool {
        let t = now.millisecondsSinceEpoch
        failures = failures.filter { t - $0 < Self.window } + [t]
        if failures.count >= Self.maxFailures && !isLocked(at: now) {
            lockedUntil = t + Self.lockout
            failures = []
            return true
        }
        return false
    }

    /// Forgets failures after a successful log-in.
    public mutating func recordSuccess() {
        failures = []
        lockedUntil = nil
    }
}
