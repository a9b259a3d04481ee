import CaduceusCore
import ControlPlane
import Crypto
import EmbeddedAgent
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NodeAgent
import Scheduling
import SwiftASN1
import Synchronization
import X509

/// `caduceus agent`: the node agent of a remote GPU node. It runs the jobs the control plane gives the node
/// with the same agent and executor as embedded mode, and talks to the control plane only over mutual TLS:
/// a heartbeat that reports what runs and fetches the node's orders (held open until they change), a
/// question before each start, each end, each GPU scrub, the node's sanitisation, and the jobs' output.
public final class RemoteNodeAgent: Sendable {
    let directory: String
    let node: LocalNodeAgent
    let executor: LocalExecutor
    let logger: Logger
    private let identity: Mutex<AgentIdentity>
    fileprivate let connection: Mutex<AgentConnection>
    /// Runs that ended here: never started again, even if an order to run them is still in flight.
    private let finished = Mutex<(keys: Set<LaunchKey>, order: [LaunchKey])>(([], []))
    /// Bytes of each running job's logs the control plane holds.
    private let sent = Mutex<[JobID: (stdout: Int, stderr: Int)]>([:])
    private let logLock = AsyncLock()
    private let sanitizing = Mutex(false)

    /// Loads the identity enrolled in `directory` and makes the agent for the GPUs found.
    public init(directory: String, discovery: EmbeddedAgent.Discovery, graceSeconds: Double, logger: Logger) throws {
        guard let identity = try AgentIdentity.load(from: directory) else {
            throw AgentError(status: 0, "\(directory) holds no enrolment; give --join-token")
        }
        let credentials = try AgentIdentity.credentials(in: directory)
        self.directory = directory
        self.identity = Mutex(identity)
        self.connection = Mutex(
            try AgentConnection(
                base: identity.agentURL, trust: credentials.ca, identity: (credentials.chain, credentials.key)))
        self.executor = LocalExecutor(settings: .init(root: directory + "/jobs", graceSeconds: graceSeconds))
        self.node = discovery.makeAgent(identity.node, executor, logger)
        self.logger = logger
    }

    /// The node this agent serves.
    public var nodeID: NodeID { identity.withLock { $0.node } }

    /// Runs until cancelled: kills what a previous run of the agent left, scrubs every GPU, then follows the
    /// control plane's orders and ships the jobs' output.
    public func run() async {
        let killed = executor.reclaimAll()
        if killed > 0 { logger.warning("killed processes left by an earlier run", metadata: ["count": "\(killed)"]) }
        let reporter = Reporter(agent: self)
        await node.prepare(reporter: reporter)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.followOrders(reporter) }
            group.addTask { await self.shipLogs() }
            await group.next()
            group.cancelAll()
        }
        await connection.withLock { $0 }.shutdown()
    }

    // MARK: Orders

    private func followOrders(_ reporter: Reporter) async {
        var seen = 0
        var reclaimed: [JobID] = []
        var failures = 0
        while !Task.isCancelled {
            await renewCertificateIfDue()
            let active = await node.active()
            let orders: AgentOrders
            do {
                orders = try await call(
                    "sync",
                    AgentSyncRequest(
                        seen: seen, active: active.sorted { $0.description < $1.description },
                        reclaimed: reclaimed), as: AgentOrders.self,
                    timeout: .seconds(Int64(identity.withLock { $0.heartbeatTimeoutSeconds }) + 15))
                if failures > 0 { logger.notice("control plane reachable again") }
                failures = 0
            } catch {
                failures += 1
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("cannot reach the control plane", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .milliseconds(min(5_000, 250 << min(failures, 5))))
                continue
            }
            reclaimed = []
            seen = orders.generation
            let done = finished.withLock { $0.keys }
            for launch in orders.launches where !active.contains(launch.key) && !done.contains(launch.key) {
                sent.withLock { if $0[launch.key.job] == nil { $0[launch.key.job] = (0, 0) } }
                await node.launch(launch, reporter: reporter)
            }
            for stop in orders.stops { await node.stop(stop.key, reason: stop.reason) }
            for job in orders.reclaim {
                let killed = await node.reclaim(job, on: nodeID)
                logger.info("reclaimed a job's leftovers", metadata: ["job": "\(job)", "killed": "\(killed)"])
                reclaimed.append(job)
            }
            if orders.sanitize { sanitize(reporter) }
        }
    }

    private func sanitize(_ reporter: Reporter) {
        guard
            sanitizing.withLock({ busy in
                defer { busy = true }; return !busy
            })
        else { return }
        Task {
            defer { sanitizing.withLock { $0 = false } }
            guard let result = await node.sanitize(node: nodeID, reporter: reporter) else { return }
            await deliver("sanitization", AgentSanitizationRequest(result: result))
        }
    }

    /// Renews the node certificate when a third of its life is left: a fresh key, signed by the control
    /// plane over the current certificate; the old one is refused from then on.
    private func renewCertificateIfDue() async {
        let current = identity.withLock { $0 }
        let now = SystemWallClock().now().millisecondsSinceEpoch
        let issued = current.certificateIssuedAt.millisecondsSinceEpoch
        let expires = current.certificateExpiresAt.millisecondsSinceEpoch
        guard now >= issued + (expires - issued) * 2 / 3 else { return }
        do {
            let key = P256.Signing.PrivateKey()
            let csr = try CertificateSigningRequest(
                version: .v1, subject: try DistinguishedName { CommonName(current.node.rawValue) },
                privateKey: .init(key), attributes: CertificateSigningRequest.Attributes(),
                signatureAlgorithm: .ecdsaWithSHA256)
            let reply = try await call(
                "certificate",
                RenewAgentCertificateRequest(certificateSigningRequest: try csr.serializeAsPEM().pemString),
                as: AgentCertificateView.self)
            var renewed = current
            renewed.certificateExpiresAt = reply.certificateExpiresAt
            renewed.certificateIssuedAt = SystemWallClock().now()
            try renewed.save(in: directory, key: key.pemRepresentation, chain: reply.certificateChain, ca: nil)
            let credentials = try AgentIdentity.credentials(in: directory)
            let fresh = try AgentConnection(
                base: renewed.agentURL, trust: credentials.ca, identity: (credentials.chain, credentials.key))
            let old = connection.withLock { connection in
                defer { connection = fresh }
                return connection
            }
            identity.withLock { $0 = renewed }
            logger.notice("node certificate renewed", metadata: ["expires": "\(reply.certificateExpiresAt)"])
            Task {
                try? await Task.sleep(for: .seconds(60))
                await old.shutdown()
            }
        } catch {
            logger.error("cannot renew the node certificate", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Logs

    private func shipLogs() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            for job in sent.withLock({ Array($0.keys) }).sorted() { await flushLogs(job) }
        }
    }

    /// Sends the control plane whatever it does not yet hold of a job's output.
    func flushLogs(_ job: JobID) async {
        await logLock.withLock {
            for stderr in [false, true] {
                var offset = sent.withLock { stderr ? $0[job]?.stderr : $0[job]?.stdout } ?? 0
                while let chunk = executor.readLog(job, stderr: stderr, from: offset, limit: 512 << 10),
                    !chunk.bytes.isEmpty
                {
                    let held: Int
                    do {
                        let data = try await connection.withLock { $0 }.send(
                            .POST, path("jobs/\(job)/logs?stream=\(stderr ? "stderr" : "stdout")&offset=\(offset)"),
                            raw: chunk.bytes)
                        held = try JSONDecoder().decode(AgentLogView.self, from: data).size
                    } catch let error as AgentError where error.status == 409 && offset > 0 {
                        // The control plane holds less than we thought: send it all again (it skips what it has).
                        offset = 0
                        continue
                    } catch {
                        logger.warning("cannot send a job's output", metadata: ["job": "\(job)", "error": "\(error)"])
                        break
                    }
                    // No progress: the control plane keeps no more of this log.
                    guard held > offset else { break }
                    offset = held
                }
                sent.withLock { state in
                    if stderr { state[job]?.stderr = offset } else { state[job]?.stdout = offset }
                }
            }
        }
    }

    // MARK: Talking to the control plane

    func path(_ tail: String) -> String { "/v1/agents/\(nodeID)/" + tail }

    func call<T: Decodable>(
        _ tail: String, _ body: some Encodable, as type: T.Type, timeout: TimeAmount = .seconds(30)
    ) async throws -> T {
        try await connection.withLock { $0 }.post(path(tail), body, as: type, timeout: timeout)
    }

    /// Sends a report, retrying while the control plane cannot be reached (for up to twice the heartbeat
    /// timeout: by then the node is unreachable and the control plane has acted on it).
    func deliver(_ tail: String, _ body: some Encodable) async {
        let deadline = ContinuousClock.now + .seconds(2 * identity.withLock { $0.heartbeatTimeoutSeconds })
        var attempt = 0
        while true {
            do {
                _ = try await connection.withLock { $0 }.send(.POST, path(tail), json: body)
                return
            } catch let error as AgentError where error.status != 0 && error.status < 500 {
                logger.error(
                    "the control plane refused a report", metadata: ["report": "\(tail)", "error": "\(error)"])
                return
            } catch {
                attempt += 1
                guard ContinuousClock.now < deadline, !Task.isCancelled else {
                    logger.error(
                        "a report could not be delivered", metadata: ["report": "\(tail)", "error": "\(error)"])
                    return
                }
                try? await Task.sleep(for: .milliseconds(min(5_000, 250 << min(attempt, 5))))
            }
        }
    }

    func ended(_ key: LaunchKey) {
        finished.withLock { state in
            guard state.keys.insert(key).inserted else { return }
            state.order.append(key)
            if state.order.count > 4096 { state.keys.remove(state.order.removeFirst()) }
        }
        sent.withLock { _ = $0.removeValue(forKey: key.job) }
    }

    /// Tells the control plane what the node's runs do, over the agent's connection.
    struct Reporter: JobReporter {
        let agent: RemoteNodeAgent

        func starting(_ launch: JobLaunch) async -> Bool {
            do {
                return try await agent.call(
                    "starting", AgentStartingRequest(key: launch.key), as: AgentStartingResponse.self
                ).start
            } catch {
                agent.logger.warning("a job was not started", metadata: ["job": "\(launch.key)", "error": "\(error)"])
                return false
            }
        }

        func ended(_ launch: JobLaunch, _ outcome: JobOutcome) async {
            await agent.flushLogs(launch.key.job)
            await agent.deliver("ended", AgentEndedRequest(key: launch.key, outcome: outcome))
            agent.ended(launch.key)
            // The control plane holds (and seals) the output now; the node keeps none of it.
            agent.executor.eraseLogs(of: launch.key.job)
        }

        func scrubbed(_ report: GPUScrubReport) async {
            await agent.deliver("scrubs", AgentScrubRequest(report: report))
        }

        func changed() {}

        func inputs(of launch: JobLaunch) async throws -> [JobInput] {
            let data = try await agent.connection.withLock { $0 }.send(
                .GET, agent.path("jobs/\(launch.key.job)/inputs?attempt=\(launch.key.attempt)"))
            return try JSONDecoder().decode([JobInput].self, from: data)
        }

        func readInput(_ launch: JobLaunch, _ input: JobInput, sink: ([UInt8]) async throws -> Void) async throws {
            try await agent.connection.withLock { $0 }.stream(
                agent.path("jobs/\(launch.key.job)/inputs/\(input.object)?attempt=\(launch.key.attempt)"), sink: sink)
        }
    }
}
