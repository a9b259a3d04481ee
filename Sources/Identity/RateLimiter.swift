import CaduceusCore

/// Token buckets per key (a source address): `burst` requests at once, refilled at `perSecond`.
///
/// Unauthenticated requests pass through it so that a flood from one address can neither fill the audit
/// disk nor starve real users. Memory is bounded: beyond `maxKeys` buckets the idlest half is dropped.
public actor RateLimiter {
    private struct Bucket {
        var tokens: Double
        var updated: Int64
        var refusing = false
    }

    /// What the limiter says of one request.
    public enum Verdict: Sendable, Equatable {
        /// Within the limit.
        case allowed
        /// Over the limit, the first refusal since this key was last allowed (worth recording).
        case refused
        /// Over the limit again (count it, but record nothing more: a flood must not fill the disk).
        case refusedAgain
    }

    private let burst: Double
    private let perSecond: Double
    private let maxKeys: Int
    private let clock: any WallClock
    private var buckets: [String: Bucket] = [:]

    /// Creates a limiter.
    public init(
        burst: Int = 20, perSecond: Double = 10, maxKeys: Int = 100_000, clock: any WallClock = SystemWallClock()
    ) {
        self.burst = Double(burst)
        self.perSecond = perSecond
        self.maxKeys = maxKeys
        self.clock = clock
    }

    /// Takes one token for `key`; false when its bucket is empty.
    public func allow(_ key: String) -> Bool {
        check(key) == .allowed
    }

    /// Takes one token for `key` and says whether the request is allowed, refused for the first time, or
    /// refused again.
    public func check(_ key: String) -> Verdict {
        let now = clock.now().millisecondsSinceEpoch
        var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
        bucket.tokens = min(burst, bucket.tokens + Double(max(0, now - bucket.updated)) / 1000 * perSecond)
        bucket.updated = now
        let verdict: Verdict
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            bucket.refusing = false
            verdict = .allowed
        } else {
            verdict = bucket.refusing ? .refusedAgain : .refused
            bucket.refusing = true
        }
        buckets[key] = bucket
        if buckets.count > maxKeys { evict() }
        return verdict
    }

    private func evict() {
        let keep = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(maxKeys / 2)
        buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
    }
}
