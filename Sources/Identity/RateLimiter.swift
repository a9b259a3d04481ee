import CaduceusCore

/// Token buckets per key (a source address): `burst` requests at once, refilled at `perSecond`.
///
/// Unauthenticated requests pass through it so that a flood from one address can neither fill the audit
/// disk nor starve real users. Memory is bounded: beyond `maxKeys` buckets the idlest half is dropped.
public actor RateLimiter {
    private struct Bucket {
        var tokens: Double
        var updated: Int64
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
        let now = clock.now().millisecondsSinceEpoch
        var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
        bucket.tokens = min(burst, bucket.tokens + Double(max(0, now - bucket.updated)) / 1000 * perSecond)
        bucket.updated = now
        let allowed = bucket.tokens >= 1
        if allowed { bucket.tokens -= 1 }
        buckets[key] = bucket
        if buckets.count > maxKeys { evict() }
        return allowed
    }

    private func evict() {
        let keep = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(maxKeys / 2)
        buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
    }
}
