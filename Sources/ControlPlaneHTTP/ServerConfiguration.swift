import AuditLog
import CaduceusCore
import Foundation
import HTTPTypes
import NIOCore
import Persistence

/// The server's effective configuration: defaults, then a JSON config file, then environment variables,
/// then command-line flags, each overriding the one before.
public struct ServerConfiguration: Codable, Sendable, Equatable {
    /// Where everything is kept (default `$HOME/.caduceus`, or `/var/lib/caduceus` for root without HOME).
    public var dataDirectory: String
    /// Host and port of the HTTPS listener.
    public var listen: String
    /// Minutes of inactivity that end a session (1–60).
    public var idleTimeoutMinutes: Int
    /// Hours after which a session ends regardless (1–24).
    public var sessionLifetimeHours: Int
    /// Extra host names for the server certificate (localhost, 127.0.0.1 and this host's name are always in).
    public var hostNames: [String]
    /// The audit log's origin line.
    public var auditOrigin: String
    /// A PostgreSQL URL for distributed mode (credentials are never shown); nil for embedded SQLite.
    public var databaseURL: String?
    /// Host-memory stand-ins for GPUs on the local node, for demonstrations and tests (0: real GPUs only).
    public var fakeGPUs: Int = 0
    /// The residency of the `local` region this machine registers its node in (embedded mode).
    public var localResidency: String = "US"
    /// Seconds a stopped job gets between SIGTERM and SIGKILL.
    public var stopGraceSeconds: Int = 10
    /// Host and port of the agent listener (mutual TLS, node certificates only), or `off`.
    public var agentListen: String = "127.0.0.1:8444"
    /// Seconds of silence after which a remote node is unreachable and its jobs requeued or failed (3–3600).
    public var agentTimeoutSeconds: Int = 30
    /// Days a node agent's certificate is valid (1–365); agents renew theirs when a third is left.
    public var agentCertificateDays: Int = 30
    /// Directories of the storage tiers, `tier=path` by commas (e.g. `hot=/nvme/caduceus,cold=/capacity/caduceus`);
    /// a tier not named lives in `<data>/objects/<tier>`.
    public var objectTiers: String = ""
    /// Minutes between runs of the tiering service (0: only on request).
    public var lifecycleIntervalMinutes: Int = 60
    /// slurmrestd's address: `unix:/path/to/socket` (local auth) or `https://host:port` (JWT); empty: no Slurm.
    public var slurmURL: String = ""
    /// The Slurm user of the JWT (`https://` only).
    public var slurmUser: String = ""
    /// The file holding the JWT (`https://` only); read at each request.
    public var slurmTokenFile: String = ""
    /// The CA certificate (PEM) of slurmrestd's TLS certificate, when not a system root.
    public var slurmCACertificate: String = ""
    /// Partitions by tenant name, `tenant=partition` by commas; a tenant not named uses its own name.
    public var slurmPartitions: String = ""
    /// The directory the control plane and every Slurm node share for job logs, scratch and scrub records
    /// (default `<data>/slurm`).
    public var slurmSpool: String = ""
    /// The `https://host:port` other replicas reach this one at (forwarding to the leader); empty: the
    /// listening port on this host's name (or on the listening address, when it is not a wildcard).
    public var advertiseURL: String = ""
    /// The caduceus-gpu program on the Slurm nodes.
    public var slurmGPUProgram: String = "caduceus-gpu"
    /// More options for its scrub on the nodes (`--fake-gpus 8` on a cluster of stand-ins).
    public var slurmGPUOptions: String = ""
    /// How many jobs waiting in Caduceus's queue are handed to Slurm ahead of placement, held until the
    /// scheduler places them (0: a job reaches Slurm only once placed).
    public var slurmQueueAhead: Int = 1000
    /// Threads that read, decrypt and write the API's connections (0: half this machine's cores, at least one).
    /// The requests themselves run on the concurrency pool (one thread per core) and the audit log's committer:
    /// more I/O threads than that leaves threads waiting for a core, and a request waiting with them.
    public var ioThreads: Int = 0
    /// The nice value the audit log's committer thread asks for, -20 to 0. Every audited request waits on it, so
    /// it should not wait for a core behind the requests themselves. Granted within the process's
    /// `RLIMIT_NICE` (systemd: `LimitNICE=-10`) or with `CAP_SYS_NICE`; otherwise it runs as the process does,
    /// and start-up says so.
    public var auditCommitterNice: Int = -10

    enum CodingKeys: String, CodingKey, CaseIterable {
        case dataDirectory, listen, idleTimeoutMinutes, sessionLifetimeHours, hostNames, auditOrigin, databaseURL
        case fakeGPUs, localResidency, stopGraceSeconds, agentListen, agentTimeoutSeconds, agentCertificateDays
        case objectTiers, lifecycleIntervalMinutes
        case slurmURL, slurmUser, slurmTokenFile, slurmCACertificate, slurmPartitions, slurmSpool, slurmGPUProgram
        case slurmGPUOptions, advertiseURL, slurmQueueAhead, ioThreads, auditCommitterNice
    }

    /// The defaults.
    public static func defaults(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> ServerConfiguration {
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
        return ServerConfiguration(
            dataDirectory: home.map { $0 + "/.caduceus" } ?? "/var/lib/caduceus", listen: "127.0.0.1:8443",
            idleTimeoutMinutes: 15, sessionLifetimeHours: 12, hostNames: [],
            auditOrigin: "caduceus/\(ProcessInfo.processInfo.hostName)/audit", databaseURL: nil)
    }

    /// The environment variables read, and what they set.
    public static let environmentVariables: [(name: String, key: String)] = [
        ("CADUCEUS_DATA_DIR", "dataDirectory"), ("CADUCEUS_LISTEN", "listen"),
        ("CADUCEUS_IDLE_TIMEOUT_MINUTES", "idleTimeoutMinutes"),
        ("CADUCEUS_SESSION_LIFETIME_HOURS", "sessionLifetimeHours"), ("CADUCEUS_HOST_NAMES", "hostNames"),
        ("CADUCEUS_AUDIT_ORIGIN", "auditOrigin"), ("CADUCEUS_DATABASE_URL", "databaseURL"),
        ("CADUCEUS_DATABASE", "databaseURL"),
        ("CADUCEUS_FAKE_GPUS", "fakeGPUs"), ("CADUCEUS_LOCAL_RESIDENCY", "localResidency"),
        ("CADUCEUS_STOP_GRACE_SECONDS", "stopGraceSeconds"), ("CADUCEUS_AGENT_LISTEN", "agentListen"),
        ("CADUCEUS_AGENT_TIMEOUT_SECONDS", "agentTimeoutSeconds"),
        ("CADUCEUS_AGENT_CERTIFICATE_DAYS", "agentCertificateDays"), ("CADUCEUS_OBJECT_TIERS", "objectTiers"),
        ("CADUCEUS_LIFECYCLE_INTERVAL_MINUTES", "lifecycleIntervalMinutes"), ("CADUCEUS_SLURM_URL", "slurmURL"),
        ("CADUCEUS_SLURM_USER", "slurmUser"), ("CADUCEUS_SLURM_TOKEN_FILE", "slurmTokenFile"),
        ("CADUCEUS_SLURM_CA_CERTIFICATE", "slurmCACertificate"), ("CADUCEUS_SLURM_PARTITIONS", "slurmPartitions"),
        ("CADUCEUS_SLURM_SPOOL", "slurmSpool"), ("CADUCEUS_SLURM_GPU_PROGRAM", "slurmGPUProgram"),
        ("CADUCEUS_SLURM_GPU_OPTIONS", "slurmGPUOptions"), ("CADUCEUS_ADVERTISE_URL", "advertiseURL"),
        ("CADUCEUS_SLURM_QUEUE_AHEAD", "slurmQueueAhead"), ("CADUCEUS_IO_THREADS", "ioThreads"),
        ("CADUCEUS_AUDIT_COMMITTER_NICE", "auditCommitterNice"),
    ]

    /// Resolves the configuration from a file (if given), the environment and flag overrides.
    public static func resolve(
        file: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
        overrides: [String: String] = [:]
    ) throws -> ServerConfiguration {
        var configuration = defaults(environment: environment)
        if let file {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: file))
            } catch {
                throw CaduceusError(code: "config.file", message: "cannot read the config file \(file)")
            }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw CaduceusError(code: "config.file", message: "\(file) is not a JSON object")
            }
            for (name, value) in object {
                // `database` is the same setting as `databaseURL`, named as `serve --database` names it.
                let key = name == "database" ? "databaseURL" : name
                guard CodingKeys(rawValue: key) != nil else {
                    throw CaduceusError(code: "config.file", message: "\(file): unknown setting '\(key)'")
                }
                let text = (value as? [Any]).map { $0.map { "\($0)" }.joined(separator: ",") } ?? "\(value)"
                try configuration.set(key, text)
            }
        }
        for (name, key) in environmentVariables {
            if let value = environment[name], !value.isEmpty { try configuration.set(key, value) }
        }
        for (key, value) in overrides { try configuration.set(key, value) }
        try configuration.validate()
        return configuration
    }

    mutating func set(_ key: String, _ value: String) throws {
        func int(_ text: String) throws -> Int {
            guard let number = Int(text) else {
                throw CaduceusError(
                    code: "config.value", message: "setting '\(key)' must be a whole number, not '\(text)'")
            }
            return number
        }
        switch key {
        case "dataDirectory": dataDirectory = value
        case "listen": listen = value
        case "idleTimeoutMinutes": idleTimeoutMinutes = try int(value)
        case "sessionLifetimeHours": sessionLifetimeHours = try int(value)
        case "hostNames":
            hostNames = value.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        case "auditOrigin": auditOrigin = value
        case "databaseURL": databaseURL = value
        case "fakeGPUs": fakeGPUs = try int(value)
        case "localResidency": localResidency = value
        case "stopGraceSeconds": stopGraceSeconds = try int(value)
        case "agentListen": agentListen = value
        case "agentTimeoutSeconds": agentTimeoutSeconds = try int(value)
        case "agentCertificateDays": agentCertificateDays = try int(value)
        case "objectTiers": objectTiers = value
        case "lifecycleIntervalMinutes": lifecycleIntervalMinutes = try int(value)
        case "slurmURL": slurmURL = value
        case "slurmUser": slurmUser = value
        case "slurmTokenFile": slurmTokenFile = value
        case "slurmCACertificate": slurmCACertificate = value
        case "slurmPartitions": slurmPartitions = value
        case "slurmSpool": slurmSpool = value
        case "slurmGPUProgram": slurmGPUProgram = value
        case "slurmGPUOptions": slurmGPUOptions = value
        case "slurmQueueAhead": slurmQueueAhead = try int(value)
        case "ioThreads": ioThreads = try int(value)
        case "auditCommitterNice": auditCommitterNice = try int(value)
        case "advertiseURL": advertiseURL = value
        default: throw CaduceusError(code: "config.value", message: "unknown setting '\(key)'")
        }
    }

    /// Checks every value; throws naming the first bad one.
    public func validate() throws {
        guard (1...60).contains(idleTimeoutMinutes) else {
            throw CaduceusError(code: "config.value", message: "idleTimeoutMinutes must be 1 to 60")
        }
        guard (1...24).contains(sessionLifetimeHours) else {
            throw CaduceusError(code: "config.value", message: "sessionLifetimeHours must be 1 to 24")
        }
        guard (0...64).contains(fakeGPUs) else {
            throw CaduceusError(code: "config.value", message: "fakeGPUs must be 0 to 64")
        }
        guard Residency(rawValue: localResidency) != nil else {
            throw CaduceusError(
                code: "config.value", message: "localResidency must be 2–16 upper-case letters, digits or dashes")
        }
        guard (0...600).contains(stopGraceSeconds) else {
            throw CaduceusError(code: "config.value", message: "stopGraceSeconds must be 0 to 600")
        }
        guard (3...3600).contains(agentTimeoutSeconds) else {
            throw CaduceusError(code: "config.value", message: "agentTimeoutSeconds must be 3 to 3600")
        }
        guard (1...365).contains(agentCertificateDays) else {
            throw CaduceusError(code: "config.value", message: "agentCertificateDays must be 1 to 365")
        }
        guard (0...100_000).contains(slurmQueueAhead) else {
            throw CaduceusError(code: "config.value", message: "slurmQueueAhead must be 0 to 100000")
        }
        guard (0...256).contains(ioThreads) else {
            throw CaduceusError(code: "config.value", message: "ioThreads must be 0 (automatic) to 256")
        }
        guard (-20...0).contains(auditCommitterNice) else {
            throw CaduceusError(code: "config.value", message: "auditCommitterNice must be -20 to 0")
        }
        guard (0...10_080).contains(lifecycleIntervalMinutes) else {
            throw CaduceusError(code: "config.value", message: "lifecycleIntervalMinutes must be 0 to 10080")
        }
        _ = try tierDirectories()
        _ = try bindAddress()
        _ = try agentBindAddress()
        if let databaseURL { _ = try DatabaseURL(databaseURL) }
        guard advertiseURL.isEmpty || (advertiseURL.hasPrefix("https://") && URL(string: advertiseURL)?.host != nil)
        else {
            throw CaduceusError(code: "config.value", message: "advertiseURL must be https://HOST[:PORT]")
        }
        _ = try slurmPartitionMap()
        guard !dataDirectory.isEmpty else {
            throw CaduceusError(code: "config.value", message: "dataDirectory is empty")
        }
    }

    /// Host and port of `listen`.
    public func bindAddress() throws -> (host: String, port: Int) {
        try Self.hostAndPort(listen, "listen")
    }

    /// The directories `objectTiers` names, by tier.
    public func tierDirectories() throws -> [String: String] {
        var tiers: [String: String] = [:]
        for item in objectTiers.split(separator: ",") where !item.trimmingCharacters(in: .whitespaces).isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, ["hot", "warm", "cold", "archive"].contains(parts[0]), parts[1].hasPrefix("/")
            else {
                throw CaduceusError(
                    code: "config.value",
                    message: "objectTiers takes tier=/absolute/path by commas (hot, warm, cold, archive)")
            }
            tiers[parts[0]] = parts[1]
        }
        return tiers
    }

    /// `slurmPartitions` as a map from tenant name to partition.
    public func slurmPartitionMap() throws -> [String: String] {
        var map: [String: String] = [:]
        for item in slurmPartitions.split(separator: ",") where !item.trimmingCharacters(in: .whitespaces).isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw CaduceusError(code: "config.value", message: "slurmPartitions takes tenant=partition by commas")
            }
            map[parts[0]] = parts[1]
        }
        return map
    }

    /// The Slurm spool directory: `slurmSpool`, or `<data>/slurm`.
    public var slurmSpoolDirectory: String { slurmSpool.isEmpty ? dataDirectory + "/slurm" : slurmSpool }

    /// Host and port of `agentListen`; nil when it is `off`.
    public func agentBindAddress() throws -> (host: String, port: Int)? {
        agentListen == "off" ? nil : try Self.hostAndPort(agentListen, "agentListen")
    }

    static func hostAndPort(_ text: String, _ key: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw CaduceusError(code: "config.value", message: "\(key) must be HOST:PORT, not '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    /// How many I/O threads the API listens with.
    public var ioThreadCount: Int { ioThreads > 0 ? ioThreads : max(1, System.coreCount / 2) }

    /// The effective values as `key = value` lines, with secrets masked.
    public func describe() -> [(String, String)] {
        [
            ("dataDirectory", dataDirectory), ("listen", listen), ("idleTimeoutMinutes", String(idleTimeoutMinutes)),
            ("sessionLifetimeHours", String(sessionLifetimeHours)), ("hostNames", hostNames.joined(separator: ",")),
            ("auditOrigin", auditOrigin), ("databaseURL", databaseURL.map(Self.mask) ?? "(embedded SQLite)"),
            ("fakeGPUs", String(fakeGPUs)), ("localResidency", localResidency),
            ("stopGraceSeconds", String(stopGraceSeconds)), ("agentListen", agentListen),
            ("agentTimeoutSeconds", String(agentTimeoutSeconds)),
            ("agentCertificateDays", String(agentCertificateDays)), ("objectTiers", objectTiers),
            ("lifecycleIntervalMinutes", String(lifecycleIntervalMinutes)),
            ("slurmURL", slurmURL.isEmpty ? "(no Slurm)" : slurmURL), ("slurmUser", slurmUser),
            ("slurmTokenFile", slurmTokenFile), ("slurmCACertificate", slurmCACertificate),
            ("slurmPartitions", slurmPartitions), ("slurmSpool", slurmSpoolDirectory),
            ("slurmGPUProgram", slurmGPUProgram), ("slurmGPUOptions", slurmGPUOptions),
            ("slurmQueueAhead", String(slurmQueueAhead)),
            ("advertiseURL", advertiseURL),
            ("ioThreads", ioThreads == 0 ? "\(ioThreadCount) (automatic)" : "\(ioThreads)"),
            ("auditCommitterNice", String(auditCommitterNice)),
        ]
    }

    /// A URL with its password (and user) replaced by `***`.
    static func mask(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url.range(of: "@", range: scheme.upperBound..<url.endIndex)
        else { return url }
        return String(url[..<scheme.upperBound]) + "***" + String(url[at.lowerBound...])
    }
}
