import CaduceusCore
import ControlPlane
import Crypto
import Foundation
import NIOHTTP1
import Scheduling
import Sealing
import SwiftASN1
import X509

/// What an enrolled agent keeps in its data directory (0700): `agent.json` (its node and where the control
/// plane is), `node.key` (its private key, 0600, never sent anywhere), `node.pem` (its certificate chain)
/// and `ca.pem` (the internal CA it trusts).
public struct AgentIdentity: Codable, Sendable, Equatable {
    public var node: NodeID
    /// The API URL it enrolled through.
    public var server: String
    /// The agent listener's URL.
    public var agentURL: String
    public var heartbeatTimeoutSeconds: Int
    public var certificateExpiresAt: Timestamp
    /// When the current certificate was issued (renewal happens when a third of its life is left).
    public var certificateIssuedAt: Timestamp

    /// The files of the identity in `directory`.
    struct Files {
        let directory: String
        var state: String { directory + "/agent.json" }
        var key: String { directory + "/node.key" }
        var chain: String { directory + "/node.pem" }
        var ca: String { directory + "/ca.pem" }
    }

    /// Loads the identity kept in `directory`, if the agent enrolled.
    public static func load(from directory: String) throws -> AgentIdentity? {
        let files = Files(directory: directory)
        guard let data = FileManager.default.contents(atPath: files.state) else { return nil }
        do {
            return try JSONDecoder().decode(AgentIdentity.self, from: data)
        } catch {
            throw AgentError(status: 0, "\(files.state) is damaged; enrol again with a new join token")
        }
    }

    /// Enrols with a join token: checks that the server presents the CA the token names, has the node's
    /// certificate signed for a fresh key, and keeps it all in `directory`.
    public static func enroll(
        server: String, joinToken: String, hostName: String, gpus: [GPUDevice], fake: Bool, directory: String
    ) async throws -> AgentIdentity {
        let parts = joinToken.split(separator: ".")
        guard parts.count == 2, parts[0].hasPrefix("cdj_"), parts[1].utf8.count == 64 else {
            throw AgentError(status: 0, "that is not a join token (caduceus node join-token NODE creates one)")
        }
        let expectedDigest = parts[1].lowercased()
        let bootstrap = try AgentConnection(base: server, trust: nil, identity: nil)
        let caPEM: String
        do {
            caPEM = String(decoding: try await bootstrap.send(.GET, "/v1/ca.pem"), as: UTF8.self)
            await bootstrap.shutdown()
        } catch {
            await bootstrap.shutdown()
            throw error
        }
        let ca = try Certificate(pemEncoded: caPEM)
        var serializer = DER.Serializer()
        try serializer.serialize(ca)
        guard Hex.encode(SHA256.hash(data: serializer.serializedBytes)) == expectedDigest else {
            throw AgentError(
                status: 0, "the server at \(server) does not present the CA the join token names; not enrolling")
        }
        let key = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(hostName) }, privateKey: .init(key),
            attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256)
        let connection = try AgentConnection(base: server, trust: caPEM, identity: nil)
        let reply: EnrollAgentResponse
        do {
            reply = try await connection.post(
                "/v1/agents/enroll",
                EnrollAgentRequest(
                    joinToken: joinToken, certificateSigningRequest: try csr.serializeAsPEM().pemString,
                    hostName: hostName, gpus: gpus, fake: fake), as: EnrollAgentResponse.self)
            await connection.shutdown()
        } catch {
            await connection.shutdown()
            throw error
        }
        guard let url = URL(string: server), let scheme = url.scheme, let host = url.host else {
            throw AgentError(status: 0, "\(server) is not a URL")
        }
        let identity = AgentIdentity(
            node: reply.node, server: server, agentURL: "\(scheme)://\(host):\(reply.agentPort)",
            heartbeatTimeoutSeconds: reply.heartbeatTimeoutSeconds, certificateExpiresAt: reply.certificateExpiresAt,
            certificateIssuedAt: SystemWallClock().now())
        try identity.save(in: directory, key: key.pemRepresentation, chain: reply.certificateChain, ca: caPEM)
        return identity
    }

    /// Writes the identity (key and certificates first, the state file last, each atomically).
    func save(in directory: String, key: String?, chain: String, ca: String?) throws {
        let files = Files(directory: directory)
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let key { try Self.write(Array(key.utf8), to: files.key, mode: 0o600) }
        try Self.write(Array(chain.utf8), to: files.chain, mode: 0o644)
        if let ca { try Self.write(Array(ca.utf8), to: files.ca, mode: 0o644) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try Self.write(Array(try encoder.encode(self)) + [0x0A], to: files.state, mode: 0o600)
    }

    /// The certificate chain, key and CA certificate kept in `directory`.
    static func credentials(in directory: String) throws -> (chain: String, key: String, ca: String) {
        let files = Files(directory: directory)
        func text(_ path: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw AgentError(status: 0, "cannot read \(path); enrol again with a new join token")
            }
            return String(decoding: data, as: UTF8.self)
        }
        return (try text(files.chain), try text(files.key), try text(files.ca))
    }

    static func write(_ bytes: [UInt8], to path: String, mode: Int) throws {
        let temporary = path + ".tmp"
        guard
            FileManager.default.createFile(
                atPath: temporary, contents: Data(bytes), attributes: [.posixPermissions: mode])
        else { throw AgentError(status: 0, "cannot write \(temporary)") }
        guard rename(temporary, path) == 0 else { throw AgentError(status: 0, "cannot write \(path)") }
    }
}
