import AsyncHTTPClient
import CaduceusCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// An error reply from the control plane, or no reply at all.
public struct AgentError: Error, CustomStringConvertible {
    /// The HTTP status (0: the control plane could not be reached).
    public var status: Int
    public var description: String

    init(status: Int, _ description: String) {
        self.status = status
        self.description = description
    }
}

/// A JSON client of the control plane over HTTPS: trusting only the internal CA, and presenting the node's
/// certificate when it has one.
final class AgentConnection: Sendable {
    let base: String
    let http: HTTPClient

    /// `identity`: the certificate chain and key (PEM) to present; nil before enrolment. `trust`: the CA
    /// certificate (PEM) the server must chain to; nil only to fetch that certificate before enrolment.
    init(base: String, trust caPEM: String?, identity: (chain: String, key: String)?) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caPEM {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        } else {
            // Only the CA certificate is fetched this way, and it is checked against the join token's digest.
            tls.certificateVerification = .none
        }
        if let identity {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(identity.chain.utf8)).map {
                .certificate($0)
            }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.key.utf8), format: .pem))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10))
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    /// Sends a request and returns the body of a 2xx reply; throws `AgentError` otherwise.
    func send(
        _ method: HTTPMethod, _ path: String, json: (some Encodable)? = Optional<String>.none, raw: [UInt8]? = nil,
        timeout: TimeAmount = .seconds(30)
    ) async throws -> Data {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(json)))
        } else if let raw {
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            request.body = .bytes(ByteBuffer(bytes: raw))
        }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: timeout)
        } catch {
            throw AgentError(status: 0, "cannot reach \(base): \(error)")
        }
        let data = Data(buffer: try await response.body.collect(upTo: 8 << 20))
        guard (200..<300).contains(response.status.code) else {
            let message = (try? JSONDecoder().decode(ErrorReply.self, from: data))?.error.message ?? "no details"
            throw AgentError(status: Int(response.status.code), "\(message) (\(response.status.code))")
        }
        return data
    }

    /// Streams the body of `GET path` to `sink`; throws unless the whole body arrived.
    func stream(_ path: String, sink: ([UInt8]) async throws -> Void) async throws {
        var request = HTTPClientRequest(url: base + path)
        request.method = .GET
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .hours(6))
        } catch {
            throw AgentError(status: 0, "cannot reach \(base): \(error)")
        }
        guard (200..<300).contains(response.status.code) else {
            let data = Data(buffer: try await response.body.collect(upTo: 1 << 20))
            let message = (try? JSONDecoder().decode(ErrorReply.self, from: data))?.error.message ?? "no details"
            throw AgentError(status: Int(response.status.code), "\(message) (\(response.status.code))")
        }
        let expected = response.headers.first(name: "Content-Length").flatMap { Int($0) }
        var received = 0
        for try await buffer in response.body {
            received += buffer.readableBytes
            try await sink(Array(buffer.readableBytesView))
        }
        guard expected == nil || expected == received else {
            throw AgentError(status: 0, "\(path) ended after \(received) bytes")
        }
    }

    func post<T: Decodable>(
        _ path: String, _ body: some Encodable, as type: T.Type, timeout: TimeAmount = .seconds(30)
    ) async throws -> T {
        let data = try await send(.POST, path, json: body, timeout: timeout)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw AgentError(status: 200, "unexpected reply from \(base)\(path)")
        }
    }

    private struct ErrorReply: Decodable {
        struct Inner: Decodable { var message: String }
        var error: Inner
    }
}
