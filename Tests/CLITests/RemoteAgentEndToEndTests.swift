import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import SwiftASN1
import Testing
import X509

/// Remote node agents through the real binaries: a node enrolled with a join token runs a researcher's jobs
/// over mutual TLS; certificates that are missing, foreign, expired or another node's are refused and
/// audited; an agent killed in the middle of a job makes its node unreachable (inference fails, training is
/// requeued), and its restart kills what it left and brings the node back.
struct RemoteAgentEndToEndTests {
    @Test("a remote agent enrols, runs jobs over mutual TLS, refuses bad certificates, and survives being killed")
    func remoteAgent() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let server = try TestServer(
            data: scratch.path + "/data",
            environment: ["CADUCEUS_AGENT_TIMEOUT_SECONDS": "3", "CADUCEUS_STOP_GRACE_SECONDS": "1"])
        defer { server.stop() }
        let agentPort = try server.agentPort()
        let session = CLISession(scratch: scratch, server: server)
        try session.logInAdmin()
        let tenant = try session.id(["tenant", "create", "st-marys"], as: "admin")
        let project = try session.id(["project", "create", "--tenant", tenant, "radiology"], as: "admin")
        try session.person("rita", role: "researcher", scope: "project:\(tenant)/\(project)")
        let region = try session.id(["region", "create", "--residency", "US", "us-east"], as: "admin")
        let site = try session.id(["site", "create", "--region", region, "dc1"], as: "admin")
        let fabric = try session.id(["fabric", "create", "--site", site, "ib0"], as: "admin")
        let node = try session.id(
            [
                "node", "create", "--fabric", fabric, "--model", "FAKE", "--memory-mib", "8", "gpu-07",
                "--uuid", "placeholder-0", "--uuid", "placeholder-1",
            ], as: "admin")

        // A bad token enrols nothing; a real one enrols the agent, which reports the GPUs it found.
        let token = try #require(try session.json(["node", "join-token", node], as: "admin")["joinToken"] as? String)
        let agentData = scratch.path + "/agent"
        let forged = "cdj_" + String(repeating: "A", count: 43) + "." + token.split(separator: ".")[1]
        let refused = try CLI.run(
            ["agent", "--server", server.url, "--join-token", forged, "--data-dir", agentData, "--fake-gpus", "2"])
        #expect(refused.status != 0 && refused.stderr.contains("join token"), "\(refused.stderr)")
        var agent = try AgentProcess(
            [
                "--server", server.url, "--join-token", token, "--data-dir", agentData, "--fake-gpus", "2",
                "--grace-seconds", "1",
            ])
        defer { agent.kill() }
        #expect(agent.node == node)
        let reused = try CLI.run(
            [
                "agent", "--server", server.url, "--join-token", token, "--data-dir", scratch.path + "/again",
                "--fake-gpus", "2",
            ])
        #expect(reused.status != 0, "a join token enrols once")
        let enrolled = try waitForNode(node, session) { ($0["agent"] as? [String: Any])?["connected"] as? Bool == true }
        let gpus = try #require(enrolled["gpus"] as? [[String: Any]])
        #expect(gpus.compactMap { $0["uuid"] as? String }.allSatisfy { $0.hasPrefix("FAKE-") }, "\(gpus)")
        #expect(FileManager.default.fileExists(atPath: agentData + "/node.key"))
        _ = try session.json(["node", "assign", node, "--tenant", tenant], as: "admin")
        #expect(try session.json(["node", "activate", node], as: "admin")["state"] as? String == "available")

        // A job runs on the remote node; its output comes back; its GPU is scrubbed and that is reported.
        let submit = ["job", "submit", "--project", project, "--gpus-per-node", "1"]
        let hello = try session.id(
            submit + [
                "--class", "batch", "--", "/bin/sh", "-c", #"echo "hi $CUDA_VISIBLE_DEVICES from $CADUCEUS_JOB_ID""#,
            ],
            as: "rita")
        let done = try ExecutionEndToEndTests().wait(for: hello, in: ["succeeded", "failed"], session, as: "rita")
        #expect(done["state"] as? String == "succeeded", "\(done)")
        let logs = try session.run(["job", "logs", hello], as: "rita")
        #expect(logs.text == "hi FAKE-\(node)-0 from \(hello)\n" || logs.text.hasPrefix("hi FAKE-"), "\(logs.text)")
        #expect(logs.text.hasSuffix("from \(hello)\n"), "\(logs.text) \(logs.stderr)")
        // The node keeps no output of an ended job; the control plane holds it sealed.
        #expect(!FileManager.default.fileExists(atPath: agentData + "/jobs/\(hello)/stdout.log"))
        #expect(FileManager.default.fileExists(atPath: server.data + "/agent-logs/\(hello)/stdout.sealed"))
        let scrubbed = try waitForNode(node, session) { ($0["lastScrubs"] as? [[String: Any]])?.count == 2 }
        #expect((scrubbed["lastScrubs"] as? [[String: Any]])?.allSatisfy { $0["passed"] as? Bool == true } == true)

        // Calls without the node's current certificate are refused.
        let credentials = try AgentCredentials(directory: agentData, caKeyPath: server.data + "/tls/ca.key")
        let base = "https://127.0.0.1:\(agentPort)/v1/agents/"
        let sync = #"{"seen":0,"active":[]}"#
        #expect(try await credentials.post(base + node + "/sync", sync, identity: nil) == 401, "no certificate")
        #expect(
            try await credentials.post(base + "node-0000000000000000000000000000/sync", sync, identity: credentials.own)
                == 403, "the certificate of another node")
        #expect(
            try await credentials.post(base + node + "/sync", sync, identity: try credentials.expired(node)) == 0,
            "an expired certificate fails the handshake")
        #expect(
            try await credentials.post(base + node + "/sync", sync, identity: try credentials.selfSigned(node)) == 0,
            "a certificate of another CA fails the handshake")
        let stolen = #"{"key":{"job":"\#(hello)","attempt":0}}"#
        #expect(try await credentials.post(base + node + "/starting", stolen, identity: credentials.own) == 200)

        // The agent is killed while an inference and a training job run: the node becomes unreachable, the
        // inference job fails, the training job goes back to the queue.
        let inference = try session.id(submit + ["--class", "inference", "--", "/bin/sleep", "300"], as: "rita")
        let training = try session.id(
            submit + ["--class", "training", "--preemptible", "--", "/bin/sleep", "300"], as: "rita")
        _ = try ExecutionEndToEndTests().wait(for: inference, in: ["running"], session, as: "rita")
        _ = try ExecutionEndToEndTests().wait(for: training, in: ["running"], session, as: "rita")
        agent.kill()
        let failed = try ExecutionEndToEndTests().wait(for: inference, in: ["failed"], session, as: "rita")
        #expect((failed["reason"] as? String)?.contains("stopped answering") == true, "\(failed)")
        let requeued = try ExecutionEndToEndTests().wait(for: training, in: ["pending"], session, as: "rita")
        #expect(requeued["preemptions"] as? Int == 1, "\(requeued)")
        let lost = try session.json(["node", "show", node], as: "admin")
        #expect(lost["unreachableSince"] != nil && lost["schedulable"] as? Bool == false, "\(lost)")
        #expect(ExecutionEndToEndTests.processes(ofJob: inference) == 1, "a killed agent leaves its jobs behind")

        // Restarted without a token, the agent kills what it left, and its node takes the training job again.
        agent = try AgentProcess(["--data-dir", agentData, "--fake-gpus", "2", "--grace-seconds", "1"])
        let back = try waitForNode(node, session) {
            $0["unreachableSince"] == nil && $0["schedulable"] as? Bool == true
        }
        #expect(back["state"] as? String == "available")
        #expect(ExecutionEndToEndTests.processes(ofJob: inference) == 0, "leftovers killed at the agent's start")
        _ = try ExecutionEndToEndTests().wait(for: training, in: ["running"], session, as: "rita")
        #expect(try session.json(["job", "cancel", training], as: "rita")["state"] as? String == "cancelled")
        let deadline = Date().addingTimeInterval(10)
        while ExecutionEndToEndTests.processes(ofJob: training) > 0 && Date() < deadline { usleep(100_000) }
        #expect(ExecutionEndToEndTests.processes(ofJob: training) == 0)

        agent.kill()
        server.stop()
        let events = try session.verifiedAuditEvents()
        for action in [
            "node.join-token", "node.enroll", "node.connect", "node.unreachable", "agent.refuse", "job.start",
            "job.succeed", "job.fail", "job.requeue", "gpu.scrub", "job.cancel",
        ] {
            #expect(events.contains(#""action":"\#(action)""#), "\(action)")
        }
        let refusals = events.split(separator: "\n").filter { $0.contains(#""action":"agent.refuse""#) }
        #expect(refusals.count >= 4, "\(refusals)")
    }

    /// Polls `node show` until `done` holds; returns the node.
    func waitForNode(
        _ node: String, _ session: CLISession, seconds: Double = 30, _ done: ([String: Any]) -> Bool
    ) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            last = try session.json(["node", "show", node], as: "admin")
            if done(last) { return last }
            usleep(100_000)
        }
        Issue.record("node \(node) never got there; last: \(last)")
        return last
    }
}

/// A running `caduceus agent`.
final class AgentProcess {
    let process = Process()
    let output: Collector
    let node: String

    init(_ arguments: [String]) throws {
        process.executableURL = CLI.executable
        process.arguments = ["agent"] + arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        output = Collector(stdout.fileHandleForReading)
        let deadline = Date().addingTimeInterval(60)
        let prefix = "Agent of node "
        while Date() < deadline && process.isRunning {
            let text = String(decoding: output.snapshot, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                node = String(line.dropFirst(prefix.count).prefix { $0 != " " })
                return
            }
            usleep(50_000)
        }
        process.terminate()
        throw CaduceusTestError("the agent did not start")
    }

    /// Kills the agent at once (SIGKILL), as a crash would.
    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

struct CaduceusTestError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The enrolled agent's certificate, and forged ones, for calling the agent listener directly.
struct AgentCredentials {
    let caPEM: String
    let caKey: P256.Signing.PrivateKey
    let own: (chain: String, key: String)

    init(directory: String, caKeyPath: String) throws {
        func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }
        caPEM = try text(directory + "/ca.pem")
        caKey = try P256.Signing.PrivateKey(pemRepresentation: try text(caKeyPath))
        own = (try text(directory + "/node.pem"), try text(directory + "/node.key"))
    }

    /// A certificate for `node`, signed by the real CA, that expired yesterday.
    func expired(_ node: String) throws -> (chain: String, key: String) {
        let ca = try Certificate(pemEncoded: caPEM)
        return try issue(node, issuer: ca.subject, signer: caKey, from: Date() - 86_400 * 30, to: Date() - 86_400)
    }

    /// A certificate for `node` that no CA of the control plane signed.
    func selfSigned(_ node: String) throws -> (chain: String, key: String) {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(node) }
        return try issue(node, issuer: name, signer: key, from: Date() - 60, to: Date() + 86_400, key: key)
    }

    private func issue(
        _ node: String, issuer: DistinguishedName, signer: P256.Signing.PrivateKey, from: Date, to: Date,
        key: P256.Signing.PrivateKey = P256.Signing.PrivateKey()
    ) throws -> (chain: String, key: String) {
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: from,
            notValidAfter: to, issuer: issuer, subject: try DistinguishedName { CommonName(node) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { try ExtendedKeyUsage([.clientAuth]) },
            issuerPrivateKey: .init(signer))
        return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
    }

    /// POSTs JSON presenting `identity`; the HTTP status, or 0 when the TLS handshake failed.
    func post(_ url: String, _ body: String, identity: (chain: String, key: String)?) async throws -> Int {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        if let identity {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(identity.chain.utf8)).map {
                .certificate($0)
            }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.key.utf8), format: .pem))
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let status: Int
        do {
            status = Int(try await client.execute(request, timeout: .seconds(10)).status.code)
        } catch {
            status = 0
        }
        try? await client.shutdown()
        return status
    }
}
