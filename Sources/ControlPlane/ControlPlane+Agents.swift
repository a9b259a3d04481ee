import AuditLog
import CaduceusCore
import Identity
import Logging
import Scheduling
import Sealing
import Synchronization

/// Signs node certificates: the internal CA in `ControlPlaneHTTP`.
public protocol NodeCertificateIssuer: Sendable {
    /// The CA certificate, PEM.
    var caCertificatePEM: String { get }
    /// SHA-256 of the CA certificate's DER, lower-case hex.
    var caDigestHex: String { get }
    /// Checks a PKCS #10 request (PEM, self-signed by a P-256 key) and issues a client certificate for `node`
    /// valid for `days`; throws `input.invalid` for a bad request.
    func issueNodeCertificate(csrPEM: String, node: NodeID, days: Int, now: Timestamp) throws -> IssuedCertificate
}

/// A certificate the CA issued.
public struct IssuedCertificate: Sendable, Equatable {
    /// The certificate, then the CA's (PEM).
    public var chainPEM: String
    /// Its serial number, lower-case hex.
    public var serial: String
    public var expiresAt: Timestamp

    public init(chainPEM: String, serial: String, expiresAt: Timestamp) {
        self.chainPEM = chainPEM
        self.serial = serial
        self.expiresAt = expiresAt
    }
}

/// Remote node agents: join tokens, enrolment, and what enrolled agents report over mutual TLS.
///
/// An agent proves who it is only with its client certificate; every call names the node it acts for, and
/// the control plane checks that the node is the one the certificate was issued to and that the job the
/// call is about was given to that node. Refusals are audited with the caller's address.
extension ControlPlane {
    /// The actor of audit events about nodes that stop or start answering.
    static let agentMonitor = (id: "agent-monitor", type: "system")

    /// Starts serving remote agents: node certificates come from `issuer`.
    public func enableRemoteAgents(
        issuer: any NodeCertificateIssuer, settings: RemoteAgents.Settings
    ) async throws -> RemoteAgents {
        let events = RemoteAgents.Events(
            connected: { [weak self] node in await self?.agentConnected(node) },
            silent: { [weak self] node, seconds in await self?.nodeFellSilent(node, seconds: seconds) })
        let agents = RemoteAgents(
            settings: settings, enrolled: try await fleet.enrolledAgents(), events: events, logger: logger)
        remote.withLock { $0 = (agents, issuer) }
        return agents
    }

    private func remoteAgents() throws -> (agents: RemoteAgents, issuer: any NodeCertificateIssuer) {
        guard let remote = remote.withLock({ $0 }) else {
            throw Failure.conflict("this control plane serves no remote node agents (its agent listener is off)")
        }
        return remote
    }

    // MARK: Join tokens and enrolment

    /// Creates a one-time join token for a registered node (a new one replaces an unused one). Shown once.
    public func createJoinToken(
        _ request: RequestInfo, _ id: NodeID, _ input: CreateJoinTokenRequest
    ) async throws -> JoinTokenView {
        let subject = AuditRecorder.Subject(action: "node.join-token", resourceType: "node", resourceID: id.rawValue)
        let decision = try await authorize(request, .fleetManage, in: .platform, subject)
        let minutes = input.expiresInMinutes ?? 60
        let (_, issuer) = try remoteAgents()
        let secret = OpaqueToken.generate(.join)
        let expiresAt = now.adding(milliseconds: Int64(minutes) * 60_000)
        return try await fleetChange(request, subject, decision: decision) { _, tx in
            guard (1...10_080).contains(minutes) else {
                throw Failure.invalid("expiresInMinutes: 1 to 10080 (a week)")
            }
            guard let node = try await tx.node(id: id) else { throw Failure.notFound("node \(id)") }
            guard node.lifecycle.state != .retired else { throw Failure.conflict("node \(id) is retired") }
            var agent = try await tx.agent(node: id) ?? AgentRecord(node: id)
            agent.joinTokenHash = secret.digest
            agent.joinTokenExpiresAt = expiresAt
            try await tx.saveAgent(agent)
            return JoinTokenView(node: id, joinToken: secret.text + "." + issuer.caDigestHex, expiresAt: expiresAt)
        }
    }

    /// Enrols a node's agent with a join token: checks the GPUs it found against the node's record, signs
    /// its certificate request, and from then on accepts only that certificate for the node.
    public func enrollAgent(_ request: RequestInfo, _ input: EnrollAgentRequest) async throws -> EnrollAgentResponse {
        let (agents, issuer) = try remoteAgents()
        let secret = OpaqueToken(text: String(input.joinToken.prefix { $0 != "." }))
        let now = self.now
        var found: AgentRecord?
        if let secret, secret.kind == .join { found = try await fleet.agent(joinTokenHash: secret.digest) }
        guard let found, let expiry = found.joinTokenExpiresAt, expiry > now else {
            try await audit.record(
                request,
                .init(action: "node.enroll", resourceType: "node", resourceID: found?.node.rawValue ?? "unknown"),
                outcome: .denied)
            throw Failure.unauthenticated("the join token is not valid or has expired")
        }
        let id = found.node
        let subject = AuditRecorder.Subject(action: "node.enroll", resourceType: "node", resourceID: id.rawValue)
        let issued = try await fleetChange(
            request, subject, decision: .init(allowed: true, breakGlass: nil)
        ) { [settings = agents.settings] scheduler, tx in
            // The token is used up in the same transaction: two agents racing with one token cannot both enrol.
            guard var agent = try await tx.agent(node: id), agent.joinTokenHash == found.joinTokenHash,
                var node = try await tx.node(id: id)
            else { throw Failure.unauthenticated("the join token is not valid or has expired") }
            try Names.check(input.hostName, "hostName: a host name")
            try Self.checkGPUs(input.gpus)
            node.gpus = try Self.enrolledGPUs(input.gpus, for: node)
            let issued = try issuer.issueNodeCertificate(
                csrPEM: input.certificateSigningRequest, node: id, days: settings.certificateDays, now: now)
            agent.joinTokenHash = nil
            agent.joinTokenExpiresAt = nil
            agent.certificateSerial = issued.serial
            agent.certificateExpiresAt = issued.expiresAt
            agent.enrolledAt = now
            agent.hostName = input.hostName
            try await tx.saveAgent(agent)
            try await tx.updateNode(node)
            try await SchedulingService.sync(node, in: tx, into: &scheduler)
            return issued
        }
        agents.enrolled(id, serial: issued.serial)
        logger.notice("node agent enrolled", metadata: ["node": "\(id)", "host": "\(input.hostName)"])
        return EnrollAgentResponse(
            node: id, certificateChain: issued.chainPEM, caCertificate: issuer.caCertificatePEM,
            certificateExpiresAt: issued.expiresAt, agentPort: agents.agentPort,
            heartbeatTimeoutSeconds: agents.settings.heartbeatTimeoutSeconds)
    }

    /// The GPUs a node keeps after enrolment: what its agent found, which must be of the model and number
    /// registered; once the node has served, the very same GPUs (by UUID).
    static func enrolledGPUs(_ found: [GPUDevice], for node: NodeRecord) throws -> [GPUDevice] {
        let sorted = found.sorted { $0.index < $1.index }
        guard sorted.count == node.gpus.count, sorted.first?.model == node.gpuModel else {
            throw Failure.conflict(
                "this machine has \(sorted.count) \(sorted.first?.model ?? "") GPUs; node \(node.id) is registered "
                    + "with \(node.gpus.count) \(node.gpuModel)")
        }
        if node.lifecycle.state != .registered && Set(sorted.map(\.uuid)) != Set(node.gpus.map(\.uuid)) {
            throw Failure.conflict(
                "this machine's GPUs are not the ones node \(node.id) was registered with; only a registered node "
                    + "takes new GPUs")
        }
        return sorted
    }

    /// Issues a fresh certificate to an enrolled agent (before its current one expires); the old one is
    /// refused from then on.
    public func renewAgentCertificate(
        _ request: RequestInfo, node id: NodeID, _ input: RenewAgentCertificateRequest
    ) async throws -> AgentCertificateView {
        let (agents, issuer) = try remoteAgents()
        let subject = AuditRecorder.Subject(action: "node.certificate", resourceType: "node", resourceID: id.rawValue)
        let now = self.now
        let issued = try await fleetChange(
            request, subject, decision: .init(allowed: true, breakGlass: nil)
        ) { [settings = agents.settings] _, tx in
            guard var agent = try await tx.agent(node: id) else { throw Failure.notFound("node agent \(id)") }
            let issued = try issuer.issueNodeCertificate(
                csrPEM: input.certificateSigningRequest, node: id, days: settings.certificateDays, now: now)
            agent.certificateSerial = issued.serial
            agent.certificateExpiresAt = issued.expiresAt
            try await tx.saveAgent(agent)
            return issued
        }
        agents.enrolled(id, serial: issued.serial)
        return AgentCertificateView(certificateChain: issued.chainPEM, certificateExpiresAt: issued.expiresAt)
    }

    /// Audits a refused agent call or connection (no certificate, a certificate not ours or no longer
    /// valid, a call for another node or another node's job).
    public func refuseAgent(_ request: RequestInfo, node: String, reason: String) async throws {
        // The node named may be anything a caller sent: the event names a node only if it is a node ID.
        let named = NodeID(rawValue: node)?.rawValue ?? "unknown"
        try await audit.record(
            request, .init(action: "agent.refuse", resourceType: "node", resourceID: named),
            outcome: .denied, actorOverride: ("unverified", "node"),
            details: .object(["reason": .string(reason), "claimed": .string(String(node.prefix(128)))]))
    }

    // MARK: What enrolled agents report

    /// A heartbeat: records what the node runs and answers with its orders (see `RemoteAgents.sync`).
    public func agentSync(_ node: NodeID, _ input: AgentSyncRequest) async throws -> AgentOrders {
        await (try remoteAgents()).agents.sync(node, input, at: now)
    }

    /// Asked by the agent right before it starts a run; true when the run was recorded as running.
    public func agentStarting(_ request: RequestInfo, _ node: NodeID, _ key: LaunchKey) async throws -> Bool {
        let agents = try remoteAgents().agents
        guard let launch = agents.launch(key, on: node) else {
            try await refuseForeignJob(request, node, key.job)
            return false
        }
        return await agents.starting(launch)
    }

    /// A run on the node ended.
    public func agentEnded(
        _ request: RequestInfo, _ node: NodeID, _ key: LaunchKey, _ outcome: JobOutcome
    ) async throws {
        let agents = try remoteAgents().agents
        if let launch = agents.launch(key, on: node) {
            return await agents.ended(launch, outcome)
        }
        // A run given before this control plane restarted: the job's record says where it runs.
        guard let job = try await fleet.job(id: key.job), job.assignments.contains(where: { $0.node == node }) else {
            return try await refuseForeignJob(request, node, key.job)
        }
        await agents.ended(
            JobLaunch(
                key: key, tenant: job.spec.tenant, project: job.spec.project, command: job.spec.command,
                arguments: job.spec.arguments, environment: job.spec.environment, node: node, gpus: [],
                maxRuntimeSeconds: job.spec.maxRuntimeSeconds), outcome)
    }

    /// A GPU of the node was scrubbed.
    public func agentScrubbed(_ node: NodeID, _ report: GPUScrubReport) async throws {
        var report = report
        report.node = node
        await (try remoteAgents()).agents.scrubbed(report)
    }

    /// The node sanitised itself as ordered.
    public func agentSanitized(_ node: NodeID, _ result: NodeSanitization) async throws {
        try remoteAgents().agents.sanitized(node, result)
    }

    /// Output of a job that runs (or ran) on the node, from `offset`; returns the log's size.
    public func agentLog(
        _ request: RequestInfo, _ node: NodeID, job: JobID, stderr: Bool, offset: Int, bytes: [UInt8]
    ) async throws -> AgentLogView {
        let agents = try remoteAgents().agents
        let given = await agents.active().contains { $0.job == job && agents.launch($0, on: node) != nil }
        if !given {
            guard let record = try await fleet.job(id: job), record.assignments.contains(where: { $0.node == node })
            else {
                try await refuseForeignJob(request, node, job)
                throw Failure.forbidden("job \(job) was not given to node \(node)")
            }
        }
        return AgentLogView(size: try agents.appendLog(job, stderr: stderr, offset: max(0, offset), bytes: bytes))
    }

    /// The inputs of a run given to the node (see `JobDatasets`).
    public func agentJobInputs(_ request: RequestInfo, _ node: NodeID, _ key: LaunchKey) async throws -> [JobInput] {
        try await JobDatasets(plane: self).inputs(of: try await givenLaunch(request, node, key))
    }

    /// Opens an input of a run given to the node, audited as the job's read.
    public func agentOpenJobInput(
        _ request: RequestInfo, _ node: NodeID, _ key: LaunchKey, object: ObjectID
    ) async throws -> ObjectReader {
        let launch = try await givenLaunch(request, node, key)
        guard let input = try await JobDatasets(plane: self).inputs(of: launch).first(where: { $0.object == object })
        else { throw Failure.notFound("input \(object) of job \(key.job)") }
        return try await openJobInput(launch, input)
    }

    private func givenLaunch(_ request: RequestInfo, _ node: NodeID, _ key: LaunchKey) async throws -> JobLaunch {
        guard let launch = try remoteAgents().agents.launch(key, on: node) else {
            try await refuseForeignJob(request, node, key.job)
            throw Failure.forbidden("job \(key.job) was not given to node \(node)")
        }
        return launch
    }

    private func refuseForeignJob(_ request: RequestInfo, _ node: NodeID, _ job: JobID) async throws {
        try await refuseAgent(request, node: node.rawValue, reason: "job \(job) was not given to node \(node)")
    }

    /// A node's agent status, for `node show`.
    func agentView(_ id: NodeID) async throws -> AgentView? {
        guard let record = try await fleet.agent(node: id), record.certificateSerial != nil else { return nil }
        let status = remote.withLock { $0 }?.agents.status(of: id)
        return AgentView(
            hostName: record.hostName, enrolledAt: record.enrolledAt, certificateSerial: record.certificateSerial,
            certificateExpiresAt: record.certificateExpiresAt, connected: status?.connected ?? false,
            lastSeen: status?.lastSeen)
    }

    // MARK: Reachability

    /// An agent synchronised for the first time since this control plane started, or after falling silent.
    private func agentConnected(_ id: NodeID) async {
        do {
            let passNeeded = try await scheduling.update { [audit] scheduler, tx in
                guard var node = try await tx.node(id: id) else { return false }
                let wasUnreachable = node.unreachableSince != nil
                node.unreachableSince = nil
                try await tx.updateNode(node)
                try await SchedulingService.sync(node, in: tx, into: &scheduler)
                try await audit.record(
                    RequestInfo(),
                    .init(
                        action: "node.connect", resourceType: "node", resourceID: id.rawValue,
                        tenant: node.lifecycle.tenant),
                    outcome: .success, actorOverride: (id.rawValue, "node"))
                return wasUnreachable
            }
            if passNeeded { try await scheduling.pass() }
        } catch {
            logger.error("cannot record a node agent's connection", metadata: ["node": "\(id)", "error": "\(error)"])
        }
    }

    /// A node's agent stayed silent for the heartbeat timeout: the node takes no work, and its jobs are
    /// requeued (training) or failed (the rest).
    private func nodeFellSilent(_ id: NodeID, seconds: Int) async {
        let now = self.now
        do {
            let changed = try await scheduling.update { [audit, scheduling] scheduler, tx in
                guard var node = try await tx.node(id: id), node.unreachableSince == nil else { return false }
                node.unreachableSince = now
                try await scheduling.evictWork(
                    from: node, scheduler: &scheduler, tx, at: now, request: nil,
                    reason: "node \(node.name) stopped answering (no heartbeat for \(seconds) s)", lost: true)
                if node.lifecycle.state == .draining {
                    _ = try node.lifecycle.handle(.emptied, jobsOnNode: 0)
                }
                try await tx.updateNode(node)
                try await SchedulingService.sync(node, in: tx, into: &scheduler)
                try await audit.record(
                    RequestInfo(),
                    .init(
                        action: "node.unreachable", resourceType: "node", resourceID: id.rawValue,
                        tenant: node.lifecycle.tenant),
                    outcome: .error, actorOverride: Self.agentMonitor,
                    details: .object(["silentSeconds": .integer(Int64(seconds))]))
                return true
            }
            if changed { try await scheduling.pass() }
        } catch {
            logger.error("cannot mark a node unreachable", metadata: ["node": "\(id)", "error": "\(error)"])
        }
    }
}
