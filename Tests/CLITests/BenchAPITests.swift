import CaduceusTesting
import Foundation
@_spi(Testing) import Persistence
import Testing

@testable import caduceus

@Suite("bench api")
struct BenchAPITests {
    static let text = """
        # HELP caduceus_http_request_duration_seconds Time from request to response, including the audit append.
        # TYPE caduceus_http_request_duration_seconds histogram
        caduceus_http_request_duration_seconds_bucket{le="0.001"} 60
        caduceus_http_request_duration_seconds_bucket{le="0.002"} 100
        caduceus_http_request_duration_seconds_bucket{le="0.005"} 109
        caduceus_http_request_duration_seconds_bucket{le="0.01"} 110
        caduceus_http_request_duration_seconds_bucket{le="+Inf"} 112
        caduceus_http_request_duration_seconds_sum 0.2
        caduceus_http_request_duration_seconds_count 112
        caduceus_http_requests_total{route="/v1/me",status="200"} 112
        """

    @Test("the server's histogram is read from its Prometheus text, and its quantiles interpolated within buckets")
    func histogramQuantiles() throws {
        let bounds: [Double] = [0.001, 0.002, 0.005, 0.01, .infinity]
        let counts: [Double] = [10, 10, 10, 10, 12]
        let earlier = BenchAPI.DurationHistogram(buckets: Array(zip(bounds, counts)).map { (bound: $0.0, count: $0.1) })
        let histogram = BenchAPI.DurationHistogram(prometheus: Self.text).since(earlier)
        #expect(histogram.buckets.map(\.count) == [50, 90, 99, 100, 100])
        #expect(histogram.buckets.last?.bound == .infinity)
        // Rank 50 ends the first bucket; rank 90 ends the second; rank 95 lies 5/9 into the third (2–5 ms).
        let expected: [(quantile: Double, milliseconds: Double)] = [(0.5, 1), (0.9, 2), (0.95, 2.0 + 3.0 * 5.0 / 9.0)]
        for (quantile, milliseconds) in expected {
            let found = try #require(histogram.quantile(quantile))
            #expect(abs(found - milliseconds) < 1e-9, "quantile \(quantile): \(found) ms")
        }
        // A quantile in the unbounded bucket is the last finite bound, as Prometheus reports it.
        let tail = BenchAPI.DurationHistogram(buckets: [(bound: 0.001, count: 1), (bound: .infinity, count: 10)])
        #expect(tail.quantile(0.99) == 1)
        #expect(BenchAPI.DurationHistogram(prometheus: "").quantile(0.5) == nil)
        #expect(
            BenchAPI.DurationHistogram(prometheus: Self.text).since(.init(prometheus: Self.text)).quantile(0.5) == nil)
    }

    @Test(
        "bench api prints wrk's figures and the server's own for both routes",
        .enabled(if: BenchAPI.which("wrk") != nil, "skipped: wrk is not installed"))
    func printsFigures() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let result = try CLI.run([
            "bench", "api", "--duration", "1", "--rounds", "1", "--connections", "4", "--threads", "1", "--directory",
            scratch.path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        let me = try #require(report["meRequests"] as? Int)
        #expect(me > 0 && report["meErrors"] as? Int == 0)
        // Every request was audited: the log holds at least one entry per request, and the log-in's.
        #expect((report["auditEntries"] as? Int ?? 0) > me)
        let rate = try #require(report["meRequestsPerSecond"] as? Double)
        let reference = try #require(report["referenceHealthzRequestsPerSecond"] as? Double)
        #expect(rate > 0 && reference > 0)
        let serverP50 = try #require(report["meServerP50Milliseconds"] as? Double)
        let serverP99 = try #require(report["meServerP99Milliseconds"] as? Double)
        #expect(serverP50 > 0 && serverP50 <= serverP99)
        let rounds = try #require(report["meRounds"] as? [[String: Any]])
        #expect(rounds.count == 1 && rounds[0]["serverP99Milliseconds"] as? Double == serverP99)
    }

    @Test(
        "bench scale prints writes on both engines, each replica's CPU, and a failover that waited for the lease",
        .enabled(if: BenchAPI.which("wrk") != nil && TestDatabase.engines.contains(.postgres)))
    func scalePrintsFigures() async throws {
        let url = try TestDatabase.serverURL()
        let before = try await Self.benchDatabases(url)
        var bare = url
        bare.password = nil
        let result = try CLI.run(
            [
                "bench", "scale", "--duration", "2", "--connections", "4", "--write-rounds", "2", "--rounds", "1",
                "--postgres", bare.redacted,
            ],
            environment: ["PGPASSWORD": url.password ?? ""])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        for run in ["sqliteOneReplica", "postgresOneReplica", "postgresTwoReplicas"] {
            #expect(
                (report[run + "WritesPerSecond"] as? Double ?? 0) > 0 && report[run + "Errors"] as? Int == 0, "\(run)")
            let cpu = try #require(report[run + "CpuSeconds"] as? [Double], "\(run)")
            #expect(cpu.count == (run == "postgresTwoReplicas" ? 2 : 1) && cpu.allSatisfy { $0 > 0 }, "\(run): \(cpu)")
        }
        // Each figure is the median of the rounds' (the upper one of two), each ratio the median of the rounds'.
        let rounds = try #require(report["writeRoundFigures"] as? [[String: Any]])
        #expect(rounds.count == 2 && report["writeRounds"] as? Int == 2)
        for run in ["sqliteOneReplica", "postgresOneReplica", "postgresTwoReplicas"] {
            let each = rounds.compactMap { $0[run + "WritesPerSecond"] as? Double }
            #expect(each.count == 2 && report[run + "WritesPerSecond"] as? Double == each.max(), "\(run): \(each)")
        }
        let ratios = rounds.compactMap { $0["twoOverOneReplica"] as? Double }
        #expect(ratios.count == 2 && report["twoOverOneReplica"] as? Double == ratios.max())
        // Both replicas did writes' work, not the leader alone: the busiest carried less per write than one.
        #expect((report["twoOverOneBusiestReplicaCpuPerWrite"] as? Double ?? 9) < 1)
        // The survivor answers the leader's part of the API only once it leads: after the 6 s lease.
        let failover = try #require(report["failoverMaxSeconds"] as? Double)
        #expect(failover > 5 && failover < 20, "\(failover) s")
        // Every database the run made is gone.
        #expect(try await Self.benchDatabases(url) == before)
    }

    static func benchDatabases(_ url: DatabaseURL) async throws -> Set<String> {
        let database = try await Database.openPostgres(url)
        do {
            let names = try await database.databaseNames().filter { $0.hasPrefix("caduceus_bench_") }
            try await database.close()
            return names
        } catch {
            try? await database.close()
            throw error
        }
    }
}
