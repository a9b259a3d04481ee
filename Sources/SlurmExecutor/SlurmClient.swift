import AsyncHTTPClient
import CaduceusCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// A client of slurmrestd's `openapi/v0.0.38` API: ping, nodes, partitions, jobs, submit and cancel.
///
/// Every failure is a `CaduceusError`: `slurm.unavailable` when slurmrestd cannot be reached or does not
/// answer in time, `slurm.error` with Slurm's own words when it answers with errors.
public struct SlurmClient: Sendable {
    public static let apiVersion = "v0.0.38"
    let endpoint: SlurmEndpoint
    let http: HTTPClient

    /// A client over `http`, which the caller shuts down.
    public init(endpoint: SlurmEndpoint, http: HTTPClient) {
        self.endpoint = endpoint
        self.http = http
    }

    /// An HTTP client fit for `endpoint`: TLS 1.2 or later, and its CA when it names one.
    public static func makeHTTPClient(for endpoint: SlurmEndpoint) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let ca = endpoint.caCertificateFile { tls.trustRoots = .file(ca) }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(
            connect: .seconds(Int64(endpoint.timeoutSeconds)), read: .seconds(Int64(endpoint.timeoutSeconds)))
        // A slurmrestd that is down fails each request at once, so that the runner says so and tries again on
        // its own schedule; retrying inside the client left requests waiting on a socket that was gone.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    // MARK: Operations

    /// Slurm's release, when slurmctld answers slurmrestd's ping.
    public func ping() async throws -> String {
        let reply = try await call(.GET, "ping", as: PingReply.self)
        guard let pings = reply.pings, !pings.isEmpty, pings.allSatisfy({ $0.ping == "UP" }) else {
            throw CaduceusError(code: "slurm.unavailable", message: "slurmctld does not answer slurmrestd's ping")
        }
        return reply.meta?.Slurm?.release ?? "unknown"
    }

    /// Every node Slurm knows.
    public func nodes() async throws -> [SlurmNode] {
        try await call(.GET, "nodes", as: NodesReply.self).nodes ?? []
    }

    /// Every partition, with its nodes expanded.
    public func partitions() async throws -> [SlurmPartition] {
        (try await call(.GET, "partitions", as: PartitionsReply.self).partitions ?? []).map {
            SlurmPartition(name: $0.name, nodes: Hostlist.expand($0.nodes ?? ""))
        }
    }

    /// Every job slurmctld still holds (finished ones stay for `MinJobAge`).
    public func jobs() async throws -> [SlurmJob] {
        try await call(.GET, "jobs", as: JobsReply.self).jobs ?? []
    }

    /// One job, or nil when Slurm no longer knows it.
    public func job(_ id: Int) async throws -> SlurmJob? {
        do {
            return try await call(.GET, "job/\(id)", as: JobsReply.self).jobs?.first
        } catch let error as CaduceusError where error.code == "slurm.error" && error.message.contains("Invalid job id")
        {
            return nil
        }
    }

    /// Submits a batch job; returns Slurm's job ID. A job submitted held waits, priority 0, until `release`.
    public func submit(_ submission: SlurmSubmission) async throws -> Int {
        // slurmrestd answers a held submission with "Job is in held state, pending scheduler release"
        // (ESLURM_JOB_HELD) among its errors, beside the job's ID: that is the hold, not a failure.
        let reply = try await call(
            .POST, "job/submit", body: submission, as: SubmitReply.self,
            tolerating: submission.job.hold == true ? [Self.jobHeld] : [])
        guard let id = reply.job_id else {
            throw CaduceusError(code: "slurm.error", message: "slurmrestd accepted the job but gave no job ID")
        }
        return id
    }

    /// Releases a held job onto `nodelist` with `gres` (`gpu:<model>:N`), both set in the same update, so that
    /// it never runs anywhere else or with other GPUs.
    public func release(_ id: Int, nodelist: String, gres: String?) async throws {
        _ = try await call(
            .POST, "job/\(id)", body: SlurmJobUpdate(nodelist: nodelist, gres: gres, hold: false), as: EmptyReply.self)
    }

    /// Slurm's ESLURM_JOB_HELD.
    static let jobHeld = 2042

    /// Cancels a job (scancel); a job Slurm already finished or forgot is not an error.
    public func cancel(_ id: Int) async throws {
        do {
            _ = try await call(.DELETE, "job/\(id)", as: EmptyReply.self)
        } catch let error as CaduceusError
            where error.code == "slurm.error"
            && (error.message.contains("already completed") || error.message.contains("Invalid job id"))
        {
            return
        }
    }

    // MARK: Transport

    private func call<Reply: Decodable>(
        _ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<EmptyReply>.none, as: Reply.Type,
        tolerating tolerated: Set<Int> = []
    ) async throws -> Reply {
        let uri = "/slurm/\(Self.apiVersion)/\(path)"
        var request: HTTPClientRequest
        switch endpoint.transport {
        case .unixSocket(let socket):
            guard let url = URL(httpURLWithSocketPath: socket, uri: uri) else {
                throw CaduceusError(code: "config.slurm", message: "cannot address the socket \(socket)")
            }
            request = HTTPClientRequest(url: url.absoluteString)
        case .http(let base):
            request = HTTPClientRequest(url: base + uri)
            let token = try Self.token(from: endpoint.tokenFile)
            request.headers.add(name: "X-SLURM-USER-NAME", value: endpoint.userName ?? "")
            request.headers.add(name: "X-SLURM-USER-TOKEN", value: token)
        }
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(body)))
        }
        let data: Data
        let status: HTTPResponseStatus
        do {
            let response = try await http.execute(request, timeout: .seconds(Int64(endpoint.timeoutSeconds)))
            status = response.status
            data = Data(buffer: try await response.body.collect(upTo: 64 << 20))
        } catch {
            throw CaduceusError(
                code: "slurm.unavailable", message: "slurmrestd at \(endpoint) cannot be reached: \(error)")
        }
        let errors = ((try? JSONDecoder().decode(ErrorsReply.self, from: data))?.errors ?? []).filter {
            !tolerated.contains($0.error_code ?? -1)
        }
        let words = errors.compactMap { $0.error ?? $0.description }.filter { !$0.isEmpty }
        if !words.isEmpty || status.code >= 400 {
            let text = words.isEmpty ? "HTTP \(status.code)" : words.joined(separator: "; ")
            if status == .unauthorized || status == .forbidden {
                throw CaduceusError(
                    code: "slurm.unavailable", message: "slurmrestd refused Caduceus's credentials: \(text)")
            }
            throw CaduceusError(code: "slurm.error", message: "Slurm: \(text)")
        }
        do {
            return try JSONDecoder().decode(Reply.self, from: data)
        } catch {
            throw CaduceusError(
                code: "slurm.error", message: "slurmrestd's answer to \(path) is not what \(Self.apiVersion) promises",
                underlying: error)
        }
    }

    private static func token(from file: String?) throws -> String {
        guard let file, let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw CaduceusError(code: "config.slurm", message: "cannot read the Slurm token file \(file ?? "(none)")")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

// MARK: What slurmrestd sends and takes

/// A node as Slurm sees it.
public struct SlurmNode: Decodable, Sendable, Equatable {
    public var name: String
    public var state: String?
    public var partitions: [String]?
    public var gres: String?
}

/// A partition and the nodes it holds.
public struct SlurmPartition: Sendable, Equatable {
    public var name: String
    public var nodes: [String]
}

/// A job as slurmrestd reports it.
public struct SlurmJob: Decodable, Sendable, Equatable {
    public var job_id: Int
    public var name: String?
    public var job_state: String?
    public var state_reason: String?
    public var state_description: String?
    public var nodes: String?
    public var partition: String?
    public var exit_code: Int?
    public var restart_cnt: Int?
    public var tres_per_node: String?
    public var standard_output: String?

    /// Pending because it is held (priority 0): a job Caduceus handed to Slurm while it waits for GPUs.
    public var isHeld: Bool { job_state == "PENDING" && (state_reason ?? "").hasPrefix("JobHeld") }
}

/// A batch job to submit: the script, and the job's properties.
public struct SlurmSubmission: Encodable, Sendable {
    public struct Properties: Encodable, Sendable {
        public var name: String
        public var partition: String
        /// The node Caduceus chose (slurmrestd 22.05 takes `nodelist` as sbatch's `--nodelist`); none while
        /// the job is held in Slurm waiting for Caduceus to place it.
        public var nodelist: String?
        /// `gpu:<model>:N`, as sbatch's `--gres`.
        public var gres: String?
        /// Submitted held (priority 0): Slurm keeps it pending until it is released.
        public var hold: Bool?
        /// What `squeue` and `sacct` show beside the job.
        public var comment: String?
        public var environment: [String: String]
        public var current_working_directory: String
        public var standard_output: String
        public var standard_error: String
        public var open_mode: String = "append"
        public var time_limit: Int?
        public var requeue: Bool
        public var nodes: [Int] = [1, 1]
        public var tasks: Int = 1
    }

    public var script: String
    public var job: Properties
}

private struct PingReply: Decodable {
    struct Ping: Decodable { var ping: String? }
    struct Meta: Decodable {
        struct Slurm: Decodable { var release: String? }
        var Slurm: Slurm?
    }
    var pings: [Ping]?
    var meta: Meta?
}

private struct NodesReply: Decodable { var nodes: [SlurmNode]? }

private struct PartitionsReply: Decodable {
    struct Partition: Decodable {
        var name: String
        var nodes: String?
    }
    var partitions: [Partition]?
}

private struct JobsReply: Decodable { var jobs: [SlurmJob]? }

private struct SubmitReply: Decodable { var job_id: Int? }

/// What `release` changes of a held job.
private struct SlurmJobUpdate: Encodable {
    var nodelist: String
    var gres: String?
    var hold: Bool
}

private struct EmptyReply: Codable {}

private struct ErrorsReply: Decodable {
    struct Entry: Decodable {
        var error_code: Int?
        var error: String?
        var description: String?
    }
    var errors: [Entry]?
}

/// Slurm's host lists: `gpu[01-03,07],login1` → gpu01, gpu02, gpu03, gpu07, login1.
public enum Hostlist {
    public static func expand(_ text: String) -> [String] {
        var names: [String] = []
        var depth = 0
        var item = ""
        for character in text {
            if character == "[" { depth += 1 }
            if character == "]" { depth -= 1 }
            if character == "," && depth == 0 {
                names += expandOne(item)
                item = ""
            } else {
                item.append(character)
            }
        }
        names += expandOne(item)
        return names
    }

    private static func expandOne(_ item: String) -> [String] {
        let item = item.trimmingCharacters(in: .whitespaces)
        guard !item.isEmpty else { return [] }
        guard let open = item.firstIndex(of: "["), let close = item[open...].firstIndex(of: "]") else {
            return [item]
        }
        let prefix = String(item[..<open])
        let suffix = String(item[item.index(after: close)...])
        var names: [String] = []
        for range in item[item.index(after: open)..<close].split(separator: ",") {
            let bounds = range.split(separator: "-", maxSplits: 1).map(String.init)
            guard let low = Int(bounds[0]) else { continue }
            let high = bounds.count == 2 ? Int(bounds[1]) ?? low : low
            guard low <= high, high - low < 100_000 else { continue }
            let width = bounds[0].count
            for number in low...high {
                let digits = String(number)
                let padded = String(repeating: "0", count: max(0, width - digits.count)) + digits
                names += expandOne(prefix + padded + suffix)
            }
        }
        return names
    }
}
