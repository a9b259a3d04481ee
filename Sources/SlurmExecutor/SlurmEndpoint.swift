import CaduceusCore
import Foundation

/// Where slurmrestd answers and how Caduceus proves who it is there.
///
/// - `unix:/run/slurmrestd.sock`: local authentication over a unix socket (`rest_auth/local`); slurmrestd
///   takes the caller's user from the socket.
/// - `https://host:6820` (or `http://` on loopback only): JWT authentication (`rest_auth/jwt`), with the
///   `X-SLURM-USER-NAME` and `X-SLURM-USER-TOKEN` headers; the token is read from a file at each request,
///   so that a rotated token is picked up without a restart.
public struct SlurmEndpoint: Sendable, Equatable, CustomStringConvertible {
    public enum Transport: Sendable, Equatable {
        case unixSocket(path: String)
        case http(baseURL: String)
    }

    public var transport: Transport
    /// The Slurm user the JWT belongs to (JWT only).
    public var userName: String?
    /// The file holding the JWT (JWT only).
    public var tokenFile: String?
    /// The CA certificate (PEM) that signed slurmrestd's TLS certificate, when not one of the system's.
    public var caCertificateFile: String?
    /// Seconds a request may take before slurmrestd counts as unavailable.
    public var timeoutSeconds: Int = 10

    /// Parses `unix:/path` or an `https://` URL; an `http://` URL only for a loopback host (no token on the
    /// network in clear).
    public init(
        _ text: String, userName: String? = nil, tokenFile: String? = nil, caCertificateFile: String? = nil
    ) throws {
        func invalid(_ why: String) -> CaduceusError {
            CaduceusError(code: "config.slurm", message: "the slurmrestd address is not usable: \(why)")
        }
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard path.hasPrefix("/") else { throw invalid("unix: takes an absolute socket path") }
            transport = .unixSocket(path: path)
        } else if let url = URLComponents(string: text), let scheme = url.scheme, let host = url.host, !host.isEmpty {
            guard scheme == "https" || (scheme == "http" && ["127.0.0.1", "localhost", "::1"].contains(host)) else {
                throw invalid("use https:// (http:// only on this machine's loopback)")
            }
            guard userName != nil, tokenFile != nil else {
                throw invalid("JWT over \(scheme) needs slurmUser and slurmTokenFile")
            }
            transport = .http(baseURL: text.hasSuffix("/") ? String(text.dropLast()) : text)
        } else {
            throw invalid("expected unix:/path/to/slurmrestd.sock or https://host:port")
        }
        self.userName = userName
        self.tokenFile = tokenFile
        self.caCertificateFile = caCertificateFile
    }

    public var description: String {
        switch transport {
        case .unixSocket(let path): "unix:\(path) (local auth)"
        case .http(let base): "\(base) (JWT as \(userName ?? "?"))"
        }
    }
}
