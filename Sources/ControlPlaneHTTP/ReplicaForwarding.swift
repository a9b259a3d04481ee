import AsyncHTTPClient
import AuditLog
import CaduceusCore
import ControlPlane
import Crypto
import HTTPTypes
import Hummingbird
import Identity
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// What proves that a request came from another replica of this control plane: an HMAC of a fixed label
/// under the root key, which every replica shares and nothing else holds. Only a request that carries it
/// may name the client's address in `X-Caduceus-Forwarded-For`.
public struct ForwardingKey: Sendable, Equatable {
    let value: String

    public init(rootKey: SymmetricKey) {
        value = CaduceusCore.Hex.encode(
            Array(HMAC<SHA256>.authenticationCode(for: Array("caduceus/replica-forwarding/v1".utf8), using: rootKey)))
    }

    /// The client's address a forwarding replica names, when `request` proves it came from one.
    func forwardedAddress(of request: Request) -> String? {
        guard let presented = request.headers[.replicaKey], presented.utf8.count == value.utf8.count,
            zip(presented.utf8, value.utf8).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0,
            let address = request.headers[.forwardedFor], !address.isEmpty, address.utf8.count <= 64
        else { return nil }
        return address
    }
}

/// What this replica answers with: the API itself while it leads. While it follows: the routes any replica
/// answers (`APIRoutes.anyReplica`) itself, over the shared database, and for the others the leader's
/// answer to the same request, forwarded with the client's address. Probes are answered here either way.
final class ReplicaResponder: Sendable {
    private let local = Mutex<RouterResponder<APIContext>?>(nil)
    /// A follower's own API: the routes it answers itself.
    private let follower: RouterResponder<APIContext>?
    private let followerRoutes = RouteMatcher(APIRoutes.anyReplica)
    private let forwarder: LeaderForwarder?
    private let readiness: CaduceusServer.Readiness
    /// Where a follower records the requests it refuses because it cannot forward them (no leader, or none
    /// that answers): the audit outbox, which the next leader appends to the log. (The routes it answers
    /// itself are audited by its own router, through the same outbox.)
    private let audit: AuditRecorder?
    private let logger: Logger

    init(
        forwarder: LeaderForwarder?, follower: RouterResponder<APIContext>? = nil, audit: AuditRecorder? = nil,
        logger: Logger = Logger(label: "caduceus"), readiness: @escaping CaduceusServer.Readiness
    ) {
        self.forwarder = forwarder
        self.follower = follower
        self.audit = audit
        self.logger = logger
        self.readiness = readiness
    }

    /// From now on this replica answers the API itself.
    func lead(with responder: RouterResponder<APIContext>) { local.withLock { $0 = responder } }

    @Sendable func respond(to request: Request, context: APIContext) async throws -> Response {
        if let local = local.withLock({ $0 }) { return try await local.respond(to: request, context: context) }
        switch request.uri.path {
        case "/healthz": return try JSONBody.response(["status": "ok"])
        case "/readyz": return try RouteHandlers.readinessResponse(await readiness())
        default: break
        }
        if let follower, followerRoutes.matches(request.method, request.uri.path) {
            return try await follower.respond(to: request, context: context)
        }
        do {
            // The leader's metrics are for its own loopback scrapes, never relayed.
            guard request.uri.path != "/metrics" else { throw Failure.notFound("route") }
            guard let forwarder else { throw Failure.noLeader }
            return try await forwarder.forward(request, context: context)
        } catch {
            let refusal = APIError.from(error, requestID: context.info.requestID.rawValue)
            await record(request, context, status: Int(refusal.status.code))
            var response = try refusal.response(from: request, context: context)
            response.headers[.requestID] = context.info.requestID.rawValue
            return response
        }
    }

    /// Audits a request this follower refused because it could not forward it. The answer is a refusal
    /// either way, so an audit failure changes nothing but the log.
    private func record(_ request: Request, _ context: APIContext, status: Int) async {
        guard let audit else { return }
        do {
            try await audit.record(
                context.info,
                .init(
                    action: RequestMiddleware.action(request), resourceType: "route",
                    resourceID: RequestMiddleware.routeName(request.uri.path)),
                outcome: [401, 403, 429].contains(status) ? .denied : .error)
        } catch {
            logger.error(
                "cannot record a refused request in the audit outbox",
                metadata: ["requestId": "\(context.info.requestID)", "error": "\(error)"])
        }
    }
}

/// Whether a request's method and path match one of a set of routes; `{…}` segments match any one segment.
struct RouteMatcher: Sendable {
    private let routes: [(method: HTTPRequest.Method, segments: [String?])]

    init(_ specs: [RouteSpec]) {
        routes = specs.map { spec in
            (
                spec.method,
                spec.path.split(separator: "/").map { $0.hasPrefix("{") ? nil : String($0) }
            )
        }
    }

    func matches(_ method: HTTPRequest.Method, _ path: String) -> Bool {
        let parts = path.split(separator: "/")
        return routes.contains { route in
            route.method == method && route.segments.count == parts.count
                && zip(route.segments, parts).allSatisfy { segment, part in segment.map { $0 == part } ?? true }
        }
    }
}

/// Sends a follower's requests to the leader over TLS, trusting only the internal CA that every replica
/// shares, and streams the answer back.
final class LeaderForwarder: Sendable {
    private let client: HTTPClient
    private let key: ForwardingKey
    private let leaderURL: @Sendable () -> String?

    init(caCertificatePEM: String, key: ForwardingKey, leaderURL: @escaping @Sendable () -> String?) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caCertificatePEM.utf8)))
        // Replicas share one CA, private to this control plane; a replica's certificate names the machine it
        // was first made on, so the chain, not the host name, is what identifies a replica.
        tls.certificateVerification = .noHostnameVerification
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        configuration.timeout = .init(connect: .seconds(3), read: .seconds(300))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.key = key
        self.leaderURL = leaderURL
    }

    private static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
        "x-caduceus-forwarded-for", "x-caduceus-replica-key",
    ]

    func forward(_ request: Request, context: APIContext) async throws -> Response {
        guard let base = leaderURL() else { throw Failure.noLeader }
        var outgoing = HTTPClientRequest(url: base + request.uri.description)
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.hopByHop.contains(field.name.canonicalName) {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        outgoing.headers.add(name: HTTPField.Name.forwardedFor.rawName, value: context.info.sourceAddress ?? "")
        outgoing.headers.add(name: HTTPField.Name.replicaKey.rawName, value: key.value)
        let length = request.headers[.contentLength].flatMap(Int64.init)
        if let length, length <= Self.collected {
            // A small body (every JSON request) goes whole: streaming it costs a hop per piece each way.
            if length > 0 { outgoing.body = .bytes(try await request.body.collect(upTo: Int(length))) }
        } else if request.method != .get && request.method != .head {
            outgoing.body = .stream(request.body, length: length.map { .known($0) } ?? .unknown)
        }
        let answer: HTTPClientResponse
        do {
            answer = try await client.execute(outgoing, timeout: .hours(1))
        } catch {
            throw Failure.leaderUnreachable(error)
        }
        var headers = HTTPFields()
        for header in answer.headers where !Self.hopByHop.contains(header.name.lowercased()) {
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
        }
        let status = HTTPResponse.Status(code: Int(answer.status.code))
        if let size = answer.headers.first(name: "content-length").flatMap(Int.init), size <= Self.collected {
            let body = try await answer.body.collect(upTo: size)
            return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: body))
        }
        return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: answer.body))
    }

    /// Bodies up to this size are forwarded whole; larger ones (uploads, downloads, logs) stream.
    static let collected: Int64 = 64 << 10

    func shutdown() async {
        try? await client.shutdown()
    }
}

extension HTTPField.Name {
    static let forwardedFor = HTTPField.Name("X-Caduceus-Forwarded-For")!
    static let replicaKey = HTTPField.Name("X-Caduceus-Replica-Key")!
}

extension Failure {
    static let noLeader = CaduceusError(
        code: "cluster.noLeader", message: "no replica of the control plane leads at the moment; try again shortly")

    static func leaderUnreachable(_ cause: any Error) -> CaduceusError {
        CaduceusError(
            code: "cluster.leaderUnreachable", message: "the leading replica does not answer; try again shortly",
            underlying: cause)
    }
}
