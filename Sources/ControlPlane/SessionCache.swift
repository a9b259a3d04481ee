import CaduceusCore
import Identity
import Synchronization

/// Authenticated sessions and tokens kept in memory, so that a request costs no database read.
///
/// An entry holds the principal as loaded and when the session was last used. The last-use time is
/// written back at most once a minute (a restart can only make sessions look older, never younger).
/// Every change to an account's sessions, roles, tokens or grants removes its entries at once, on the
/// replica that made it, and on the others as they follow the changes (`followSessionChanges`). A mutex
/// rather than an actor guards it: every authenticated request passes here, and none of its work waits.
final class SessionCache: Sendable {
    struct Entry: Sendable {
        var principal: Principal
        var session: SessionRecord?
        var token: APITokenRecord?
        var lastSeen: Timestamp
        var lastPersisted: Timestamp
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var users: [UserID: UserRecord] = [:]
    }

    private let state = Mutex(State())
    private let limit: Int

    init(limit: Int = 100_000) {
        self.limit = limit
    }

    func entry(_ digest: String) -> Entry? { state.withLock { $0.entries[digest] } }

    func store(_ entry: Entry, for digest: String, user: UserRecord) {
        state.withLock { state in
            if state.entries.count >= limit {
                state.entries.removeAll(keepingCapacity: true)
                state.users.removeAll(keepingCapacity: true)
            }
            state.entries[digest] = entry
            state.users[user.id] = user
        }
    }

    /// The account record loaded with a cached session, if any.
    func user(_ id: UserID) -> UserRecord? { state.withLock { $0.users[id] } }

    /// Records a use at `now`; returns true when the time should be written back (`persistEvery`
    /// milliseconds after it last was).
    func touch(_ digest: String, at now: Timestamp, persistEvery: Int64) -> Bool {
        state.withLock { state in
            guard var entry = state.entries[digest] else { return false }
            entry.lastSeen = max(entry.lastSeen, now)
            let persist = now.millisecondsSinceEpoch - entry.lastPersisted.millisecondsSinceEpoch >= persistEvery
            if persist { entry.lastPersisted = now }
            state.entries[digest] = entry
            return persist
        }
    }

    func remove(_ digest: String) { state.withLock { _ = $0.entries.removeValue(forKey: digest) } }

    func removeAll() {
        state.withLock { state in
            state.entries.removeAll()
            state.users.removeAll()
        }
    }

    func remove(user: UserID) {
        state.withLock { state in
            state.entries = state.entries.filter { $0.value.principal.id != user }
            state.users[user] = nil
        }
    }
}
