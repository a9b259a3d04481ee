import AuditLog
import Hummingbird
import NIOCore
import Prometheus
import Synchronization

/// The server's Prometheus metrics: requests by route and status, request durations, and the audit log's
/// size. Served at `/metrics` to loopback clients only (a scraper on the same host, or a sidecar); other
/// addresses get a 404, as if the route did not exist.
public final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let durations: DurationHistogram
    private let auditSize: Gauge
    private let trail: AuditTrail?
    /// The request counters made so far, by route and status.
    private let counters = Mutex<[CounterKey: Counter]>([:])

    /// Creates the metrics, reading the audit log's size from `trail` at each scrape.
    public init(trail: AuditTrail?) {
        self.trail = trail
        durations = registry.makeDurationHistogram(
            descriptor: .init(
                namespace: "caduceus", subsystem: "http", metricName: "request_duration", unitName: "seconds",
                helpText: "Time from request to response, including the audit append."),
            // Fine below 25 ms, where the API's requests fall and a latency objective would be set.
            buckets: [
                .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(3), .milliseconds(5),
                .milliseconds(7), .milliseconds(10), .milliseconds(15), .milliseconds(20), .milliseconds(25),
                .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(1000), .seconds(5),
            ])
        auditSize = registry.makeGauge(
            descriptor: .init(
                namespace: "caduceus", subsystem: "audit", metricName: "log", unitName: "entries",
                helpText: "Entries in the audit log."))
    }

    static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "caduceus", subsystem: "http", metricName: "requests", unitName: "total",
            helpText: "HTTP requests by route pattern and status code.")
    }

    /// Counts one request.
    func record(route: String, status: Int, duration: Duration) {
        let key = CounterKey(route: route, status: status)
        // The registry checks names and labels on every lookup; the counters are kept once made.
        let counter =
            counters.withLock { $0[key] }
            ?? {
                let made = registry.makeCounter(
                    descriptor: Self.requests, labels: [("route", route), ("status", String(status))])
                counters.withLock { $0[key] = made }
                return made
            }()
        counter.increment()
        durations.record(duration)
    }

    private struct CounterKey: Hashable {
        var route: String
        var status: Int
    }

    /// The exposition text.
    func render() -> [UInt8] {
        if let trail { auditSize.set(Double(trail.log.checkpoint.checkpoint.size)) }
        return registry.emitToBuffer()
    }

    /// Whether a peer is on this host.
    static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}
