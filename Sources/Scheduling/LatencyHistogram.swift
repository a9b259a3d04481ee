/// Latencies in nanoseconds, kept in log-linear buckets (under 0.2 % error) so that millions of samples take
/// a few kilobytes; percentiles are read from the buckets.
public struct LatencyHistogram: Sendable {
    private var counts = [UInt64](repeating: 0, count: 64 * 512)
    /// Samples recorded.
    public private(set) var count: UInt64 = 0
    /// The largest sample.
    public private(set) var maximum: UInt64 = 0
    /// The sum of all samples.
    public private(set) var total: UInt64 = 0

    /// An empty histogram.
    public init() {}

    /// Records one sample.
    public mutating func record(_ nanoseconds: UInt64) {
        counts[Self.bucket(nanoseconds)] += 1
        count += 1
        total &+= nanoseconds
        maximum = max(maximum, nanoseconds)
    }

    /// Adds another histogram's samples.
    public mutating func merge(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] += other.counts[index] }
        count += other.count
        total &+= other.total
        maximum = max(maximum, other.maximum)
    }

    /// The value at or below which `fraction` (0–1) of the samples lie, in nanoseconds.
    public func percentile(_ fraction: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = max(1, UInt64((Double(count) * fraction).rounded(.up)))
        var seen: UInt64 = 0
        for (index, bucketCount) in counts.enumerated() where bucketCount > 0 {
            seen += bucketCount
            if seen >= rank { return min(Self.upperBound(index), maximum) }
        }
        return maximum
    }

    /// Values below 512 have a bucket each; above, each power of two is split into 512 buckets.
    private static func bucket(_ value: UInt64) -> Int {
        guard value >= 512 else { return Int(value) }
        let exponent = 63 - value.leadingZeroBitCount  // ≥ 9
        let mantissa = Int((value >> UInt64(exponent - 9)) & 511)
        return (exponent - 8) * 512 + mantissa
    }

    private static func upperBound(_ index: Int) -> UInt64 {
        guard index >= 512 else { return UInt64(index) }
        let exponent = index / 512 + 8
        let mantissa = UInt64(index % 512)
        return ((512 + mantissa + 1) << UInt64(exponent - 9)) - 1
    }
}

/// Percentiles of a latency histogram in microseconds, for reports.
public struct LatencySummary: Codable, Sendable, Hashable {
    public var p50: Double
    public var p99: Double
    public var max: Double
    public var mean: Double

    /// Summarises a histogram.
    public init(_ histogram: LatencyHistogram) {
        p50 = Double(histogram.percentile(0.5)) / 1000
        p99 = Double(histogram.percentile(0.99)) / 1000
        max = Double(histogram.maximum) / 1000
        mean = histogram.count == 0 ? 0 : Double(histogram.total) / Double(histogram.count) / 1000
    }
}
