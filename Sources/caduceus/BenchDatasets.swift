import AsyncHTTPClient
import CaduceusCore
import ControlPlane
import ControlPlaneHTTP
import Foundation
import Identity
import Logging
import NIOCore
import NIOHTTP1
import Sealing

/// The parts of `bench seal` that go through a real server: KEK rotation over many datasets, HTTPS upload and
/// download rates, and peak memory while a large object is uploaded.
enum BenchDatasets {
    struct Figures {
        var datasets: Int
        var rotationSeconds: Double
        var uploadBytes: Int
        var uploadMBps: Double
        var downloadMBps: Double
        var peakResidentMiBDuringUpload: Double
        /// This machine's rate of writing a file of the same size and syncing it, the floor under any upload.
        var diskWriteMBps: Double
    }

    static func run(datasets count: Int, uploadBytes: Int, directory: String) async throws -> Figures {
        let data = directory + "/caduceus-bench-datasets-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: data) }
        let configuration = try ServerConfiguration.resolve(
            file: nil,
            overrides: [
                "dataDirectory": data, "listen": "127.0.0.1:0", "agentListen": "off", "lifecycleIntervalMinutes": "0",
            ])
        var logger = Logger(label: "caduceus.bench")
        logger.logLevel = .warning
        let quiet = logger
        let (started, continuation) = AsyncStream.makeStream(of: CaduceusServer.Started.self)
        let server = Task {
            try await CaduceusServer.run(configuration: configuration, logger: quiet) { continuation.yield($0) }
        }
        defer { server.cancel() }
        var iterator = started.makeAsyncIterator()
        guard let info = await iterator.next() else { throw CLIError("the server did not start") }

        let admin = try APIClient(
            server: info.url,
            token: try await BenchAPI.adminSession(
                url: info.url, caCertificate: info.caCertificatePath, bootstrapFile: info.bootstrapFile),
            caCertificate: info.caCertificatePath)
        defer { Task { await admin.shutdown() } }
        let tenant = try await admin.post("/v1/tenants", CreateTenantRequest(name: "bench"), as: TenantView.self)
        let project = try await admin.post(
            "/v1/projects", CreateProjectRequest(tenant: tenant.id, name: "bench"), as: ProjectView.self)
        let researcher = try await session(
            info, admin, "rhea", .researcher, .project(tenant.id, project.id))
        let tenantAdmin = try await session(info, admin, "tess", .tenantAdmin, .tenant(tenant.id))
        defer {
            Task {
                await researcher.shutdown()
                await tenantAdmin.shutdown()
            }
        }

        // Many datasets, each with its data key, created sixteen at a time.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                if index >= 16 { try await group.next() }
                group.addTask {
                    _ = try await researcher.post(
                        "/v1/datasets",
                        CreateDatasetRequest(
                            project: project.id, name: "d\(index)", classification: .phi,
                            residency: Residency(rawValue: "US")!, retentionYears: 1), as: DatasetView.self)
                }
            }
            try await group.waitForAll()
        }
        let rotation = try await tenantAdmin.post(
            "/v1/keys/\(tenant.id)/rotate", [String: String](), as: KeyRotationView.self)
        guard rotation.rewrapped == count else { throw CLIError("the rotation re-wrapped \(rotation.rewrapped) keys") }

        var figures = Figures(
            datasets: count, rotationSeconds: rotation.seconds, uploadBytes: uploadBytes, uploadMBps: 0,
            downloadMBps: 0, peakResidentMiBDuringUpload: 0, diskWriteMBps: 0)
        guard uploadBytes > 0 else { return figures }
        let target = try await researcher.post(
            "/v1/datasets",
            CreateDatasetRequest(
                project: project.id, name: "large", classification: .phi, residency: Residency(rawValue: "US")!,
                retentionYears: 1), as: DatasetView.self)
        figures.diskWriteMBps = try diskWriteRate(bytes: uploadBytes, in: data)
        let path = info.url + "/v1/datasets/\(target.id)/objects/large.bin"
        // curl, in its own process, sends and fetches the object: this process's peak memory is the server's.
        guard let curl = BenchAPI.which("curl") else {
            throw CLIError("curl is not installed: apt-get install -y curl")
        }
        let common =
            "'\(curl)' -sS --fail --cacert '\(info.caCertificatePath)' -H 'Authorization: Bearer \(researcher.token ?? "")'"
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        let sent = ContinuousClock.now
        try shell(
            "head -c \(uploadBytes) /dev/zero | \(common) -T - -H 'X-Caduceus-Length: \(uploadBytes)' "
                + "-H 'Content-Type: application/octet-stream' '\(path)'")
        figures.uploadMBps = Double(uploadBytes) / seconds(since: sent) / 1e6
        figures.peakResidentMiBDuringUpload = peakResidentMiB()
        let fetched = ContinuousClock.now
        let received = try shell("\(common) -o /dev/null -w '%{size_download}' '\(path)'")
        guard Int(received) == uploadBytes else { throw CLIError("the download returned \(received) bytes") }
        figures.downloadMBps = Double(uploadBytes) / seconds(since: fetched) / 1e6
        return figures
    }

    /// A person with `role` in `scope`, logged in with a password of their own.
    static func session(
        _ info: CaduceusServer.Started, _ admin: APIClient, _ name: String, _ role: Role, _ scope: Scope
    ) async throws -> APIClient {
        let created = try await admin.post("/v1/users", CreateUserRequest(name: name), as: CreateUserResponse.self)
        _ = try await admin.send(
            .POST, "/v1/role-bindings", body: GrantRoleRequest(user: created.user.id, role: role, scope: scope))
        guard let password = created.initialPassword, let uri = created.otpauthURI,
            let secret = uri.split(separator: "secret=").last?.prefix(while: { $0 != "&" })
        else { throw CLIError("no initial credentials") }
        let totp = TOTP(secret: Base32.decode(String(secret)) ?? [])
        let now = TOTP.step(at: SystemWallClock().now())
        let anonymous = try APIClient(server: info.url, token: nil, caCertificate: info.caCertificatePath)
        defer { Task { await anonymous.shutdown() } }
        let first = try await anonymous.post(
            "/v1/sessions", LoginRequest(user: name, password: password, code: totp.code(step: now)),
            as: LoginResponse.self)
        let changing = try APIClient(server: info.url, token: first.token, caCertificate: info.caCertificatePath)
        _ = try await changing.send(
            .POST, "/v1/me/password",
            body: ChangePasswordRequest(currentPassword: password, newPassword: "\(name) benchmark password"))
        await changing.shutdown()
        let second = try await anonymous.post(
            "/v1/sessions",
            LoginRequest(user: name, password: "\(name) benchmark password", code: totp.code(step: now + 1)),
            as: LoginResponse.self)
        return try APIClient(server: info.url, token: second.token, caCertificate: info.caCertificatePath)
    }

    /// Bytes per second (in MB) of writing `bytes` to a new file in `directory` in 1 MiB writes, then fsync.
    static func diskWriteRate(bytes: Int, in directory: String) throws -> Double {
        let path = directory + "/disk-reference"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CLIError("cannot write \(path)") }
        defer {
            close(fd)
            unlink(path)
        }
        let buffer = [UInt8](repeating: 0xA5, count: 1 << 20)
        let started = ContinuousClock.now
        var written = 0
        while written < bytes {
            let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress, min($0.count, bytes - written)) }
            guard n > 0 else { throw CLIError("cannot write \(path)") }
            written += n
        }
        fsync(fd)
        return Double(bytes) / seconds(since: started) / 1e6
    }

    /// Runs a shell command; returns its standard output, or throws with its standard error.
    @discardableResult
    static func shell(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-o", "pipefail", "-c", command]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CLIError(
                "a benchmark step failed (status \(process.terminationStatus)): \(command.prefix(80))… "
                    + String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) + text)
        }
        return text
    }

    /// The process's peak resident memory (VmHWM) in MiB.
    static func peakResidentMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kib / 1024
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
