/// An error raised anywhere in Caduceus: an opaque code, a message for people, and the underlying cause.
///
/// Codes are stable strings (`"audit.entryTooLarge"`) that callers and the API may match on; new codes can
/// be added without breaking anyone, which an enum could not promise.
public struct CaduceusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, dotted identifier of the kind of failure.
    public var code: String
    /// A one-line explanation for the person who reads it.
    public var message: String
    /// The error that caused this one, described, if any.
    public var underlying: String?

    /// Creates an error with a code, a message and optionally the error that caused it.
    public init(code: String, message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying.map { String(describing: $0) }
    }

    public var description: String {
        if let underlying { return "\(message) (\(underlying))" }
        return message
    }
}
