import AuditLog
import CaduceusCore
import ControlPlane
import HTTPTypes
import Hummingbird
import Identity
import Logging
import Synchronization

/// The outermost layer: gives every response the request ID and an error body, and audits every request
/// that no use case audited (unauthenticated, malformed, unknown route) before the response leaves.
/// If that append fails the response becomes a 503.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let plane: ControlPlane
    let logger: Logger
    let metrics: ServerMetrics
    /// Proof that a request was forwarded by another replica, whose `X-Caduceus-Forwarded-For` then names
    /// the client; nil when this control plane has one replica.
    let forwarding: ForwardingKey?

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        var context = context
        if let address = forwarding?.forwardedAddress(of: request) { context.info.sourceAddress = address }
        let requestID = context.info.requestID.rawValue
        let started = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            let apiError = APIError.from(error, requestID: requestID)
            if apiError.status.code >= 500 {
                logger.error("request failed", metadata: ["requestId": "\(requestID)", "error": "\(error)"])
            }
            response = try apiError.response(from: request, context: context)
        }
        // Liveness and readiness probes and the loopback metrics scrape touch no account and no tenant's
        // data; they are not audit events.
        let isProbe = request.uri.path == "/healthz" || request.uri.path == "/readyz" || request.uri.path == "/metrics"
        if !context.info.tracker.isAudited && !isProbe {
            var info = context.info
            info.principal = context.state.authenticated
            let outcome: AuditEvent.Outcome =
                switch response.status.code {
                case 200..<400: .success
                case 401, 403, 429: .denied
                default: .error
                }
            do {
                try await plane.recordUnhandled(
                    info, action: Self.action(request), outcome: outcome,
                    resourceType: "route", resourceID: Self.route(context))
            } catch {
                logger.error("audit append failed", metadata: ["requestId": "\(requestID)", "error": "\(error)"])
                response = try APIError.from(Failure.auditUnavailable(error), requestID: requestID)
                    .response(from: request, context: context)
            }
        }
        response.headers[.requestID] = requestID
        metrics.record(
            route: Self.route(context), status: Int(response.status.code), duration: ContinuousClock.now - started)
        return response
    }

    static func action(_ request: Request) -> String {
        "http." + request.method.rawValue.lowercased().filter { $0.isLetter }.prefix(16)
    }

    static func route(_ context: APIContext) -> String {
        guard let path = context.endpointPath else { return "unmatched" }
        // Endpoint paths are the router's patterns, a fixed set: each is cleaned once.
        if let known = routeNames.withLock({ $0[path] }) { return known }
        let name = routeName(path)
        routeNames.withLock { names in
            if names.count < 1024 { names[path] = name }
        }
        return name
    }

    /// A path as an audit resource ID: its segments joined by dots, only ID characters, at most 128.
    static func routeName(_ path: String) -> String {
        let cleaned = path.split(separator: "/").joined(separator: ".").filter {
            $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == ":" || $0 == "-" || $0 == "_")
        }
        let name = cleaned.drop { !($0.isLetter || $0.isNumber) }
        return name.isEmpty ? "root" : String(name.prefix(128))
    }

    /// Metric and audit names of the endpoint paths seen so far.
    private static let routeNames = Mutex<[String: String]>([:])
}

/// Resolves the bearer token to a principal; refuses, and rate-limits per source address, requests that
/// present none or a bad one.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let plane: ControlPlane
    let limiter: RateLimiter

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "), header.utf8.count < 256 else {
            try await throttle(context)
            throw Failure.unauthenticated()
        }
        let token = String(header.dropFirst(7))
        let principal: Principal
        do {
            principal = try await plane.authenticate(token)
        } catch {
            try await throttle(context)
            throw error
        }
        var context = context
        context.info.principal = principal
        context.bearer = token
        context.state.authenticated = principal
        return try await next(request, context)
    }

    func throttle(_ context: Context) async throws {
        try await RateLimit.enforce(limiter, context)
    }
}

/// Rate-limits unauthenticated log-in attempts per source address.
struct LoginThrottleMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let limiter: RateLimiter

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        try await RateLimit.enforce(limiter, context)
        return try await next(request, context)
    }
}

enum RateLimit {
    /// Refuses a request over the per-address limit; only the first refusal of a burst is audited.
    static func enforce(_ limiter: RateLimiter, _ context: APIContext) async throws {
        switch await limiter.check(context.info.sourceAddress ?? "unknown") {
        case .allowed: return
        case .refused: throw Failure.rateLimited
        case .refusedAgain:
            context.info.tracker.markAudited()
            throw Failure.rateLimited
        }
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}
