import Crypto
import Foundation
import Testing

/// Kills the server with SIGKILL in the middle of uploads and checks what survives a restart.
struct DatasetCrashTests {
    @Test("SIGKILL mid-upload: acknowledged objects survive whole, nothing half-written is visible, all decrypt")
    func killDuringUploads() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let data = scratch.path + "/data"
        var server = try TestServer(data: data)
        defer { server.stop() }
        var session = CLISession(scratch: scratch, server: server)
        let (tenant, project) = try session.tenantWithResearcherAndAdmin()
        let dataset = try session.id(
            [
                "dataset", "create", "--project", project, "--classification", "phi", "--residency", "US",
                "--retention-years", "1", "scans",
            ], as: "rita")

        var acknowledged: [String: String] = [:]
        for round in 0..<5 {
            let file = scratch.path + "/object-\(round)"
            let bytes = Data((0..<(24 << 20)).map { UInt8(truncatingIfNeeded: $0 &* (round + 3)) })
            try bytes.write(to: URL(fileURLWithPath: file))
            let upload = Process()
            upload.executableURL = CLI.executable
            upload.arguments = ["dataset", "upload", dataset, file, "--name", "object-\(round)"]
            upload.environment = ProcessInfo.processInfo.environment.merging([
                "CADUCEUS_LOGIN_FILE": scratch.path + "/rita.json", "CADUCEUS_SERVER": server.url,
            ]) { $1 }
            upload.standardOutput = FileHandle.nullDevice
            upload.standardError = FileHandle.nullDevice
            try upload.run()
            // The first upload finishes before the crash; the others mostly have the server die under them.
            if round == 0 { upload.waitUntilExit() } else { usleep(UInt32.random(in: 100_000...900_000)) }
            server.kill()
            upload.waitUntilExit()
            if upload.terminationStatus == 0 {
                acknowledged["object-\(round)"] = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            }
            server = try TestServer(data: data)
            session = CLISession(scratch: scratch, server: server)
            // Every acknowledged object is there and opens whole; every listed object opens whole.
            let listed =
                try session.json(["dataset", "objects", dataset], as: "rita")["items"] as? [[String: Any]] ?? []
            let names = Set(listed.compactMap { $0["name"] as? String })
            #expect(Set(acknowledged.keys).isSubset(of: names), "round \(round): \(names) \(acknowledged.keys)")
            for item in listed {
                let name = try #require(item["name"] as? String)
                let out = scratch.path + "/check"
                let result = try session.run(["dataset", "download", dataset, name, "--out", out], as: "rita")
                #expect(result.status == 0, "\(name): \(result.stderr)")
                #expect(result.text.contains(item["sha256"] as? String ?? "?"))
                if let sha = acknowledged[name] { #expect(item["sha256"] as? String == sha) }
            }
            let partials = (FileManager.default.enumerator(atPath: data + "/objects")?.allObjects as? [String] ?? [])
                .filter { $0.hasSuffix(".partial") }
            #expect(partials.isEmpty, "\(partials)")
            // A rotation after each restart changes nothing of what opens.
            #expect(try session.run(["key", "rotate", "--tenant", tenant], as: "tara").status == 0)
        }
        #expect(acknowledged["object-0"] != nil, "an upload that finished before the crash survives it")
        server.stop()
        _ = try session.verifiedAuditEvents()
    }
}
