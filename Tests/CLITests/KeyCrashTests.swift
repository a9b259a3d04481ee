import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing

/// Kills the server with SIGKILL during KEK rotations and shreddings and checks that each happened whole or
/// not at all, and that everything not shredded still decrypts.
struct KeyCrashTests {
    struct Login: Decodable {
        var token: String
    }

    /// Creates `count` datasets through the API, sixteen at a time, as the person of `loginFile`.
    func createDatasets(_ count: Int, project: String, server: TestServer, loginFile: String) async throws {
        let token = try JSONDecoder().decode(Login.self, from: Data(contentsOf: URL(fileURLWithPath: loginFile))).token
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(server.data + "/tls/ca.pem"))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        let url = server.url + "/v1/datasets"
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<count {
                    if index >= 16 { try await group.next() }
                    group.addTask {
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        request.headers.add(name: "Authorization", value: "Bearer \(token)")
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.body = .bytes(
                            ByteBuffer(
                                string:
                                    #"{"project":"\#(project)","name":"bulk-\#(index)","classification":"phi","residency":"US","retentionYears":0}"#
                            ))
                        let response = try await client.execute(request, timeout: .seconds(60))
                        #expect(response.status == .created)
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    @Test("SIGKILL during rotations and shreddings: each is whole or absent, and what remains decrypts")
    func killDuringRotationAndShredding() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let data = scratch.path + "/data"
        var server = try TestServer(data: data)
        defer { server.stop() }
        var session = CLISession(scratch: scratch, server: server)
        let (tenant, project) = try session.tenantWithResearcherAndAdmin()
        try await createDatasets(1500, project: project, server: server, loginFile: scratch.path + "/rita.json")
        // Three datasets with an object each, retention 0: shreddable at once.
        var kept: [String: String] = [:]
        for round in 0..<3 {
            let dataset = try session.id(
                [
                    "dataset", "create", "--project", project, "--classification", "phi", "--residency", "US",
                    "--retention-years", "0", "shreddable-\(round)",
                ], as: "rita")
            let file = scratch.path + "/object-\(round)"
            try Data((0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &+ round) }).write(
                to: URL(fileURLWithPath: file))
            _ = try session.json(["dataset", "upload", dataset, file, "--name", "scan"], as: "rita")
            kept[dataset] = file
        }

        for (round, dataset) in kept.keys.sorted().enumerated() {
            // A rotation and a shredding race the kill.
            var processes: [Process] = []
            for args in [["key", "rotate", "--tenant", tenant], ["dataset", "shred", dataset]] {
                let process = Process()
                process.executableURL = CLI.executable
                process.arguments = args
                process.environment = ProcessInfo.processInfo.environment.merging([
                    "CADUCEUS_LOGIN_FILE": scratch.path + "/tara.json", "CADUCEUS_SERVER": server.url,
                ]) { $1 }
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                processes.append(process)
            }
            usleep(UInt32.random(in: 150_000...450_000) + UInt32(round) * 50_000)
            server.kill()
            for process in processes { process.waitUntilExit() }
            server = try TestServer(data: data)
            session = CLISession(scratch: scratch, server: server)

            // Every data key is wrapped by one KEK version: a rotation happened whole or not at all.
            let status = try session.json(["key", "status", "--tenant", tenant], as: "tara")
            let versions = try #require(status["versions"] as? [[String: Any]])
            let holding = versions.filter { ($0["dataKeys"] as? Int ?? 0) > 0 }
            #expect(holding.count == 1 && holding.first?["current"] as? Bool == true, "round \(round): \(versions)")
            // A dataset is shredded whole (no object, no file, a certificate) or not at all (its object opens).
            for (other, file) in kept {
                let shown = try session.json(["dataset", "show", other], as: "rita")
                let objects = try session.json(["dataset", "objects", other], as: "rita")["items"] as? [[String: Any]]
                let files = (FileManager.default.enumerator(atPath: data + "/objects")?.allObjects as? [String] ?? [])
                    .filter { $0.contains(other + "/obj-") }
                if shown["shreddedAt"] != nil {
                    #expect(objects?.isEmpty == true && files.isEmpty, "\(other): \(files)")
                    #expect(try session.run(["dataset", "certificate", other], as: "rita").text.contains("shredding"))
                } else {
                    #expect(objects?.count == 1 && files.count == 1, "\(other): \(files)")
                    let out = scratch.path + "/check"
                    #expect(
                        try session.run(["dataset", "download", other, "scan", "--out", out], as: "rita").status == 0)
                    #expect(
                        try Data(contentsOf: URL(fileURLWithPath: out)) == Data(contentsOf: URL(fileURLWithPath: file)))
                }
            }
        }
        server.stop()
        _ = try session.verifiedAuditEvents()
    }
}
