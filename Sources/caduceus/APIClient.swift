import AsyncHTTPClient
import CaduceusCore
import ControlPlane
import Foundation
import Identity
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// Where the CLI keeps its log-in: server, CA certificate and session token (mode 0600).
struct LoginFile: Codable {
    var server: String
    var token: String
    var caCertificate: String?
    var user: String

    static var path: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["CADUCEUS_LOGIN_FILE"], !path.isEmpty { return path }
        let base =
            environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"] ?? ".") + "/.config"
        return base + "/caduceus/login.json"
    }

    static func load() -> LoginFile? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(LoginFile.self, from: data)
    }

    func save() throws {
        let folder = (Self.path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let temp = Self.path + ".tmp"
        guard
            FileManager.default.createFile(
                atPath: temp, contents: try encoder.encode(self), attributes: [.posixPermissions: 0o600])
        else { throw CLIError("cannot write \(temp)") }
        guard rename(temp, Self.path) == 0 else { throw CLIError("cannot write \(Self.path)") }
    }

    static func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// The API's error body.
private struct ErrorBody: Decodable {
    struct Inner: Decodable {
        var code: String
        var message: String
        var requestId: String?
    }
    var error: Inner
}

/// A JSON client of the Caduceus API over HTTPS, trusting the internal CA when given its certificate.
struct APIClient {
    let server: String
    let token: String?
    let http: HTTPClient

    init(server: String, token: String?, caCertificate: String?) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caCertificate {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caCertificate))
            } catch {
                throw CLIError("cannot read the CA certificate \(caCertificate)")
            }
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.token = token
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    struct Reply {
        var status: Int
        var body: Data
    }

    /// Sends a request; throws a one-line error for an error reply.
    func send(
        _ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<String>.none
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: server + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(body)))
        }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(60))
        } catch {
            throw CLIError("cannot reach \(server): \(error)")
        }
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let data = Data(buffer: bytes)
        guard (200..<300).contains(response.status.code) else {
            if let error = try? JSONDecoder().decode(ErrorBody.self, from: data) {
                throw CLIError("\(error.error.message) (\(response.status.code) \(error.error.code))")
            }
            throw CLIError("the server answered \(response.status.code)")
        }
        return Reply(status: Int(response.status.code), body: data)
    }

    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try decode(T.self, try await send(.GET, path))
    }

    func post<T: Decodable>(_ path: String, _ body: some Encodable, as type: T.Type) async throws -> T {
        try decode(T.self, try await send(.POST, path, body: body))
    }

    func decode<T: Decodable>(_ type: T.Type, _ reply: Reply) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: reply.body)
        } catch {
            throw CLIError("unexpected reply from the server: \(error)")
        }
    }
}
