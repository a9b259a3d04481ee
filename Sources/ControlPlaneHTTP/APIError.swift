import AuditLog
import CaduceusCore
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error response in the shape of ARCHITECTURE.md: `{"error": {"code", "message", "requestId"}}`.
public struct APIError: HTTPResponseError {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public var requestID: String?

    public init(status: HTTPResponse.Status, code: String, message: String, requestID: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.requestID = requestID
    }

    struct Body: Encodable {
        struct Inner: Encodable {
            var code: String
            var message: String
            var requestId: String?
        }
        var error: Inner
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = Body(error: .init(code: code, message: message, requestId: requestID))
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        if status == .tooManyRequests { headers[.retryAfter] = "1" }
        return Response(
            status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(body)))
        )
    }

    /// The status for each error code the use cases raise.
    static func status(for code: String) -> HTTPResponse.Status {
        switch code {
        case "auth.unauthenticated", "auth.invalidCredentials": .unauthorized
        case "auth.forbidden", "auth.passwordChangeRequired": .forbidden
        case "notFound": .notFound
        case "conflict", "store.conflict", "node.transition", "node.busy", "job.transition": .conflict
        case "job.infeasible", "input.digestMismatch": .unprocessableContent
        case "input.range": .rangeNotSatisfiable
        case "seal.integrity", "keys.unwrap", "keys.missing": .internalServerError
        case "rateLimited": .tooManyRequests
        case "audit.unavailable", "store.failure", "store.unavailable", "store.busy", "audit.closed", "audit.io",
            "cluster.noLeader", "cluster.leaderUnreachable":
            .serviceUnavailable
        default:
            code.hasPrefix("input.") || code.hasPrefix("identity.") || code.hasPrefix("breakglass.")
                || code.hasPrefix("config.") || code.hasPrefix("job.") || code.hasPrefix("quota.")
                || code.hasPrefix("node.") ? .badRequest : .internalServerError
        }
    }

    /// Turns any error into an API error.
    static func from(_ error: any Error, requestID: String) -> APIError {
        switch error {
        case let error as APIError:
            var copy = error
            copy.requestID = requestID
            return copy
        case let error as CaduceusError:
            let status = status(for: error.code)
            let message =
                status.code >= 500 && !error.code.hasPrefix("cluster.")
                ? "the service cannot complete this request now" : error.message
            return APIError(status: status, code: error.code, message: message, requestID: requestID)
        case is NIOTooManyBytesError:
            return APIError(
                status: .contentTooLarge, code: "input.tooLarge", message: "the body is over 1 MiB",
                requestID: requestID)
        case let error as HTTPError:
            return APIError(
                status: error.status, code: error.status == .notFound ? "notFound" : "input.invalid",
                message: error.body ?? (error.status == .notFound ? "no such route" : "the request is not valid"),
                requestID: requestID)
        case let error as any HTTPResponseError:
            return APIError(
                status: error.status, code: "input.invalid", message: "the request is not valid", requestID: requestID)
        default:
            return APIError(
                status: .internalServerError, code: "internal", message: "the service cannot complete this request now",
                requestID: requestID)
        }
    }
}
