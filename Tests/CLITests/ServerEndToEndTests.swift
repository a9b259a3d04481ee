import CaduceusCore
import Foundation
import Identity
import Testing

/// The README's path, end to end: the real server over real TLS, driven by the real CLI.
struct ServerEndToEndTests {
    static func code(secret: String, offset: Int64 = 0) -> String {
        let totp = TOTP(secret: Base32.decode(secret) ?? [])
        return totp.code(step: TOTP.step(at: SystemWallClock().now()) + offset)
    }

    static func secret(fromURI uri: String) -> String {
        String(uri.split(separator: "secret=")[1].prefix { $0 != "&" })
    }

    @Test("first start, bootstrap log-in, a researcher refused an admin action, idle log-off, and a verified audit log")
    func readmePath() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let data = scratch.path + "/data"
        let server = try TestServer(data: data, environment: ["CADUCEUS_IDLE_TIMEOUT_MINUTES": "1"])
        defer { server.stop() }
        #expect(server.startupText.contains("CA SHA-256 fingerprint: "))
        #expect(server.startupText.contains("bootstrap-admin.json"))
        let attributes = try FileManager.default.attributesOfItem(atPath: data + "/bootstrap-admin.json")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect((try FileManager.default.attributesOfItem(atPath: data)[.posixPermissions] as? Int) == 0o700)
        #expect(
            (try FileManager.default.attributesOfItem(atPath: data + "/keys/root.key")[.posixPermissions] as? Int)
                == 0o600)

        let bootstrap = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: data + "/bootstrap-admin.json")))
                as? [String: Any])
        let adminPassword = try #require(bootstrap["password"] as? String)
        let adminSecret = try #require(bootstrap["totpSecret"] as? String)
        let ca = data + "/tls/ca.pem"
        let admin = ["CADUCEUS_LOGIN_FILE": scratch.path + "/admin-login.json"]
        let rita = ["CADUCEUS_LOGIN_FILE": scratch.path + "/rita-login.json"]

        func run(_ args: [String], _ environment: [String: String], input: String = "") throws -> CLI.Result {
            try CLI.run(args, input: Data(input.utf8), environment: environment)
        }
        func json(_ result: CLI.Result) throws -> [String: Any] {
            #expect(result.status == 0, "\(result.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        }

        let login = try run(
            ["login", "--server", server.url, "--ca-cert", ca, "--user", "admin", "--password-stdin"], admin,
            input: "\(adminPassword)\n\(Self.code(secret: adminSecret))\n")
        #expect(login.status == 0, "\(login.stderr)")
        #expect(login.text.contains("must set a new password"))
        let loginFile = try FileManager.default.attributesOfItem(atPath: scratch.path + "/admin-login.json")
        #expect((loginFile[.posixPermissions] as? Int) == 0o600)
        #expect(try run(["tenant", "create", "st-marys"], admin).status != 0)
        #expect(
            try run(
                ["user", "password", "--password-stdin"], admin, input: "\(adminPassword)\nthe admin's new password\n"
            )
            .status == 0)

        let tenant = try json(try run(["tenant", "create", "st-marys", "--output", "json"], admin))
        let tenantID = try #require(tenant["id"] as? String)
        let project = try json(
            try run(["project", "create", "--tenant", tenantID, "radiology", "--output", "json"], admin))
        let projectID = try #require(project["id"] as? String)
        let created = try json(try run(["user", "create", "rita", "--output", "json"], admin))
        let ritaID = try #require((created["user"] as? [String: Any])?["id"] as? String)
        let ritaPassword = try #require(created["initialPassword"] as? String)
        let ritaSecret = Self.secret(fromURI: try #require(created["otpauthURI"] as? String))
        let grant = try run(
            ["role", "grant", ritaID, "researcher", "--scope", "project:\(tenantID)/\(projectID)"], admin)
        #expect(grant.status == 0, "\(grant.stderr)")

        let ritaLogin = try run(
            ["login", "--server", server.url, "--ca-cert", ca, "--user", "rita", "--password-stdin"], rita,
            input: "\(ritaPassword)\n\(Self.code(secret: ritaSecret))\n")
        #expect(ritaLogin.status == 0, "\(ritaLogin.stderr)")
        #expect(
            try run(["user", "password", "--password-stdin"], rita, input: "\(ritaPassword)\nrita's own password\n")
                .status == 0)
        let refused = try run(["user", "create", "eve"], rita)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("403"))
        let whoami = try run(["whoami", "--output", "json"], rita)
        #expect(whoami.status == 0, "\(whoami.stderr)")

        // Logged off after one idle minute.
        try await Task.sleep(for: .seconds(62))
        let expired = try run(["whoami"], rita)
        #expect(expired.status != 0)
        #expect(expired.stderr.contains("session has ended"))

        server.stop()
        // The logs are JSON lines, and no credential ever reaches them.
        let logLines = server.logText.split(separator: "\n")
        #expect(!logLines.isEmpty)
        for line in logLines {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "not JSON: \(line)")
        }
        for secret in [adminPassword, adminSecret, ritaPassword, ritaSecret, "the admin's new password"] {
            #expect(!server.logText.contains(secret))
        }
        let verify = try run(["audit", "verify", "--log", data + "/audit", "--vkey", data + "/keys/audit.vkey"], [:])
        #expect(verify.status == 0, "\(verify.stderr)")
        let events = try run(["audit", "export", "--log", data + "/audit", "--format", "jsonl"], [:]).text
            .split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        #expect(
            events.contains {
                $0["action"] as? String == "user.create" && $0["outcome"] as? String == "denied"
                    && ($0["actor"] as? [String: Any])?["id"] as? String == ritaID
            })
        #expect(
            events.contains {
                $0["action"] as? String == "session.create" && $0["sourceAddress"] as? String == "127.0.0.1"
            })
    }

    @Test(
        """
        the API listens with as many I/O threads as CADUCEUS_IO_THREADS says, and the audit committer runs at \
        CADUCEUS_AUDIT_COMMITTER_NICE; config show shows both
        """)
    func ioThreads() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let data = scratch.path + "/data"
        let automatic = try CLI.run(["config", "show", "--data-dir", data])
        #expect(automatic.status == 0 && automatic.text.contains("(automatic)"), "\(automatic.text)")
        #expect(
            automatic.text.split(separator: "\n").contains {
                $0.hasPrefix("auditCommitterNice ") && $0.hasSuffix(" -10")
            },
            "\(automatic.text)")
        for (variable, value) in [("CADUCEUS_IO_THREADS", "999"), ("CADUCEUS_AUDIT_COMMITTER_NICE", "5")] {
            let refused = try CLI.run(["config", "show", "--data-dir", data], environment: [variable: value])
            #expect(refused.status != 0 && refused.stderr.contains("must be"), "\(refused.stderr)")
        }
        for (count, nice) in [(1, -4), (3, 0)] {
            let server = try TestServer(
                data: data,
                environment: ["CADUCEUS_IO_THREADS": "\(count)", "CADUCEUS_AUDIT_COMMITTER_NICE": "\(nice)"])
            defer { server.stop() }
            // The API's event loops are the process's only `NIO-ELT-…` threads on SQLite.
            let tasks = "/proc/\(server.process.processIdentifier)/task"
            let threads = try FileManager.default.contentsOfDirectory(atPath: tasks).map { id in
                let read = { (file: String) in
                    (try? String(contentsOfFile: "\(tasks)/\(id)/\(file)", encoding: .utf8)) ?? ""
                }
                // `stat`'s nineteenth field is the nice value; the name before it, in parentheses, may hold spaces.
                let stat = read("stat")
                let fields = stat[(stat.range(of: ")", options: .backwards)?.upperBound ?? stat.startIndex)...]
                    .split(separator: " ")
                return (
                    id: Int(id) ?? 0, name: read("comm").trimmingCharacters(in: .newlines),
                    nice: fields.count > 16 ? Int(fields[16]) : nil
                )
            }
            #expect(threads.filter { $0.name.hasPrefix("NIO-ELT-") }.count == count, "\(threads)")
            // With CAP_SYS_NICE (bit 23 of the effective capabilities, which the server inherits) the committer
            // runs at the value asked for; without it, as the process does.
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let capabilities =
                status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
                .flatMap { UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) } ?? 0
            let main = threads.first { $0.id == Int(server.process.processIdentifier) }?.nice
            let committer = threads.filter { $0.name == "audit-commit" }
            let expected = capabilities & (1 << 23) != 0 ? min(Int(nice), main ?? 0) : main
            #expect(committer.count == 1 && committer[0].nice == expected, "\(threads)")
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            curl.arguments = ["curl", "-s", "-m", "5", "--cacert", data + "/tls/ca.pem", server.url + "/healthz"]
            let body = Pipe()
            curl.standardOutput = body
            try curl.run()
            let health = String(decoding: body.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            curl.waitUntilExit()
            #expect(health.contains("ok"), "\(health)")
        }
    }

    @Test("a restart keeps everything; plain HTTP and TLS below 1.2 get nothing")
    func restartAndTransport() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let data = scratch.path + "/data"
        let first = try TestServer(data: data)
        let fingerprint = first.startupText.split(separator: "\n").first { $0.hasPrefix("CA SHA-256") }
        let port = try #require(URL(string: first.url)?.port)

        let plain = Process()
        plain.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        plain.arguments = ["curl", "-s", "-m", "5", "http://127.0.0.1:\(port)/healthz"]
        let plainOut = Pipe()
        plain.standardOutput = plainOut
        plain.standardError = FileHandle.nullDevice
        try plain.run()
        let plainBody = plainOut.fileHandleForReading.readDataToEndOfFile()
        plain.waitUntilExit()
        #expect(plain.terminationStatus != 0)
        #expect(plainBody.isEmpty)

        let old = Process()
        old.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        old.arguments = [
            "curl", "-s", "-m", "5", "--tls-max", "1.1", "--cacert", data + "/tls/ca.pem", first.url + "/healthz",
        ]
        old.standardOutput = FileHandle.nullDevice
        old.standardError = FileHandle.nullDevice
        try old.run()
        old.waitUntilExit()
        #expect(old.terminationStatus != 0)

        let metrics = Process()
        metrics.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        metrics.arguments = [
            "curl", "-s", "-m", "5", "--cacert", data + "/tls/ca.pem", first.url + "/healthz", "-o", "/dev/null",
            "--next", "-s", "-m", "5", "--cacert", data + "/tls/ca.pem", first.url + "/metrics",
        ]
        let metricsOut = Pipe()
        metrics.standardOutput = metricsOut
        metrics.standardError = FileHandle.nullDevice
        try metrics.run()
        let exposition = String(decoding: metricsOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        metrics.waitUntilExit()
        #expect(exposition.contains("caduceus_http_requests_total"))
        #expect(exposition.contains("caduceus_audit_log_entries"))
        first.stop()

        let second = try TestServer(data: data)
        defer { second.stop() }
        #expect(!second.startupText.contains("bootstrap-admin.json"))
        #expect(second.startupText.split(separator: "\n").first { $0.hasPrefix("CA SHA-256") } == fingerprint)
    }
}
