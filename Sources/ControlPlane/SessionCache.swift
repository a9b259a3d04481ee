import AuditLog
import CaduceusCore
import Identity
import Logging

/// Authenticated sessions and tokens kept in memory, so that a request costs no database read.
///
/// An entry holds the principal as loaded and when the session was last used. The last-use time is
/// written back at most once a minute (a restart can only make sessions look older, never younger).
/// Every change to an account's sessions, roles, tokens or grants removes its entries at once.
actor SessionCache {
    struct Entry: Sendable {
        var principal: Principal
        var session: SessionRecord?
        var token: APITokenRecord?
        var lastSeen: Timestamp
        var lastPersisted: Timestamp
    }

    private var entries: [String: Entry] = [:]
    private var users: [UserID: UserRecord] = [:]
    private let limit: Int

    init(limit: Int = 100_000) {
        self.limit = limit
    }

    func entry(_ digest: String) -> Entry? { entries[digest] }

    func store(_ entry: Entry, for digest: String, user: UserRecord) {
        if entries.count >= limit {
            entries.removeAll(keepingCapacity: true)
            users.removeAll(keepingCapacity: true)
        }
        entries[digest] = entry
        users[user.id] = user
    }

    /// The account record loaded with a cached session, if any.
    func user(_ id: UserID) -> UserRecord? { users[id] }

    /// Records a use at `now`; returns true when the time should be written back.
    func touch(_ digest: String, at now: Timestamp) -> Bool {
        guard var entry = entries[digest] else { return false }
        entry.lastSeen = max(entry.lastSeen, now)
        let persist = now.millisecondsSinceEpoch - entry.lastPersisted.millisecondsSinceEpoch >= 60_000
        if persist { entry.lastPersisted = now }
        entries[digest] = entry
        return persist
    }

    func remove(_ digest: String) { entries[digest] = nil }

    func remove(user: UserID) {
        entries = entries.filter { $0.value.principal.id != user }
        users[user] = nil
    }
}
