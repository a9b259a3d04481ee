import CaduceusCore
import Logging
import Scheduling
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The runner of every node served by a remote agent: it keeps, for each node, the orders its agent should
/// follow (runs to start and stop, leftovers to reclaim, whether to sanitise), hands them out when the agent
/// synchronises, and passes what the agent reports on to the control plane.
///
/// Orders are level-based: each answer holds the whole picture, so a lost answer or a repeated one changes
/// nothing; a job starts only after the control plane recorded it as running, so none starts twice. A node
/// is served only while its agent answers: from its first synchronisation after this control plane started
/// until it stays silent for the heartbeat timeout, when it is reported unreachable.
public final class RemoteAgents: JobRunner {
    /// How remote agents are handled.
    public struct Settings: Sendable {
        /// Seconds of silence after which a node is unreachable (its jobs are requeued or failed).
        public var heartbeatTimeoutSeconds: Int
        /// Days a node certificate is valid.
        public var certificateDays: Int
        /// Where the job logs agents send are kept (`<dir>/<job>/stdout|stderr`, 0600).
        public var logDirectory: String
        /// Bytes kept of each log; more is dropped.
        public var logLimitBytes: Int

        /// Creates settings.
        public init(
            heartbeatTimeoutSeconds: Int = 30, certificateDays: Int = 30, logDirectory: String,
            logLimitBytes: Int = 64 << 20
        ) {
            self.heartbeatTimeoutSeconds = heartbeatTimeoutSeconds
            self.certificateDays = certificateDays
            self.logDirectory = logDirectory
            self.logLimitBytes = logLimitBytes
        }

        /// Seconds a synchronisation waits for new orders before it answers anyway.
        var holdSeconds: Int { max(1, heartbeatTimeoutSeconds / 3) }
    }

    /// What the control plane does when a node connects or falls silent.
    struct Events: Sendable {
        var connected: @Sendable (NodeID) async -> Void
        var silent: @Sendable (NodeID, Int) async -> Void
    }

    let settings: Settings
    let logger: Logger
    private let events: Events
    private let state = Mutex(State())
    private let listenerPort = Mutex(0)
    private let startedAt = ContinuousClock.now

    private struct State {
        var nodes: [NodeID: NodeState] = [:]
        var reporter: (any JobReporter)?
        var nextWaiter = 0
        var monitor: Task<Void, Never>?
    }

    private struct NodeState {
        var serial: String?
        var connected = false
        var lastSeen: ContinuousClock.Instant?
        var lastSeenTime: Timestamp?
        var silenceReported = false
        /// What the agent said it runs, at its last synchronisation.
        var reported: Set<LaunchKey> = []
        /// Runs recorded as running whose end has not been reported.
        var started: Set<LaunchKey> = []
        /// Every run handed to the node and not yet ended.
        var given: [LaunchKey: JobLaunch] = [:]
        /// Runs the node should run.
        var desired: Set<LaunchKey> = []
        var stops: [LaunchKey: JobStopReason] = [:]
        var reclaims: Set<JobID> = []
        var sanitize = false
        var sanitization: NodeSanitization?
        var generation = 1
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]

        mutating func bump() -> [CheckedContinuation<Void, Never>] {
            generation += 1
            defer { waiters = [:] }
            return Array(waiters.values)
        }

        var orders: AgentOrders {
            AgentOrders(
                generation: generation,
                launches: desired.compactMap { given[$0] }.sorted { $0.key.description < $1.key.description },
                stops: stops.map { AgentStop(key: $0.key, reason: $0.value) }.sorted {
                    $0.key.description < $1.key.description
                }, reclaim: reclaims.sorted(), sanitize: sanitize)
        }
    }

    init(settings: Settings, enrolled: [AgentRecord], events: Events, logger: Logger) {
        self.settings = settings
        self.events = events
        self.logger = logger
        state.withLock { state in
            for agent in enrolled { state.nodes[agent.node] = NodeState(serial: agent.certificateSerial) }
        }
    }

    /// The port agents connect to (set once the agent listener runs).
    public var agentPort: Int {
        get { listenerPort.withLock { $0 } }
        set { listenerPort.withLock { $0 = newValue } }
    }

    // MARK: JobRunner

    public func serves(node: NodeID) -> Bool { state.withLock { $0.nodes[node]?.connected == true } }

    public func prepare(reporter: any JobReporter) async {
        let monitor = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(500))
                guard let self else { return }
                await self.checkHeartbeats()
            }
        }
        state.withLock {
            $0.reporter = reporter
            $0.monitor?.cancel()
            $0.monitor = monitor
        }
    }

    public func active() async -> Set<LaunchKey> {
        state.withLock { state in
            state.nodes.values.reduce(into: Set<LaunchKey>()) { all, node in
                all.formUnion(node.reported)
                all.formUnion(node.started)
                all.formUnion(node.desired)
            }
        }
    }

    public func launch(_ launch: JobLaunch, reporter: any JobReporter) async {
        wake(
            state.withLock { state -> [CheckedContinuation<Void, Never>] in
                guard var node = state.nodes[launch.node], !node.desired.contains(launch.key) else { return [] }
                node.given[launch.key] = launch
                node.desired.insert(launch.key)
                node.stops[launch.key] = nil
                defer { state.nodes[launch.node] = node }
                return node.bump()
            })
    }

    public func stop(_ key: LaunchKey, reason: JobStopReason) async {
        wake(
            state.withLock { state -> [CheckedContinuation<Void, Never>] in
                var woken: [CheckedContinuation<Void, Never>] = []
                for (id, var node) in state.nodes
                where node.given[key] != nil || node.reported.contains(key) || node.started.contains(key) {
                    node.desired.remove(key)
                    guard node.stops[key] == nil else { continue }
                    node.stops[key] = reason
                    woken += node.bump()
                    state.nodes[id] = node
                }
                return woken
            })
    }

    public func readLog(_ job: JobID, stderr: Bool, from offset: Int, limit: Int) async -> (bytes: [UInt8], size: Int)?
    {
        let fd = open(logPath(job, stderr: stderr), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return nil }
        let size = Int(status.st_size)
        let start = min(max(0, offset), size)
        let count = min(max(0, limit), size - start)
        var bytes = [UInt8](repeating: 0, count: count)
        let read = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(start)) }
        return (Array(bytes.prefix(max(0, read))), size)
    }

    public func sanitize(node id: NodeID, reporter: any JobReporter) async -> NodeSanitization? {
        let (result, woken) = state.withLock { state -> (NodeSanitization?, [CheckedContinuation<Void, Never>]) in
            guard var node = state.nodes[id], node.connected else { return (nil, []) }
            defer { state.nodes[id] = node }
            if let result = node.sanitization {
                node.sanitization = nil
                return (result, [])
            }
            guard !node.sanitize else { return (nil, []) }
            node.sanitize = true
            return (nil, node.bump())
        }
        wake(woken)
        return result
    }

    public func logFiles(of job: JobID) -> (stdout: String, stderr: String)? {
        (logPath(job, stderr: false), logPath(job, stderr: true))
    }

    public func reclaim(_ job: JobID, on id: NodeID) async -> Int {
        wake(
            state.withLock { state -> [CheckedContinuation<Void, Never>] in
                guard var node = state.nodes[id], !node.reclaims.contains(job) else { return [] }
                node.reclaims.insert(job)
                defer { state.nodes[id] = node }
                return node.bump()
            })
        return 0
    }

    // MARK: What agents say

    /// Records a node's heartbeat and answers with its orders: at once when the agent has not seen the
    /// current ones, otherwise when they change or after the hold time.
    func sync(_ id: NodeID, _ request: AgentSyncRequest, at now: Timestamp) async -> AgentOrders {
        let connected = state.withLock { state -> Bool in
            var node = state.nodes[id] ?? NodeState()
            defer { state.nodes[id] = node }
            node.lastSeen = .now
            node.lastSeenTime = now
            node.reported = Set(request.active)
            node.reclaims.subtract(request.reclaimed ?? [])
            // A stop is done once the agent no longer runs the job.
            node.stops = node.stops.filter { node.reported.contains($0.key) || node.started.contains($0.key) }
            node.given = node.given.filter {
                node.desired.contains($0.key) || node.reported.contains($0.key) || node.started.contains($0.key)
            }
            guard !node.connected else { return false }
            node.connected = true
            node.silenceReported = false
            return true
        }
        if connected {
            await events.connected(id)
            reporter?.changed()
        }
        if request.seen >= state.withLock({ $0.nodes[id]?.generation ?? 0 }) {
            await waitForOrders(id, after: request.seen)
        }
        return state.withLock { $0.nodes[id]?.orders }
            ?? AgentOrders(generation: 0, launches: [], stops: [], reclaim: [], sanitize: false)
    }

    /// The run `key` as handed to node `id`, if it was.
    func launch(_ key: LaunchKey, on id: NodeID) -> JobLaunch? {
        state.withLock { $0.nodes[id]?.given[key] }
    }

    /// Whether the job may start now; marks it started first so that no reconciliation takes it for lost.
    func starting(_ launch: JobLaunch) async -> Bool {
        guard let reporter else { return false }
        state.withLock { _ = $0.nodes[launch.node]?.started.insert(launch.key) }
        let allowed = await reporter.starting(launch)
        if !allowed { state.withLock { _ = $0.nodes[launch.node]?.started.remove(launch.key) } }
        return allowed
    }

    func ended(_ launch: JobLaunch, _ outcome: JobOutcome) async {
        await reporter?.ended(launch, outcome)
        state.withLock { state in
            state.nodes[launch.node]?.started.remove(launch.key)
            state.nodes[launch.node]?.given[launch.key] = nil
        }
    }

    func scrubbed(_ report: GPUScrubReport) async {
        await reporter?.scrubbed(report)
    }

    func inputs(of launch: JobLaunch) async throws -> [JobInput] {
        guard let reporter else { throw CaduceusError(code: "job.inputs", message: "not running jobs yet") }
        return try await reporter.inputs(of: launch)
    }

    func readInput(_ launch: JobLaunch, _ input: JobInput, sink: ([UInt8]) async throws -> Void) async throws {
        guard let reporter else { throw CaduceusError(code: "job.inputs", message: "not running jobs yet") }
        try await reporter.readInput(launch, input, sink: sink)
    }

    func sanitized(_ id: NodeID, _ result: NodeSanitization) {
        state.withLock { state in
            guard state.nodes[id]?.sanitize == true else { return }
            state.nodes[id]?.sanitization = result
            state.nodes[id]?.sanitize = false
        }
        reporter?.changed()
    }

    /// Appends bytes the agent sends at `offset` of a job's log; returns the log's size after. Bytes the
    /// log already holds are skipped (a resend); a gap is refused.
    func appendLog(_ job: JobID, stderr: Bool, offset: Int, bytes: [UInt8]) throws -> Int {
        let folder = settings.logDirectory + "/" + job.rawValue
        mkdir(settings.logDirectory, 0o700)
        mkdir(folder, 0o700)
        let fd = open(logPath(job, stderr: stderr), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CaduceusError(code: "agent.logs", message: "cannot write the log of job \(job)")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw CaduceusError(code: "agent.logs", message: "cannot write the log of job \(job)")
        }
        let size = Int(status.st_size)
        guard offset <= size else {
            throw Failure.conflict("the log of job \(job) holds \(size) bytes; send from there")
        }
        let fresh = bytes.dropFirst(size - offset).prefix(max(0, settings.logLimitBytes - size))
        guard !fresh.isEmpty else { return size }
        let written = fresh.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == fresh.count else {
            throw CaduceusError(code: "agent.logs", message: "cannot write the log of job \(job)")
        }
        return size + written
    }

    // MARK: Enrolment and status

    /// Takes a node's new certificate serial (an enrolment or renewal): only that certificate is accepted.
    func enrolled(_ id: NodeID, serial: String) {
        state.withLock { state in
            var node = state.nodes[id] ?? NodeState()
            node.serial = serial
            state.nodes[id] = node
        }
    }

    /// Whether `serial` is the certificate node `id` holds now.
    public func accepts(_ id: NodeID, serial: String) -> Bool {
        state.withLock { $0.nodes[id]?.serial == serial }
    }

    /// Whether the node's agent is connected, and when it was last heard from.
    func status(of id: NodeID) -> (connected: Bool, lastSeen: Timestamp?)? {
        state.withLock { state in state.nodes[id].map { ($0.connected, $0.lastSeenTime) } }
    }

    // MARK: Helpers

    private var reporter: (any JobReporter)? { state.withLock { $0.reporter } }

    private func logPath(_ job: JobID, stderr: Bool) -> String {
        settings.logDirectory + "/" + job.rawValue + (stderr ? "/stderr" : "/stdout")
    }

    private func wake(_ waiters: [CheckedContinuation<Void, Never>]) {
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until node `id`'s orders are newer than `seen`, or the hold time passes.
    private func waitForOrders(_ id: NodeID, after seen: Int) async {
        let ticket = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timeout = Task { [self] in
            try await Task.sleep(for: .seconds(settings.holdSeconds))
            wake(state.withLock { $0.nodes[id]?.waiters.removeValue(forKey: ticket) }.map { [$0] } ?? [])
        }
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                guard var node = state.nodes[id], node.generation <= seen else { return true }
                node.waiters[ticket] = continuation
                state.nodes[id] = node
                return false
            }
            if now { continuation.resume() }
        }
        timeout.cancel()
    }

    /// Reports the nodes that fell silent: connected ones not heard from for the timeout, and enrolled ones
    /// not heard from since this control plane started.
    private func checkHeartbeats() async {
        let timeout = Duration.seconds(settings.heartbeatTimeoutSeconds)
        let now = ContinuousClock.now
        let silent = state.withLock { state -> [(NodeID, Int)] in
            var silent: [(NodeID, Int)] = []
            for (id, var node) in state.nodes where !node.silenceReported {
                let since = node.lastSeen ?? startedAt
                guard now - since > timeout else { continue }
                node.connected = false
                node.silenceReported = true
                node.reported = []
                node.started = []
                node.desired = []
                node.given = [:]
                node.stops = [:]
                node.sanitize = false
                node.sanitization = nil
                state.nodes[id] = node
                silent.append((id, Int((now - since).components.seconds)))
            }
            return silent
        }
        for (id, seconds) in silent.sorted(by: { $0.0 < $1.0 }) {
            logger.warning("node agent silent; node unreachable", metadata: ["node": "\(id)", "seconds": "\(seconds)"])
            await events.silent(id, seconds)
        }
        if !silent.isEmpty { reporter?.changed() }
    }
}
