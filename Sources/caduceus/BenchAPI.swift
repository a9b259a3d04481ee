import ArgumentParser
import AuditLog
import CaduceusCore
import ControlPlane
import ControlPlaneHTTP
import Foundation
import Identity
import Logging
import NIOHTTP1
import ServiceLifecycle

/// `caduceus bench api`: an authenticated, audited `GET /v1/me` against `/healthz` of the same server,
/// driven by wrk over TLS.
struct BenchAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Requests per second and p50/p99 latency of GET /v1/me (authenticated, audited) and of /healthz.",
        discussion: """
            Starts a server on a scratch data directory and a free loopback port, logs in as its bootstrap \
            administrator, and drives both routes with wrk (Debian package 'wrk') over TLS with keep-alive. \
            /healthz of the same server is the reference measured in the same run. The two alternate for \
            --rounds rounds, so that a busy moment of the machine weighs on both; each figure reported is the \
            median over the rounds, and every round's figures are listed too.
            """
    )

    @Option(help: "Seconds per route.")
    var duration: Int = 10

    @Option(help: "Concurrent connections.")
    var connections: Int = 64

    @Option(help: "Rounds, each one run of both routes.")
    var rounds: Int = 3

    @Option(help: "wrk threads.")
    var threads: Int = 2

    @Option(help: "Directory to create the scratch data directory in (default: the system temporary directory).")
    var directory: String?

    /// The median of `values` (the upper one of an even count); 0 for none.
    static func median(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.sorted()[values.count / 2] }

    struct Figures {
        var requestsPerSecond: Double
        var p50: Double
        var p99: Double
        var requests: Int
        var errors: Int
        /// The time spent in the server, from its own histogram: from the middleware receiving the request to
        /// the handler's response, before it is written.
        var server: (p50: Double, p99: Double)? = nil

        /// Each rate's and latency's median over `rounds` (the upper one of an even count); the counts summed.
        static func median(_ rounds: [Figures]) -> Figures {
            let middle = BenchAPI.median
            let server = rounds.compactMap(\.server)
            return Figures(
                requestsPerSecond: middle(rounds.map(\.requestsPerSecond)), p50: middle(rounds.map(\.p50)),
                p99: middle(rounds.map(\.p99)), requests: rounds.map(\.requests).reduce(0, +),
                errors: rounds.map(\.errors).reduce(0, +),
                server: server.count == rounds.count && !server.isEmpty
                    ? (middle(server.map(\.p50)), middle(server.map(\.p99))) : nil)
        }

        /// The rounds as a JSON array of their rate and latencies.
        static func list(_ rounds: [Figures]) -> String {
            "["
                + rounds.map { round in
                    "{\"requestsPerSecond\":\(BenchAPI.number(round.requestsPerSecond)),"
                        + "\"p50Milliseconds\":\(BenchAPI.number(round.p50)),\"p99Milliseconds\":\(BenchAPI.number(round.p99))"
                        + (round.server.map {
                            ",\"serverP50Milliseconds\":\(BenchAPI.number($0.p50)),"
                                + "\"serverP99Milliseconds\":\(BenchAPI.number($0.p99))"
                        } ?? "") + "}"
                }.joined(separator: ",") + "]"
        }
    }

    func run() async throws {
        guard let wrk = Self.which("wrk") else { throw CLIError("wrk is not installed: apt-get install -y wrk") }
        // The handler `serve` uses, so that the figures are the server's.
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: .warning) }
        let data = (directory ?? FileManager.default.temporaryDirectory.path) + "/caduceus-bench-api-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let configuration = try ServerConfiguration.resolve(
            file: nil, overrides: ["dataDirectory": data, "listen": "127.0.0.1:0", "agentListen": "off"])
        let (started, continuation) = AsyncStream.makeStream(of: CaduceusServer.Started.self)
        var logger = Logger(label: "caduceus.bench")
        logger.logLevel = .warning
        let quietLogger = logger
        // The server runs under a group of its own, so that it is stopped as SIGTERM stops it: gracefully, with
        // its connections closed and its audit log flushed, rather than cancelled.
        let group = ServiceGroup(
            services: [
                InProcessServer {
                    try await CaduceusServer.run(configuration: configuration, logger: quietLogger) {
                        continuation.yield($0)
                    }
                }
            ], logger: quietLogger)
        let server = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var iterator = started.makeAsyncIterator()
        guard let info = await iterator.next() else {
            try await server.value
            throw CLIError("the server did not start")
        }
        defer { server.cancel() }

        // Whatever the rounds end with, the server stops gracefully before the scratch directory goes.
        let outcome: Result<(references: [Figures], measured: [Figures]), any Error>
        do {
            outcome = .success(try await measure(wrk: wrk, server: info))
        } catch {
            outcome = .failure(error)
        }
        await group.triggerGracefulShutdown()
        let stopped = await server.result
        let (references, measured) = try outcome.get()
        try stopped.get()
        let audited = try Checkpoint.readUnverified(
            Array(try Data(contentsOf: URL(fileURLWithPath: data + "/audit/checkpoint")))
        ).size

        let me = Figures.median(measured)
        let reference = Figures.median(references)
        let fields: [(String, String)] = [
            ("connections", "\(connections)"), ("durationSeconds", "\(duration)"), ("rounds", "\(measured.count)"),
            ("meRequestsPerSecond", Self.number(me.requestsPerSecond)),
            ("meP50Milliseconds", Self.number(me.p50)), ("meP99Milliseconds", Self.number(me.p99)),
            ("meServerP50Milliseconds", me.server.map { Self.number($0.p50) } ?? "null"),
            ("meServerP99Milliseconds", me.server.map { Self.number($0.p99) } ?? "null"),
            ("meRequests", "\(me.requests)"), ("meErrors", "\(me.errors)"),
            ("referenceHealthzRequestsPerSecond", Self.number(reference.requestsPerSecond)),
            ("referenceHealthzP50Milliseconds", Self.number(reference.p50)),
            ("referenceHealthzP99Milliseconds", Self.number(reference.p99)),
            ("meOverHealthz", Self.number(me.requestsPerSecond / max(1, reference.requestsPerSecond))),
            ("auditEntries", "\(audited)"),
            ("meRounds", Figures.list(measured)), ("referenceHealthzRounds", Figures.list(references)),
        ]
        StandardStreams.line("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    /// Logs in, then alternates the two routes for `rounds` rounds.
    func measure(
        wrk: String, server info: CaduceusServer.Started
    ) async throws -> (
        references: [Figures], measured: [Figures]
    ) {
        let token = try await Self.adminSession(
            url: info.url, caCertificate: info.caCertificatePath, bootstrapFile: info.bootstrapFile)
        // The server's own request-duration histogram, read around each round of /v1/me, says how much of the
        // latency wrk sees is spent in the server. The reading itself is one request more in the window.
        let scraper = try APIClient(server: info.url, token: nil, caCertificate: info.caCertificatePath)
        func histogram() async throws -> DurationHistogram {
            DurationHistogram(
                prometheus: String(decoding: try await scraper.send(.GET, "/metrics").body, as: UTF8.self))
        }
        var references: [Figures] = []
        var measured: [Figures] = []
        do {
            for _ in 0..<max(1, rounds) {
                references.append(try await Self.drive(wrk, url: info.url + "/healthz", token: nil, self))
                let before = try await histogram()
                var figures = try await Self.drive(wrk, url: info.url + "/v1/me", token: token, self)
                let during = try await histogram().since(before)
                if let p50 = during.quantile(0.5), let p99 = during.quantile(0.99) { figures.server = (p50, p99) }
                measured.append(figures)
            }
        } catch {
            await scraper.shutdown()
            throw error
        }
        await scraper.shutdown()
        return (references, measured)
    }

    /// The server's `caduceus_http_request_duration_seconds` histogram, read from its Prometheus text.
    struct DurationHistogram {
        /// Cumulative counts by upper bound in seconds, ascending; the last bound is infinite.
        var buckets: [(bound: Double, count: Double)]

        init(buckets: [(bound: Double, count: Double)]) { self.buckets = buckets }

        init(prometheus text: String) {
            let prefix = "caduceus_http_request_duration_seconds_bucket{le=\""
            var buckets: [(bound: Double, count: Double)] = []
            for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
                let rest = line.dropFirst(prefix.count)
                guard let quote = rest.firstIndex(of: "\""),
                    let bound = rest[..<quote] == "+Inf" ? Double.infinity : Double(rest[..<quote]),
                    let count = rest.split(separator: " ").last.flatMap({ Double($0) })
                else { continue }
                buckets.append((bound, count))
            }
            self.buckets = buckets.sorted { $0.bound < $1.bound }
        }

        /// What was counted after `earlier`, a reading of the same histogram.
        func since(_ earlier: DurationHistogram) -> DurationHistogram {
            DurationHistogram(
                buckets: buckets.map { bucket in
                    (bucket.bound, bucket.count - (earlier.buckets.first { $0.bound == bucket.bound }?.count ?? 0))
                })
        }

        /// The `q` quantile in milliseconds, interpolated within its bucket as Prometheus's `histogram_quantile`
        /// does (a bucket's upper bound when it is the last finite one); nil when nothing was counted.
        func quantile(_ q: Double) -> Double? {
            guard let total = buckets.last?.count, total > 0 else { return nil }
            let rank = q * total
            var lower = (bound: 0.0, count: 0.0)
            for bucket in buckets {
                if bucket.count >= rank {
                    guard bucket.bound.isFinite else { return lower.bound * 1000 }
                    let share = bucket.count > lower.count ? (rank - lower.count) / (bucket.count - lower.count) : 1
                    return (lower.bound + (bucket.bound - lower.bound) * share) * 1000
                }
                lower = bucket
            }
            return nil
        }
    }

    /// A server run in this process, as a service of a group that can stop it gracefully.
    struct InProcessServer: Service {
        let body: @Sendable () async throws -> Void
        func run() async throws { try await body() }
    }

    static func number(_ value: Double) -> String { String(format: "%.2f", value) }

    static func which(_ name: String) -> String? {
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Logs in as the bootstrap administrator, sets a password, and returns a fresh session token.
    static func adminSession(url: String, caCertificate: String, bootstrapFile: String?) async throws -> String {
        guard let file = bootstrapFile,
            let bootstrap = try? JSONDecoder().decode(
                BootstrapAdmin.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        else { throw CLIError("no bootstrap credentials") }
        let totp = TOTP(secret: Base32.decode(bootstrap.totpSecret) ?? [])
        let step = TOTP.step(at: SystemWallClock().now())
        let anonymous = try APIClient(server: url, token: nil, caCertificate: caCertificate)
        let first = try await anonymous.post(
            "/v1/sessions", LoginRequest(user: "admin", password: bootstrap.password, code: totp.code(step: step)),
            as: LoginResponse.self)
        let admin = try APIClient(server: url, token: first.token, caCertificate: caCertificate)
        _ = try await admin.send(
            .POST, "/v1/me/password",
            body: ChangePasswordRequest(currentPassword: bootstrap.password, newPassword: "benchmark password 1"))
        let second = try await anonymous.post(
            "/v1/sessions",
            LoginRequest(user: "admin", password: "benchmark password 1", code: totp.code(step: step + 1)),
            as: LoginResponse.self)
        await anonymous.shutdown()
        await admin.shutdown()
        return second.token
    }

    /// Runs wrk against `url` and reads its figures.
    static func drive(_ wrk: String, url: String, token: String?, _ options: BenchAPI) async throws -> Figures {
        try await drive(
            wrk, url: url, token: token, threads: options.threads, connections: options.connections,
            seconds: options.duration)
    }

    /// Runs wrk against `url` (with a Lua `script`, if given) and reads its figures. The wait for wrk holds a
    /// thread of its own, never one that serves requests.
    static func drive(
        _ wrk: String, url: String, token: String?, threads: Int, connections: Int, seconds: Int,
        script: String? = nil, scriptArguments: [String] = []
    ) async throws -> Figures {
        try await DedicatedThread.run {
            try runWrk(
                wrk, url: url, token: token, threads: threads, connections: connections, seconds: seconds,
                script: script, scriptArguments: scriptArguments)
        }
    }

    private static func runWrk(
        _ wrk: String, url: String, token: String?, threads: Int, connections: Int, seconds: Int,
        script: String?, scriptArguments: [String]
    ) throws -> Figures {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrk)
        var arguments = ["-t", "\(threads)", "-c", "\(connections)", "-d", "\(seconds)s", "--latency"]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let script { arguments += ["-s", script] }
        process.arguments = arguments + [url] + (scriptArguments.isEmpty ? [] : ["--"] + scriptArguments)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let rate = value(after: "Requests/sec:", in: text) else {
            throw CLIError("wrk failed:\n\(text)")
        }
        let requests =
            text.split(separator: "\n").first { $0.contains("requests in") }
            .flatMap { Int($0.trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") } ?? 0
        let errors =
            text.split(separator: "\n").first { $0.contains("Non-2xx or 3xx responses:") }
            .flatMap { Int($0.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") } ?? 0
        return Figures(
            requestsPerSecond: rate, p50: latency("50%", in: text) ?? 0, p99: latency("99%", in: text) ?? 0,
            requests: requests, errors: errors)
    }

    static func value(after label: String, in text: String) -> Double? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains(label) }) else { return nil }
        return Double(line.replacingOccurrences(of: label, with: "").trimmingCharacters(in: .whitespaces))
    }

    /// A latency percentile from wrk's distribution, in milliseconds.
    static func latency(_ percentile: String, in text: String) -> Double? {
        guard
            let line = text.split(separator: "\n").first(where: {
                $0.trimmingCharacters(in: .whitespaces).hasPrefix(percentile)
            })
        else { return nil }
        let field = line.trimmingCharacters(in: .whitespaces).dropFirst(percentile.count).trimmingCharacters(
            in: .whitespaces)
        for (unit, scale) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] where field.hasSuffix(unit) {
            return Double(field.dropLast(unit.count)).map { $0 * scale }
        }
        return nil
    }
}
