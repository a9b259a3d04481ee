import AuditLog
import CaduceusCore
import ControlPlane
import HTTPTypes
import Hummingbird
import Identity
import NIOCore
import Synchronization

/// Per-request state shared by the middleware layers (the context itself is copied between them).
public final class RequestState: Sendable {
    private let principal = Mutex<Principal?>(nil)

    init() {}

    var authenticated: Principal? {
        get { principal.withLock { $0 } }
        set { principal.withLock { $0 = newValue } }
    }
}

/// The request context of the API: the client's address, the request's ID, and who is calling.
public struct APIContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP peer.
    public let remoteAddress: SocketAddress?
    /// What use cases see of the request.
    public var info: RequestInfo
    /// State that middleware layers share.
    public let state: RequestState
    /// The bearer token presented, if any.
    public var bearer: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        info = RequestInfo(sourceAddress: remoteAddress?.ipAddress)
        state = RequestState()
        bearer = nil
    }

    /// Bodies are read with an explicit 1 MiB limit; this bounds `request.decode` too.
    public var maxUploadSize: Int { 1 << 20 }
}
