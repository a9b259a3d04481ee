import AsyncHTTPClient
import CaduceusCore
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Streaming uploads and downloads of dataset objects.
extension APIClient {
    /// Streams the file at `path` to `PUT urlPath`, declaring its length and SHA-256 (computed first, so that
    /// the server can refuse anything that arrives altered).
    func upload(_ urlPath: String, file path: String, headers extra: [(String, String)]) async throws -> Reply {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("cannot read \(path)") }
        defer { try? handle.close() }
        var digest = SHA256()
        var length = 0
        while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty {
            digest.update(data: piece)
            length += piece.count
        }
        try handle.seek(toOffset: 0)
        var request = HTTPClientRequest(url: server + urlPath)
        request.method = .PUT
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.headers.add(
            name: "X-Caduceus-SHA256", value: digest.finalize().map { String(format: "%02x", $0) }.joined())
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        let pieces = AsyncThrowingStream<ByteBuffer, any Error> { continuation in
            while true {
                do {
                    guard let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty else { break }
                    continuation.yield(ByteBuffer(data: piece))
                } catch {
                    continuation.finish(throwing: error)
                    return
                }
            }
            continuation.finish()
        }
        request.body = .stream(pieces, length: .known(Int64(length)))
        return try await finish(try await execute(request, timeout: .hours(24)))
    }

    /// Streams `GET urlPath` (with an optional byte range) into `output`, written under a temporary name and
    /// renamed once complete; returns the bytes written and the object's SHA-256 as the server names it.
    func download(_ urlPath: String, to output: String, range: String?) async throws -> (Int, String?) {
        var request = HTTPClientRequest(url: server + urlPath)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let range { request.headers.add(name: "Range", value: "bytes=" + range) }
        let response = try await execute(request, timeout: .hours(24))
        guard (200..<300).contains(response.status.code) else {
            _ = try await finish(response)
            throw CLIError("the server answered \(response.status.code)")
        }
        let temporary = output + ".partial"
        guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forWritingAtPath: temporary)
        else { throw CLIError("cannot write \(temporary)") }
        var written = 0
        do {
            for try await buffer in response.body {
                try handle.write(contentsOf: buffer.readableBytesView)
                written += buffer.readableBytes
            }
            let expected = response.headers.first(name: "Content-Length").flatMap { Int($0) }
            guard expected == nil || expected == written else {
                throw CLIError("the download ended after \(written) bytes; nothing was kept")
            }
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            unlink(temporary)
            throw error
        }
        guard rename(temporary, output) == 0 else { throw CLIError("cannot write \(output)") }
        let etag = response.headers.first(name: "ETag").map { $0.replacingOccurrences(of: "\"", with: "") }
        return (written, etag.flatMap { $0.hasPrefix("sha256:") ? String($0.dropFirst(7)) : nil })
    }

    private func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        do {
            return try await http.execute(request, timeout: timeout)
        } catch {
            throw CLIError("cannot reach \(server): \(error)")
        }
    }

    /// The reply of a finished request; throws a one-line error for an error reply.
    private func finish(_ response: HTTPClientResponse) async throws -> Reply {
        let data = Data(buffer: try await response.body.collect(upTo: 16 << 20))
        guard (200..<300).contains(response.status.code) else {
            if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let error = object["error"] as? [String: Any], let message = error["message"] as? String
            {
                throw CLIError("\(message) (\(response.status.code) \(error["code"] as? String ?? ""))")
            }
            throw CLIError("the server answered \(response.status.code)")
        }
        return Reply(status: Int(response.status.code), body: data)
    }
}
