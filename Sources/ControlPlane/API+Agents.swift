import CaduceusCore
import Scheduling

// What remote node agents and the control plane say to each other. Enrolment goes over the API port with
// a join token; everything after it over the agent port, with mutual TLS.

public struct CreateJoinTokenRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["expiresInMinutes": .optionalInteger]
    /// Minutes the token stays usable (1 to 10080; default 60).
    public var expiresInMinutes: Int?

    public init(expiresInMinutes: Int? = nil) { self.expiresInMinutes = expiresInMinutes }
}

/// A join token, shown once: `caduceus agent --server URL --join-token TOKEN` on the node enrols it.
public struct JoinTokenView: Codable, Sendable, Equatable {
    public var node: NodeID
    /// The secret, then a dot, then the SHA-256 of the internal CA's certificate (hex): the agent trusts the
    /// server only if it presents that CA.
    public var joinToken: String
    public var expiresAt: Timestamp
}

public struct EnrollAgentRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = [
        "joinToken": .string, "certificateSigningRequest": .string, "hostName": .string, "gpus": .objects,
        "fake": .optionalBoolean,
    ]
    public var joinToken: String
    /// A PKCS #10 request (PEM) for the agent's own P-256 key; the private key never leaves the node.
    public var certificateSigningRequest: String
    public var hostName: String
    /// The GPUs the agent discovered and may offer to work.
    public var gpus: [GPUDevice]
    /// Whether they are host-memory stand-ins (`--fake-gpus`).
    public var fake: Bool?

    public init(joinToken: String, certificateSigningRequest: String, hostName: String, gpus: [GPUDevice], fake: Bool) {
        self.joinToken = joinToken
        self.certificateSigningRequest = certificateSigningRequest
        self.hostName = hostName
        self.gpus = gpus
        self.fake = fake
    }
}

/// What an enrolled agent gets: its certificate and where to talk to the control plane from now on.
public struct EnrollAgentResponse: Codable, Sendable, Equatable {
    public var node: NodeID
    /// The agent's certificate, then the CA's (PEM).
    public var certificateChain: String
    public var caCertificate: String
    public var certificateExpiresAt: Timestamp
    /// The port of the agent listener (mutual TLS), on the host the agent enrolled through.
    public var agentPort: Int
    /// Seconds of silence after which the node is taken for unreachable.
    public var heartbeatTimeoutSeconds: Int
}

public struct RenewAgentCertificateRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["certificateSigningRequest": .string]
    public var certificateSigningRequest: String

    public init(certificateSigningRequest: String) { self.certificateSigningRequest = certificateSigningRequest }
}

public struct AgentCertificateView: Codable, Sendable, Equatable {
    public var certificateChain: String
    public var certificateExpiresAt: Timestamp
}

/// An agent's heartbeat: what it runs, what it has reclaimed, and the last generation of orders it applied.
public struct AgentSyncRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = [
        "seen": .integer, "active": .objects, "reclaimed": .optionalStrings,
    ]
    /// The generation of the last orders applied (0 at start): the server answers at once when it has
    /// newer ones, or waits a while for some.
    public var seen: Int
    public var active: [LaunchKey]
    public var reclaimed: [JobID]?

    public init(seen: Int, active: [LaunchKey], reclaimed: [JobID]) {
        self.seen = seen
        self.active = active
        self.reclaimed = reclaimed
    }
}

/// What the node should be doing: the whole picture each time, so a lost answer loses nothing.
public struct AgentOrders: Codable, Sendable, Equatable {
    public var generation: Int
    /// Runs to start (a run already started or finished is not started again).
    public var launches: [JobLaunch]
    public var stops: [AgentStop]
    /// Jobs whose leftovers to kill and whose scratch to erase.
    public var reclaim: [JobID]
    /// Whether to sanitise the node (scrub every GPU, erase all scratch) and report the result.
    public var sanitize: Bool
}

public struct AgentStop: Codable, Sendable, Equatable {
    public var key: LaunchKey
    public var reason: JobStopReason
}

public struct AgentStartingRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["key": FieldSpec(type: "object", required: true)]
    public var key: LaunchKey

    public init(key: LaunchKey) { self.key = key }
}

public struct AgentStartingResponse: Codable, Sendable, Equatable {
    /// Whether the job may start (it is recorded as running first).
    public var start: Bool

    public init(start: Bool) { self.start = start }
}

public struct AgentEndedRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = [
        "key": FieldSpec(type: "object", required: true), "outcome": FieldSpec(type: "object", required: true),
    ]
    public var key: LaunchKey
    public var outcome: JobOutcome

    public init(key: LaunchKey, outcome: JobOutcome) {
        self.key = key
        self.outcome = outcome
    }
}

public struct AgentScrubRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["report": FieldSpec(type: "object", required: true)]
    public var report: GPUScrubReport

    public init(report: GPUScrubReport) { self.report = report }
}

public struct AgentSanitizationRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["result": FieldSpec(type: "object", required: true)]
    public var result: NodeSanitization

    public init(result: NodeSanitization) { self.result = result }
}

/// How much of a job's log the control plane holds.
public struct AgentLogView: Codable, Sendable, Equatable {
    public var size: Int
}
