import ArgumentParser
import CaduceusCore
import ControlPlaneHTTP
import EmbeddedAgent
import Foundation
import Logging
import RemoteAgent
import UnixSignals

/// `caduceus agent`: the node agent of a remote GPU node.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run this machine's GPUs as a node of a Caduceus control plane (mutual TLS).",
        discussion: """
            The first start enrols with a join token (caduceus node join-token NODE): the agent checks that the \
            server presents the CA the token names, keeps a fresh private key in the data directory (0600), and \
            gets its node certificate signed. Later starts need no token. Jobs run as child processes in their \
            own process groups, with the same executor and GPU scrubbing as embedded mode; whatever an earlier \
            run of the agent left running is killed at start.
            """
    )

    @Option(help: "The control plane's API URL, e.g. https://cp.example.org:8443.")
    var server: String?

    @Option(help: "A join token for the first start (or to enrol again).")
    var joinToken: String?

    @Option(
        name: .customLong("data-dir"),
        help: "Where the agent keeps its identity and jobs (default $HOME/.caduceus-agent).")
    var dataDirectory: String?

    @Option(
        name: .customLong("fake-gpus"),
        help: "Offer N host-memory stand-ins as this machine's GPUs (demonstrations and tests; shown as fake).")
    var fakeGPUs: Int = 0

    @Option(help: "The host name to enrol with (default: this machine's).")
    var name: String?

    @Option(help: "Seconds a stopped job gets between SIGTERM and SIGKILL.")
    var graceSeconds: Int = 10

    func run() async throws {
        umask(0o077)
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: .info) }
        let logger = Logger(label: "caduceus.agent")
        let directory =
            dataDirectory
            ?? (ProcessInfo.processInfo.environment["HOME"].map { $0 + "/.caduceus-agent" }
                ?? "/var/lib/caduceus-agent")
        guard (0...600).contains(graceSeconds) else { throw CLIError("--grace-seconds must be 0 to 600") }
        guard let discovery = try EmbeddedAgent.discover(fakeGPUs: fakeGPUs, logger: logger) else {
            throw CLIError("this machine has no GPU that may be offered to work (see the log for why)")
        }
        if let joinToken {
            guard let server else { throw CLIError("--join-token needs --server") }
            let identity = try await AgentIdentity.enroll(
                server: server, joinToken: joinToken, hostName: (name ?? ServeCommand.nodeName()).lowercased(),
                gpus: discovery.devices, fake: discovery.fake, directory: directory)
            StandardStreams.line("Enrolled as node \(identity.node); agent listener \(identity.agentURL)")
        }
        let agent = try RemoteNodeAgent(
            directory: directory, discovery: discovery, graceSeconds: Double(graceSeconds), logger: logger)
        StandardStreams.line("Agent of node \(agent.nodeID) running (\(discovery.devices.count) GPUs)")
        let work = Task { await agent.run() }
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let stop = Task {
            for await _ in signals { break }
            work.cancel()
        }
        await work.value
        stop.cancel()
    }
}
