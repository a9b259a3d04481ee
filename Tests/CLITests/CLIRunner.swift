import CaduceusCore
import Foundation

/// Runs the real `caduceus` executable built beside the test bundle.
enum CLI {
    static let executable: URL = {
        let me =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var folder = URL(fileURLWithPath: me).deletingLastPathComponent()
        // On some platforms the test binary sits inside a bundle folder; walk up to the products folder.
        while !FileManager.default.fileExists(atPath: folder.appendingPathComponent("caduceus").path),
            folder.path != "/"
        {
            folder.deleteLastPathComponent()
        }
        return folder.appendingPathComponent("caduceus")
    }()

    struct Result {
        var status: Int32
        var stdout: Data
        var stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Runs `caduceus args…` with `input` on standard input and waits for it.
    @discardableResult
    static func run(_ args: [String], input: Data = Data(), environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = args
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        signal(SIGPIPE, SIG_IGN)
        try process.run()
        let out = Collector(stdout.fileHandleForReading)
        let err = Collector(stderr.fileHandleForReading)
        try? stdin.fileHandleForWriting.write(contentsOf: input)
        try? stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        let errorText = String(decoding: err.finish(), as: UTF8.self)
        return Result(status: process.terminationStatus, stdout: out.finish(), stderr: errorText)
    }
}
/// Collects a pipe's output on a thread of its own until end of file.
final class Collector: @unchecked Sendable {
    // Safe: `data` is touched only with `lock` held.
    private let lock = NSLock()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lock.withLock { data.append(chunk) }
            }
            done.signal()
        }.start()
    }

    var snapshot: Data { lock.withLock { data } }

    func finish() -> Data {
        done.wait()
        return snapshot
    }
}

/// A fresh directory for one test.
struct Scratch {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.path + "/caduceus-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

/// A JSON line for `audit append`.
func eventLine(_ n: Int, details: Bool = false) -> String {
    let base =
        #"{"actor":{"id":"usr-\#(n % 9)","type":"user"},"action":"dataset.object.read","resource":{"type":"dataset","id":"ds-\#(n % 4)"},"outcome":"success","tenant":"tnt-a","purposeOfUse":"TREAT","requestId":"req-\#(n)","sourceAddress":"127.0.0.1","id":"evt-\#(n)""#
    return base + (details ? #","details":{"patientMrn":"MRN-\#(n)"}}"# : "}")
}

/// A running `caduceus serve` on a free port.
final class TestServer {
    let process = Process()
    let data: String
    let url: String
    let output: Collector
    let errors: Collector

    init(data: String, environment: [String: String] = [:], arguments: [String] = []) throws {
        self.data = data
        process.executableURL = CLI.executable
        process.arguments =
            ["serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        output = Collector(stdout.fileHandleForReading)
        errors = Collector(stderr.fileHandleForReading)
        let deadline = Date().addingTimeInterval(60)
        var found: String?
        while found == nil && Date() < deadline && process.isRunning {
            let text = String(decoding: output.snapshot, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Caduceus is listening on ") }) {
                found = String(line.dropFirst("Caduceus is listening on ".count))
            } else {
                usleep(50_000)
            }
        }
        guard let found else {
            process.terminate()
            throw CaduceusError(code: "test", message: "the server did not start")
        }
        url = found
    }

    var startupText: String { String(decoding: output.snapshot, as: UTF8.self) }

    /// The port node agents connect to, once the server printed it.
    func agentPort() throws -> Int {
        let deadline = Date().addingTimeInterval(30)
        let prefix = "Node agents connect on port "
        while Date() < deadline {
            if let line = startupText.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }),
                let port = Int(line.dropFirst(prefix.count).prefix { $0.isNumber })
            {
                return port
            }
            usleep(50_000)
        }
        throw CaduceusError(code: "test", message: "the server printed no agent port")
    }

    /// GET `path` on the server with curl, trusting its CA: (status, body).
    func get(_ path: String) throws -> (Int, String) {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = [
            "curl", "-s", "-m", "10", "--cacert", data + "/tls/ca.pem", "-w", "\n%{http_code}", url + path,
        ]
        let out = Pipe()
        curl.standardOutput = out
        try curl.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        curl.waitUntilExit()
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    /// What the server has logged so far (JSON lines).
    var logText: String { String(decoding: errors.snapshot, as: UTF8.self) }

    /// Kills the server at once (SIGKILL), as a crash would.
    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}
