import Synchronization

/// What earlier attempts of the transaction running now did outside the database.
///
/// PostgreSQL aborts a serializable transaction that conflicts with another, and the engine runs it again.
/// What an aborted attempt wrote to the database is undone; what it did outside is not — above all the audit
/// event each change appends before it commits, so that no change is ever unaudited. When a later attempt
/// would make an identical effect again (the same event of the same request), the one already made stands for
/// it and is not made twice.
public final class TransactionAttempts: Sendable {
    /// The attempts of the transaction the current task runs, when its engine may run it more than once.
    @TaskLocal public static var current: TransactionAttempts?

    private struct State {
        /// Every effect made so far, by any attempt.
        var made: [any Sendable] = []
        /// Effects made by earlier attempts that the current attempt has not yet matched.
        var unmatched: [any Sendable] = []
        var attempts = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// How many attempts have begun.
    public var attempts: Int { state.withLock { $0.attempts } }

    /// Starts the next attempt: every effect made so far may be matched once more.
    public func begin() {
        state.withLock { state in
            state.attempts += 1
            state.unmatched = state.made
        }
    }

    /// Whether an earlier attempt already made `effect`, not yet matched by this attempt; if so, it is now
    /// matched (two identical effects in one attempt need two made earlier).
    public func alreadyMade<Effect: Equatable & Sendable>(_ effect: Effect) -> Bool {
        state.withLock { state in
            guard let index = state.unmatched.firstIndex(where: { ($0 as? Effect) == effect }) else { return false }
            state.unmatched.remove(at: index)
            return true
        }
    }

    /// Notes that this attempt made `effect`.
    public func made<Effect: Equatable & Sendable>(_ effect: Effect) {
        state.withLock { $0.made.append(effect) }
    }
}
