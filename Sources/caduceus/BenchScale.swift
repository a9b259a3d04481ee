import ArgumentParser
import CaduceusCore
import Foundation
import NIOHTTP1
import Persistence

/// `caduceus bench scale`: audited API writes on SQLite, on PostgreSQL with one replica and with two, and
/// how long the lead takes to change hands when the leader is killed.
struct BenchScale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Audited writes per second on SQLite and PostgreSQL (one and two replicas); leader failover time.",
        discussion: """
            Starts `caduceus serve` processes on scratch data directories and free loopback ports. Writes are \
            POST /v1/tenants by the bootstrap administrator (each one authenticated, stored and audited), driven \
            by wrk (Debian package 'wrk'). PostgreSQL runs need --postgres: a URL whose user may create \
            databases (each run gets a new one). With two replicas each answers its share itself (tenancy is answered by any replica). \
            The three write runs are repeated for --write-rounds rounds, in reverse order every other round; each \
            figure is the median over the rounds, each ratio the median of the rounds' ratios, and every round's \
            figures are printed too. \
            Failover: two replicas, the leader killed with SIGKILL, and the time until the other one answers the \
            leader's part of the API (GET /v1/nodes) as the new leader, over --rounds rounds. Slurm (--slurm-socket, --slurm-node, SLURM_CONF set): \
            --slurm-jobs one-GPU jobs submitted through Caduceus, timed until accepted, until in Slurm (squeue \
            lists them; a job waiting for GPUs waits there, held) and until completed; then as many plain \
            `sbatch --wrap true` from a shell loop, the reference.
            """
    )

    @Option(help: "PostgreSQL URL whose user may create databases (postgres://user:password@host:port/db).")
    var postgres: String?

    @Option(help: "Seconds per write run.")
    var duration: Int = 10

    @Option(help: "Concurrent connections per server.")
    var connections: Int = 16

    @Option(
        help:
            "Write rounds, each one run of every configuration (in reverse order every other round); the figures are medians."
    )
    var writeRounds: Int = 5

    @Option(help: "Failover rounds.")
    var rounds: Int = 5

    @Option(help: "slurmrestd's unix socket, to measure jobs through Caduceus into Slurm beside plain sbatch.")
    var slurmSocket: String?

    @Option(help: "The Slurm node (8 gpu:h200 GRES) the Slurm jobs run on.")
    var slurmNode: String?

    @Option(help: "The Slurm partition holding only that node.")
    var slurmPartition: String = "debug"

    @Option(help: "Jobs for the Slurm measurement.")
    var slurmJobs: Int = 300

    func run() async throws {
        guard writeRounds > 0 else { throw CLIError("--write-rounds must be at least 1") }
        guard let wrk = BenchAPI.which("wrk") else { throw CLIError("wrk is not installed: apt-get install -y wrk") }
        let scratch = FileManager.default.temporaryDirectory.path + "/caduceus-bench-scale-\(getpid())"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let script = scratch + "/tenants.lua"
        try Self.lua.write(toFile: script, atomically: true, encoding: .utf8)

        var fields: [(String, String)] = [("connections", "\(connections)"), ("durationSeconds", "\(duration)")]
        if let slurmSocket {
            fields += try await slurm(
                socket: slurmSocket, node: slurmNode ?? ServeCommand.nodeName(), partition: slurmPartition,
                count: slurmJobs, scratch: scratch + "/slurm")
        } else {
            fields.append(("slurm", "\"skipped: no --slurm-socket\""))
        }
        guard let postgres else {
            var sqlite: [Writes] = []
            for round in 0..<writeRounds {
                sqlite.append(
                    try await writes(
                        replicas: 1, database: nil, scratch: scratch + "/sqlite\(round)", wrk: wrk, script: script))
            }
            fields += Self.fields("sqliteOneReplica", Writes.median(sqlite))
            fields.append(("postgres", "\"skipped: no --postgres URL\""))
            StandardStreams.line("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
            return
        }
        let admin = try DatabaseURL(postgres)
        // Each round runs all three, the order reversed every other round, so that a busy or a quiet spell of
        // the machine, or a drift over the run, weighs on every configuration alike.
        var measured: [Round] = []
        for round in 0..<writeRounds {
            var figures = Round()
            for run in round % 2 == 0 ? Round.Run.allCases : Round.Run.allCases.reversed() {
                figures.runs[run] = try await writes(
                    run, admin: admin, scratch: scratch + "/\(run.rawValue)\(round)", wrk: wrk, script: script)
            }
            measured.append(figures)
        }
        let (sqlite, one, two) = (
            Writes.median(measured.map { $0[.sqlite] }), Writes.median(measured.map { $0[.postgresOne] }),
            Writes.median(measured.map { $0[.postgresTwo] })
        )
        fields += Self.fields("sqliteOneReplica", sqlite)
        fields += Self.fields("postgresOneReplica", one)
        fields += Self.fields("postgresTwoReplicas", two)
        // Ratios within each round, then their median: both sides of a ratio ran minutes apart at most.
        fields.append(("postgresOverSqlite", BenchAPI.number(BenchAPI.median(measured.map(\.postgresOverSqlite)))))
        fields.append(("twoOverOneReplica", BenchAPI.number(BenchAPI.median(measured.map(\.twoOverOne)))))
        // What each machine would carry with the replicas on machines of their own: the busiest replica's CPU
        // per write, against the one replica's.
        fields.append(
            (
                "twoOverOneBusiestReplicaCpuPerWrite",
                BenchAPI.number(two.busiestCPUPerWrite / max(0.001, one.busiestCPUPerWrite))
            ))
        fields.append(("writeRounds", "\(measured.count)"))
        fields.append(("writeRoundFigures", "[" + measured.map(\.json).joined(separator: ",") + "]"))

        var takeovers: [Double] = []
        for round in 0..<rounds {
            takeovers.append(
                try await Self.withFreshDatabase(admin) { database in
                    try await failover(database: database, scratch: scratch + "/fo\(round)")
                })
        }
        let sorted = takeovers.sorted()
        fields.append(("failoverRounds", "\(rounds)"))
        fields.append(("failoverP50Seconds", BenchAPI.number(sorted.isEmpty ? 0 : sorted[sorted.count / 2])))
        fields.append(("failoverMaxSeconds", BenchAPI.number(sorted.last ?? 0)))
        StandardStreams.line("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    /// Each wrk process makes tenant names of its own (its first argument is their prefix), so that no write is
    /// refused as taken.
    static let lua = """
        local counter = 0
        local prefix = ""
        local headers = {}
        function init(args)
            prefix = args[1]
            for name, value in pairs(wrk.headers) do headers[name] = value end
            headers["Content-Type"] = "application/json"
        end
        function request()
            counter = counter + 1
            local body = string.format('{"name":"%s-%d"}', prefix, counter)
            return wrk.format("POST", "/v1/tenants", headers, body)
        end
        """

    /// A write run's figures, with what each replica's process spent on the CPU meanwhile.
    struct Writes {
        var figures: BenchAPI.Figures
        /// Each replica's user and system CPU seconds during the run.
        var cpuSeconds: [Double]

        var requestsPerSecond: Double { figures.requestsPerSecond }

        static let empty = Writes(
            figures: BenchAPI.Figures(requestsPerSecond: 0, p50: 0, p99: 0, requests: 0, errors: 0), cpuSeconds: [])

        /// Rates and latencies: their medians over the runs; requests, errors and each replica's CPU: summed.
        static func median(_ runs: [Writes]) -> Writes {
            let replicas = runs.map(\.cpuSeconds.count).max() ?? 0
            return Writes(
                figures: BenchAPI.Figures.median(runs.map(\.figures)),
                cpuSeconds: (0..<replicas).map { replica in
                    runs.map { replica < $0.cpuSeconds.count ? $0.cpuSeconds[replica] : 0 }.reduce(0, +)
                })
        }

        /// The busiest replica's CPU milliseconds per write of all replicas.
        var busiestCPUPerWrite: Double {
            (cpuSeconds.max() ?? 0) * 1000 / Double(max(1, figures.requests))
        }
    }

    /// One write round: a run of each configuration.
    struct Round {
        enum Run: String, CaseIterable {
            case sqlite, postgresOne, postgresTwo
        }

        var runs: [Run: Writes] = [:]

        subscript(run: Run) -> Writes { runs[run] ?? Writes.empty }

        var postgresOverSqlite: Double {
            self[.postgresOne].requestsPerSecond / max(1, self[.sqlite].requestsPerSecond)
        }
        var twoOverOne: Double { self[.postgresTwo].requestsPerSecond / max(1, self[.postgresOne].requestsPerSecond) }

        var json: String {
            "{\"sqliteOneReplicaWritesPerSecond\":\(BenchAPI.number(self[.sqlite].requestsPerSecond)),"
                + "\"postgresOneReplicaWritesPerSecond\":\(BenchAPI.number(self[.postgresOne].requestsPerSecond)),"
                + "\"postgresTwoReplicasWritesPerSecond\":\(BenchAPI.number(self[.postgresTwo].requestsPerSecond)),"
                + "\"twoOverOneReplica\":\(BenchAPI.number(twoOverOne))}"
        }
    }

    static func fields(_ name: String, _ figures: BenchAPI.Figures) -> [(String, String)] {
        [
            (name + "WritesPerSecond", BenchAPI.number(figures.requestsPerSecond)),
            (name + "P50Milliseconds", BenchAPI.number(figures.p50)),
            (name + "P99Milliseconds", BenchAPI.number(figures.p99)),
            (name + "Errors", "\(figures.errors)"),
        ]
    }

    static func fields(_ name: String, _ writes: Writes) -> [(String, String)] {
        fields(name, writes.figures) + [
            (name + "CpuSeconds", "[" + writes.cpuSeconds.map(BenchAPI.number).joined(separator: ",") + "]"),
            (name + "BusiestReplicaCpuMillisecondsPerWrite", BenchAPI.number(writes.busiestCPUPerWrite)),
        ]
    }

    /// Runs `body` on a new database of the server `admin` names, and drops that database afterwards.
    static func withFreshDatabase<T>(_ admin: DatabaseURL, _ body: (DatabaseURL) async throws -> T) async throws -> T {
        let name = "caduceus_bench_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await Database.createPostgresDatabase(named: name, on: admin)
        var url = admin
        url.database = name
        do {
            let result = try await body(url)
            try await Database.dropPostgresDatabase(named: name, on: admin)
            return result
        } catch {
            try? await Database.dropPostgresDatabase(named: name, on: admin)
            throw error
        }
    }

    /// One write run of `run`'s configuration; on PostgreSQL in a new database of the server `admin` names.
    func writes(
        _ run: Round.Run, admin: DatabaseURL, scratch: String, wrk: String, script: String
    ) async throws -> Writes {
        guard run != .sqlite else {
            return try await writes(replicas: 1, database: nil, scratch: scratch, wrk: wrk, script: script)
        }
        return try await Self.withFreshDatabase(admin) { database in
            try await writes(
                replicas: run == .postgresTwo ? 2 : 1, database: database, scratch: scratch, wrk: wrk, script: script)
        }
    }

    /// Starts `replicas` servers on one database and drives writes at all of them at once; the figures are
    /// summed (requests per second) or the worst (latency).
    func writes(
        replicas: Int, database: DatabaseURL?, scratch: String, wrk: String, script: String
    ) async throws -> Writes {
        let servers = try ServeProcess.replicas(replicas, database: database, scratch: scratch)
        defer { servers.forEach { $0.stop() } }
        let first = servers[0]
        let token = try await BenchAPI.adminSession(
            url: first.url, caCertificate: first.data + "/tls/ca.pem",
            bootstrapFile: first.data + "/bootstrap-admin.json")
        let (connections, duration) = (self.connections, self.duration)
        let cpuBefore = servers.map(\.cpuSeconds)
        let results = try await withThrowingTaskGroup(of: BenchAPI.Figures.self) { group in
            for url in servers.map(\.url) {
                let prefix = "b" + UUID().uuidString.lowercased().prefix(12).filter { $0 != "-" }
                group.addTask {
                    try await BenchAPI.drive(
                        wrk, url: url, token: token, threads: 1, connections: connections, seconds: duration,
                        script: script, scriptArguments: [prefix])
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let errors = results.map(\.errors).reduce(0, +)
        guard errors * 100 <= max(1, results.map(\.requests).reduce(0, +)) else {
            throw CLIError("\(errors) of the writes failed: the figures would not be of successful writes")
        }
        let cpu = zip(servers, cpuBefore).map { $0.cpuSeconds - $1 }
        return Writes(
            figures: BenchAPI.Figures(
                requestsPerSecond: results.map(\.requestsPerSecond).reduce(0, +), p50: results.map(\.p50).max() ?? 0,
                p99: results.map(\.p99).max() ?? 0, requests: results.map(\.requests).reduce(0, +),
                errors: results.map(\.errors).reduce(0, +)),
            cpuSeconds: cpu)
    }

    /// Two replicas; the leader is killed; seconds until the other one answers the API as the new leader.
    func failover(database: DatabaseURL, scratch: String) async throws -> Double {
        let servers = try ServeProcess.replicas(2, database: database, scratch: scratch)
        defer { servers.forEach { $0.stop() } }
        let token = try await BenchAPI.adminSession(
            url: servers[0].url, caCertificate: servers[0].data + "/tls/ca.pem",
            bootstrapFile: servers[0].data + "/bootstrap-admin.json")
        let client = try APIClient(server: servers[1].url, token: token, caCertificate: servers[1].data + "/tls/ca.pem")
        do {
            let seconds = try await takeover(servers, client)
            await client.shutdown()
            return seconds
        } catch {
            await client.shutdown()
            throw error
        }
    }

    private func takeover(_ servers: [ServeProcess], _ survivor: APIClient) async throws -> Double {
        // The first replica started first and leads; the second answers the fleet by forwarding to it (and
        // tenancy itself, so that does not tell who leads).
        let deadline = Date().addingTimeInterval(30)
        while (try? await survivor.send(.GET, "/v1/nodes")) == nil {
            guard Date() < deadline else { throw CLIError("the follower never answered through the leader") }
            try await Task.sleep(for: .milliseconds(100))
        }
        servers[0].kill()
        let killed = Date()
        while Date().timeIntervalSince(killed) < 60 {
            if (try? await survivor.send(.GET, "/v1/nodes")) != nil { return Date().timeIntervalSince(killed) }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CLIError("no replica took over within 60 s")
    }
}

/// A `caduceus serve` child process of this executable.
final class ServeProcess {
    let process = Process()
    let data: String
    private(set) var url = ""
    private let output = Pipe()

    init(data: String, database: DatabaseURL?, environment extra: [String: String] = [:]) throws {
        self.data = data
        try FileManager.default.createDirectory(
            atPath: (data as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        if !FileManager.default.isExecutableFile(atPath: process.executableURL?.path ?? "") {
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        }
        var arguments = ["serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--agent-listen", "off"]
        var environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        if let database {
            var bare = database
            environment["PGPASSWORD"] = bare.password
            bare.password = nil
            arguments += ["--database", bare.redacted]
        }
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        var text = ""
        while Date() < deadline && process.isRunning {
            text += String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Caduceus is listening on ") }) {
                url = String(line.dropFirst("Caduceus is listening on ".count))
                return
            }
        }
        stop()
        throw CLIError("a caduceus serve process did not start")
    }

    /// `count` replicas on one database; the second and later share the first one's keys and CA.
    static func replicas(_ count: Int, database: DatabaseURL?, scratch: String) throws -> [ServeProcess] {
        var servers: [ServeProcess] = []
        do {
            for index in 0..<count {
                let data = scratch + "/replica\(index)"
                if index > 0 {
                    try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
                    for folder in ["keys", "tls"] {
                        try FileManager.default.copyItem(
                            atPath: servers[0].data + "/" + folder, toPath: data + "/" + folder)
                    }
                }
                servers.append(try ServeProcess(data: data, database: database))
            }
        } catch {
            servers.forEach { $0.stop() }
            throw error
        }
        return servers
    }

    /// The user and system CPU seconds this process has used so far (`/proc/PID/stat`), 0 once it is gone.
    var cpuSeconds: Double {
        guard let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
            let end = text.lastIndex(of: ")")
        else { return 0 }
        // After the command name: state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: end)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}
