import AuditLog
import CaduceusCore

/// The errors use cases raise, by code. The HTTP layer maps each code to a status; the CLI prints the message.
public enum Failure {
    public static func unauthenticated(_ message: String = "authentication required") -> CaduceusError {
        CaduceusError(code: "auth.unauthenticated", message: message)
    }

    /// The one answer to a failed log-in, whichever factor was wrong (or the account locked or disabled).
    public static let invalidCredentials = CaduceusError(
        code: "auth.invalidCredentials", message: "the user name, password or one-time code is not valid")

    public static func forbidden(_ message: String = "you are not allowed to do that") -> CaduceusError {
        CaduceusError(code: "auth.forbidden", message: message)
    }

    public static let passwordChangeRequired = CaduceusError(
        code: "auth.passwordChangeRequired", message: "set a new password first (POST /v1/me/password)")

    public static func invalid(_ message: String) -> CaduceusError {
        CaduceusError(code: "input.invalid", message: message)
    }

    public static func notFound(_ what: String) -> CaduceusError {
        CaduceusError(code: "notFound", message: "\(what) not found")
    }

    public static func conflict(_ message: String) -> CaduceusError {
        CaduceusError(code: "conflict", message: message)
    }

    public static let rateLimited = CaduceusError(
        code: "rateLimited", message: "too many requests from this address; slow down")

    public static func auditUnavailable(_ cause: any Error) -> CaduceusError {
        CaduceusError(
            code: "audit.unavailable", message: "the audit trail cannot record this request, so it was not carried out",
            underlying: cause)
    }
}
