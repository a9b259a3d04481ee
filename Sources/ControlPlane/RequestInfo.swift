import AuditLog
import CaduceusCore
import Identity
import Logging
import Synchronization

/// What a use case knows about the request it serves: who (if anyone), from where, and its ID.
public struct RequestInfo: Sendable {
    /// The authenticated caller, nil before authentication.
    public var principal: Principal?
    /// The request's ID.
    public var requestID: RequestID
    /// The client's address.
    public var sourceAddress: String?
    /// Records whether the request has been audited yet, so that it is audited exactly once.
    public let tracker: AuditTracker

    /// Creates request information.
    public init(principal: Principal? = nil, requestID: RequestID = .generate(), sourceAddress: String? = nil) {
        self.principal = principal
        self.requestID = requestID
        self.sourceAddress = sourceAddress
        self.tracker = AuditTracker()
    }

    /// The caller, or an `auth.unauthenticated` error.
    public func requirePrincipal() throws -> Principal {
        guard let principal else { throw Failure.unauthenticated() }
        return principal
    }
}

/// Whether a request's audit event has been appended.
public final class AuditTracker: Sendable {
    private let audited = Mutex(false)

    /// Creates a tracker for a request not yet audited.
    public init() {}

    /// Marks the request audited.
    public func markAudited() { audited.withLock { $0 = true } }

    /// Whether the request has been audited.
    public var isAudited: Bool { audited.withLock { $0 } }
}
