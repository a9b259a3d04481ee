import AuditLog
import CaduceusCore
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import Scheduling
import Sealing
import SwiftASN1
import Synchronization
import X509

/// The agent listener: HTTPS where the client must present a node certificate of the internal CA, the one
/// its node enrolled with. The TLS handshake checks the certificate (chain, validity, current serial) and
/// remembers which node the connection speaks for; each request then names the node it acts for and must
/// name that one. A connection without a certificate gets through the handshake only to be refused at
/// its first request, so that every refusal lands in the audit trail with the caller's address.
enum AgentListener {
    /// The application serving agents on `host:port`.
    static func makeApplication(
        plane: ControlPlane, agents: RemoteAgents, ca: InternalCA, host: String, port: Int, logger: Logger,
        onRunning: @escaping @Sendable (Int) -> Void
    ) throws -> some ApplicationProtocol {
        let peers = PeerRegistry()
        let router = makeRouter(plane: plane, agents: agents, peers: peers, logger: logger)
        var tls = try CaduceusServer.tls(ca)
        tls.certificateVerification = .optionalVerification
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(ca.caCertificatePEM.utf8)))
        let context = try NIOSSLContext(configuration: tls)
        let verifier = NodeCertificateVerifier(plane: plane, agents: agents, ca: ca.caCertificate, peers: peers)
        let server = HTTPServerBuilder { responder in
            NodeVerifyingTLSChannel(
                base: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: .seconds(120))),
                context: context, verifier: verifier)
        }
        return Application(
            router: router, server: server, configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }
}

extension AgentListener {
    /// The agent listener's router: the checks of `AgentMiddleware`, then the routes of `AgentHandlers`.
    static func makeRouter(
        plane: ControlPlane, agents: RemoteAgents, peers: PeerRegistry, logger: Logger
    ) -> Router<AgentContext> {
        let router = Router(context: AgentContext.self)
        router.add(middleware: AgentMiddleware(plane: plane, agents: agents, peers: peers, logger: logger))
        AgentHandlers(plane: plane).register(on: router)
        return router
    }
}

/// The node each verified connection speaks for, by connection.
final class PeerRegistry: Sendable {
    private let peers = Mutex<[ObjectIdentifier: NodePeer]>([:])

    func set(_ peer: NodePeer, for channel: any Channel) {
        let key = ObjectIdentifier(channel)
        peers.withLock { $0[key] = peer }
        channel.closeFuture.whenComplete { [self] _ in peers.withLock { _ = $0.removeValue(forKey: key) } }
    }

    func peer(of key: ObjectIdentifier) -> NodePeer? { peers.withLock { $0[key] } }
}

/// A node, as its verified certificate says.
struct NodePeer: Sendable, Equatable {
    var node: NodeID
    var serial: String
}

/// Checks the certificate an agent presents in the handshake.
struct NodeCertificateVerifier: Sendable {
    let plane: ControlPlane
    let agents: RemoteAgents
    let ca: Certificate
    let peers: PeerRegistry

    /// Accepts a chain only if it leads to the internal CA, is valid now, and its leaf is the current
    /// certificate of the node named in it; audits every refusal.
    func verify(_ presented: [NIOSSLCertificate], channel: any Channel) async -> NIOSSLVerificationResult {
        let claimed: String
        do {
            let chain = try presented.map { try Certificate(derEncoded: try $0.toDERBytes()) }
            guard let leaf = chain.first else { throw Refusal("no certificate") }
            claimed = leaf.subject.commonName ?? "-"
            var verifier = Verifier(rootCertificates: CertificateStore([ca])) { RFC5280Policy() }
            let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst()))
            guard case .validCertificate = result else {
                return await refuse(
                    claimed, "the certificate is not valid now or not issued by this control plane's CA", channel)
            }
            let serial = Hex.encode(leaf.serialNumber.bytes)
            guard let node = NodeID(rawValue: claimed), agents.accepts(node, serial: serial) else {
                return await refuse(claimed, "the certificate is not the current one of any node", channel)
            }
            peers.set(NodePeer(node: node, serial: serial), for: channel)
            return .certificateVerified
        } catch {
            return await refuse("-", "the certificate cannot be read", channel)
        }
    }

    private func refuse(_ node: String, _ reason: String, _ channel: any Channel) async -> NIOSSLVerificationResult {
        try? await plane.refuseAgent(
            RequestInfo(sourceAddress: channel.remoteAddress?.ipAddress), node: node, reason: reason)
        return .failed
    }

    struct Refusal: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }
}

extension DistinguishedName {
    /// The first common name, if any.
    var commonName: String? {
        for rdn in self {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return attribute.value.description
            }
        }
        return nil
    }
}

/// Wraps a child channel with TLS that verifies node certificates per connection.
struct NodeVerifyingTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let context: NIOSSLContext
    let verifier: NodeCertificateVerifier

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let verifier = verifier
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                NIOSSLServerHandler(
                    context: context,
                    customVerificationCallback: { certificates, promise in
                        promise.completeWithTask { await verifier.verify(certificates, channel: channel) }
                    }, configuration: .init()))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Base.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// The request context of the agent listener: the connection (to find its verified node) and the caller.
struct AgentContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let connection: ObjectIdentifier
    var info: RequestInfo
    /// The node the connection's certificate names, once the middleware checked it.
    var node: NodeID?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        connection = ObjectIdentifier(source.channel)
        info = RequestInfo(sourceAddress: source.channel.remoteAddress?.ipAddress)
        node = nil
    }

    /// Log pieces are sent raw, up to 1 MiB.
    var maxUploadSize: Int { 1 << 20 }
}

/// Refuses (and audits) requests without a verified node, for another node than the certificate's, or
/// with a certificate replaced since the connection was made; gives every response the request ID.
struct AgentMiddleware: RouterMiddleware {
    typealias Context = AgentContext
    let plane: ControlPlane
    let agents: RemoteAgents
    let peers: PeerRegistry
    let logger: Logger

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let requestID = context.info.requestID.rawValue
        var response: Response
        do {
            var context = context
            context.node = try await verifiedNode(request, context)
            response = try await next(request, context)
        } catch {
            let apiError = APIError.from(error, requestID: requestID)
            if apiError.status.code >= 500 {
                logger.error("agent request failed", metadata: ["requestId": "\(requestID)", "error": "\(error)"])
            }
            response = try apiError.response(from: request, context: context)
        }
        response.headers[.requestID] = requestID
        return response
    }

    private func verifiedNode(_ request: Request, _ context: Context) async throws -> NodeID {
        let named = context.parameters.get("id") ?? "-"
        guard let peer = peers.peer(of: context.connection) else {
            try await plane.refuseAgent(context.info, node: named, reason: "no client certificate")
            throw Failure.unauthenticated("a node certificate is required")
        }
        guard agents.accepts(peer.node, serial: peer.serial) else {
            try await plane.refuseAgent(
                context.info, node: peer.node.rawValue, reason: "the certificate was replaced by a newer one")
            throw Failure.unauthenticated("this certificate is no longer the node's")
        }
        guard named == peer.node.rawValue else {
            try await plane.refuseAgent(
                context.info, node: named, reason: "node \(peer.node)'s certificate used to act for node \(named)")
            throw Failure.forbidden("this certificate is node \(peer.node)'s")
        }
        return peer.node
    }
}

/// The agent routes.
struct AgentHandlers {
    let plane: ControlPlane

    func register(on router: Router<AgentContext>) {
        let node = router.group("/v1/agents/:id")
        node.post("/sync") { [plane] request, context in
            try JSONBody.response(
                try await plane.agentSync(
                    try Self.node(context), try await JSONBody.decode(AgentSyncRequest.self, from: request)))
        }
        node.post("/starting") { [plane] request, context in
            let input = try await JSONBody.decode(AgentStartingRequest.self, from: request)
            let start = try await plane.agentStarting(context.info, try Self.node(context), input.key)
            return try JSONBody.response(AgentStartingResponse(start: start))
        }
        node.post("/ended") { [plane] request, context in
            let input = try await JSONBody.decode(AgentEndedRequest.self, from: request)
            try await plane.agentEnded(context.info, try Self.node(context), input.key, input.outcome)
            return Response(status: .noContent)
        }
        node.post("/scrubs") { [plane] request, context in
            let input = try await JSONBody.decode(AgentScrubRequest.self, from: request)
            try await plane.agentScrubbed(try Self.node(context), input.report)
            return Response(status: .noContent)
        }
        node.post("/sanitization") { [plane] request, context in
            let input = try await JSONBody.decode(AgentSanitizationRequest.self, from: request)
            try await plane.agentSanitized(try Self.node(context), input.result)
            return Response(status: .noContent)
        }
        node.post("/certificate") { [plane] request, context in
            let input = try await JSONBody.decode(RenewAgentCertificateRequest.self, from: request)
            return try JSONBody.response(
                try await plane.renewAgentCertificate(context.info, node: try Self.node(context), input))
        }
        node.get("/jobs/:job/inputs") { [plane] request, context in
            try JSONBody.response(
                try await plane.agentJobInputs(
                    context.info, try Self.node(context), try Self.launchKey(request, context)))
        }
        node.get("/jobs/:job/inputs/:object") { [plane] request, context in
            guard let object = context.parameters.get("object").flatMap({ ObjectID(rawValue: $0) }) else {
                throw Failure.notFound("object")
            }
            let reader = try await plane.agentOpenJobInput(
                context.info, try Self.node(context), try Self.launchKey(request, context), object: object)
            return RouteHandlers.stream(reader, 0..<reader.header.plaintextLength, sha256: nil, partial: false)
        }
        node.post("/jobs/:job/logs") { [plane] request, context in
            guard let job = context.parameters.get("job").flatMap({ JobID(rawValue: $0) }) else {
                throw Failure.notFound("job")
            }
            let query = request.uri.queryParameters
            let stream = query.get("stream").map { String($0) } ?? "stdout"
            guard stream == "stdout" || stream == "stderr" else { throw Failure.invalid("stream: stdout or stderr") }
            guard let offset = query.get("offset").flatMap({ Int($0) }), offset >= 0 else {
                throw Failure.invalid("offset: a whole number, 0 or more")
            }
            let body = try await request.body.collect(upTo: 1 << 20)
            return try JSONBody.response(
                try await plane.agentLog(
                    context.info, try Self.node(context), job: job, stderr: stream == "stderr", offset: offset,
                    bytes: Array(body.readableBytesView)))
        }
    }

    /// The run named by the path's job and the `attempt` query parameter.
    static func launchKey(_ request: Request, _ context: AgentContext) throws -> LaunchKey {
        guard let job = context.parameters.get("job").flatMap({ JobID(rawValue: $0) }) else {
            throw Failure.notFound("job")
        }
        guard let attempt = request.uri.queryParameters.get("attempt").flatMap({ Int($0) }) else {
            throw Failure.invalid("attempt: the run's attempt number")
        }
        return LaunchKey(job: job, attempt: attempt)
    }

    static func node(_ context: AgentContext) throws -> NodeID {
        guard let node = context.node else { throw Failure.unauthenticated("a node certificate is required") }
        return node
    }
}
