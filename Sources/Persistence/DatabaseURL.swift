import CaduceusCore
import Foundation
import NIOSSL
import PostgresNIO

/// Where the metadata database lives: `postgres://user:password@host:port/database?sslmode=…`.
///
/// Query parameters, named as libpq names them:
/// - `sslmode`: `disable`, `require` (encrypted; the chain is checked when `sslrootcert` is given),
///   `verify-ca` (chain checked) or `verify-full` (chain and host name checked). The default is `verify-full`,
///   or `disable` when the host is this machine's loopback.
/// - `sslrootcert`: the PEM file of the CA that signed the server's certificate (default: the system's roots).
/// - `sslcert`, `sslkey`: a client certificate and key, for servers that require one.
/// - `pool`: how many connections this process opens at most for its stores (default 16); a write holds one
///   until its audit event is durable.
/// - `connect_timeout`: seconds to wait for a connection (default 5).
///
/// The password may also come from the `PGPASSWORD` environment variable. `redacted` is the form that
/// may be shown or logged: never the password.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    public var sslRootCertificate: String?
    public var sslCertificate: String?
    public var sslKey: String?
    public var poolSize: Int
    public var connectTimeoutSeconds: Int

    /// Parses `text`; throws `config.database` naming what is wrong (never echoing the password).
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        func invalid(_ why: String) -> CaduceusError {
            CaduceusError(code: "config.database", message: "the database URL is not usable: \(why)")
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme else {
            throw invalid("expected postgres://user:password@host:port/database")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw invalid("the scheme must be postgres:// (SQLite needs no URL: it is the default)")
        }
        guard let host = components.host, !host.isEmpty else { throw invalid("no host") }
        guard let user = components.user, !user.isEmpty else { throw invalid("no user name") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw invalid("no database name after the host") }
        self.host = host
        self.port = components.port ?? 5432
        self.user = user.removingPercentEncoding ?? user
        self.password = components.password.map { $0.removingPercentEncoding ?? $0 } ?? environment["PGPASSWORD"]
        self.database = database
        self.sslRootCertificate = nil
        self.sslCertificate = nil
        self.sslKey = nil
        self.poolSize = 16
        self.connectTimeoutSeconds = 5
        let loopback = ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host)
        self.sslMode = loopback ? .disable : .verifyFull
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    throw invalid(
                        "sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")), not \(value)"
                    )
                }
                sslMode = mode
            case "sslrootcert": sslRootCertificate = value
            case "sslcert": sslCertificate = value
            case "sslkey": sslKey = value
            case "pool":
                guard let size = Int(value), (1...256).contains(size) else { throw invalid("pool must be 1–256") }
                poolSize = size
            case "connect_timeout":
                guard let seconds = Int(value), (1...300).contains(seconds) else {
                    throw invalid("connect_timeout must be 1–300 seconds")
                }
                connectTimeoutSeconds = seconds
            default: throw invalid("unknown parameter \(item.name)")
            }
        }
        if (sslCertificate == nil) != (sslKey == nil) { throw invalid("sslcert and sslkey go together") }
    }

    /// The URL with the password masked: safe to show and to log.
    public var redacted: String {
        var text = "postgres://\(user)\(password == nil ? "" : ":********")@\(host):\(port)/\(database)"
        var query = ["sslmode=\(sslMode.rawValue)"]
        if let sslRootCertificate { query.append("sslrootcert=\(sslRootCertificate)") }
        if let sslCertificate { query.append("sslcert=\(sslCertificate)") }
        if let sslKey { query.append("sslkey=\(sslKey)") }
        query.append("pool=\(poolSize)")
        text += "?" + query.joined(separator: "&")
        return text
    }

    public var description: String { redacted }

    /// The connection settings for PostgresNIO, TLS included.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: try tls())
        configuration.options.connectTimeout = .seconds(Int64(connectTimeoutSeconds))
        return configuration
    }

    private func tls() throws -> PostgresConnection.Configuration.TLS {
        if sslMode == .disable { return .disable }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let sslRootCertificate { tls.trustRoots = .file(sslRootCertificate) }
        switch sslMode {
        case .disable: break
        case .require: tls.certificateVerification = sslRootCertificate == nil ? .none : .noHostnameVerification
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        do {
            if let sslCertificate, let sslKey {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(sslCertificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: sslKey, format: .pem))
            }
            return .require(try NIOSSLContext(configuration: tls))
        } catch {
            throw CaduceusError(
                code: "config.database", message: "cannot load the database TLS files: \(error)", underlying: error)
        }
    }
}
