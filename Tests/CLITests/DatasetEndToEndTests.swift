import Foundation
import Testing

/// Sealed datasets through the real server and CLI: a researcher uploads PHI declaring patients and reads it
/// back whole and by range; the tenant's KEK is rotated and everything still opens; the per-patient report
/// lists exactly the accesses to that patient's data, from the verified audit trail.
struct DatasetEndToEndTests {
    @Test("upload, download by range, rotate the KEK, and report every access to one patient's data")
    func datasets() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let server = try TestServer(
            data: scratch.path + "/data", environment: ["CADUCEUS_STOP_GRACE_SECONDS": "1"],
            arguments: ["--fake-gpus", "1"])
        defer { server.stop() }
        let session = CLISession(scratch: scratch, server: server)
        try session.logInAdmin()
        let tenant = try session.id(["tenant", "create", "st-marys"], as: "admin")
        let project = try session.id(["project", "create", "--tenant", tenant, "radiology"], as: "admin")
        try session.person("rita", role: "researcher", scope: "project:\(tenant)/\(project)")
        try session.person("tara", role: "tenant-admin", scope: "tenant:\(tenant)")
        try session.person("audrey", role: "auditor", scope: "tenant:\(tenant)")
        let oncology = try session.id(["project", "create", "--tenant", tenant, "oncology"], as: "admin")
        try session.person("olga", role: "researcher", scope: "project:\(tenant)/\(oncology)")

        let dataset = try session.id(
            [
                "dataset", "create", "--project", project, "--classification", "phi", "--residency", "US",
                "--retention-years", "6", "ct-scans",
            ], as: "rita")
        let other = try session.run(
            [
                "dataset", "create", "--project", project, "--classification", "phi", "--residency", "EU",
                "--retention-years", "6", "abroad",
            ], as: "rita")
        #expect(other.status != 0 && other.stderr.contains("residency"), "\(other.stderr)")

        var generator = SystemRandomNumberGenerator()
        let scan = Data((0..<(3 << 20) + 12345).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try scan.write(to: URL(fileURLWithPath: scratch.path + "/scan.dcm"))
        try Data("notes of another patient".utf8).write(to: URL(fileURLWithPath: scratch.path + "/notes.txt"))
        let uploaded = try session.json(
            [
                "dataset", "upload", dataset, scratch.path + "/scan.dcm", "--patient", "MRN-0001", "--patient",
                "mrn 0002",
            ],
            as: "rita")
        #expect(uploaded["bytes"] as? Int == scan.count && uploaded["patients"] as? Int == 2, "\(uploaded)")
        _ = try session.json(
            ["dataset", "upload", dataset, scratch.path + "/notes.txt", "--patient", "MRN-0003"], as: "rita")
        let again = try session.run(["dataset", "upload", dataset, scratch.path + "/notes.txt"], as: "rita")
        #expect(again.status != 0, "an object name is taken once")
        let objects = try session.json(["dataset", "objects", dataset], as: "rita")
        #expect((objects["items"] as? [[String: Any]])?.count == 2)
        // Nothing of the plaintext is on disk.
        let stored = try FileManager.default.subpathsOfDirectory(atPath: server.data + "/objects")
        for path in stored where !path.hasSuffix(dataset) && path.contains("obj-") {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: server.data + "/objects/" + path))
            #expect(bytes.prefix(8) == Data("CADSEAL1".utf8))
            #expect(bytes.range(of: scan.subdata(in: 5000..<5064)) == nil)
        }

        func download(_ extra: [String] = [], as who: String = "rita") throws -> Data? {
            let out = scratch.path + "/out-\(UUID().uuidString)"
            let result = try session.run(
                ["dataset", "download", dataset, "scan.dcm", "--out", out] + extra, as: who)
            guard result.status == 0 else { return nil }
            return try Data(contentsOf: URL(fileURLWithPath: out))
        }
        #expect(try download() == scan)
        #expect(try download(["--range", "1000-2999"]) == scan.subdata(in: 1000..<3000))
        #expect(try download(["--range", "\(scan.count - 10)-"]) == scan.subdata(in: (scan.count - 10)..<scan.count))
        #expect(try download(as: "tara") == nil, "a tenant admin holds no phi.read")

        // Rotation re-wraps the data key under KEK version 2; the objects open as before.
        let rotated = try session.json(["key", "rotate", "--tenant", tenant], as: "tara")
        #expect(rotated["version"] as? Int == 2 && rotated["rewrapped"] as? Int == 1, "\(rotated)")
        #expect(try session.run(["key", "rotate", "--tenant", tenant], as: "rita").status != 0)
        let status = try session.json(["key", "status", "--tenant", tenant], as: "audrey")
        let versions = try #require(status["versions"] as? [[String: Any]])
        #expect(versions.map { $0["dataKeys"] as? Int } == [0, 1] && versions.last?["current"] as? Bool == true)
        #expect(try download() == scan)
        #expect(try session.json(["dataset", "show", dataset], as: "rita")["kekVersion"] as? Int == 2)

        // Another project reads the dataset only through a grant: by download, and by a job, which finds the
        // objects in its scratch; both reads carry the grant's purpose of use.
        #expect(try download(as: "olga") == nil, "no grant yet")
        let refusedJob = try session.run(
            [
                "job", "submit", "--project", oncology, "--gpus-per-node", "1", "--class", "batch", "--dataset",
                dataset,
                "--", "/bin/true",
            ], as: "olga")
        #expect(refusedJob.status != 0 && refusedJob.stderr.contains("grant"), "\(refusedJob.stderr)")
        let grant = try session.id(
            ["dataset", "grant", dataset, "--project", oncology, "--purpose", "HRESCH"], as: "tara")
        let byResearcher = try session.run(
            ["dataset", "grant", dataset, "--project", oncology, "--purpose", "HRESCH"], as: "rita")
        #expect(byResearcher.status != 0, "only tenant admins grant")
        #expect(try download(as: "olga") == scan)
        try session.giveLocalNode(to: tenant)
        let job = try session.id(
            [
                "job", "submit", "--project", oncology, "--gpus-per-node", "1", "--class", "batch", "--dataset",
                dataset,
                "--", "/bin/sh", "-c", "sha256sum datasets/ct-scans/scan.dcm; cat datasets/ct-scans/notes.txt",
            ],
            as: "olga")
        let ran = try ExecutionEndToEndTests().wait(for: job, in: ["succeeded", "failed"], session, as: "olga")
        #expect(ran["state"] as? String == "succeeded", "\(ran)")
        let output = try session.run(["job", "logs", job], as: "olga").text
        #expect(output.hasPrefix((uploaded["sha256"] as? String ?? "?") + "  datasets/ct-scans/scan.dcm"), "\(output)")
        #expect(output.hasSuffix("notes of another patient"), "\(output)")
        #expect(try session.json(["dataset", "revoke-grant", grant], as: "tara")["revokedAt"] != nil)
        #expect(try download(as: "olga") == nil, "a revoked grant reads nothing")

        // The report for patient 0001 (written differently) lists the upload, the reads of the scan by rita,
        // olga and olga's job, and nothing of the other object; for patient 0003 the notes' upload and the
        // job's read.
        let report = try session.json(
            ["report", "phi-access", "--tenant", tenant, "--patient", " mrn-0001 "], as: "audrey")
        let accesses = try #require(report["accesses"] as? [[String: Any]])
        #expect(accesses.map { $0["action"] as? String }.filter { $0 == "dataset.object.upload" }.count == 1)
        let reads = accesses.filter { $0["action"] as? String == "dataset.object.read" }
        #expect(reads.count == 6, "\(accesses)")
        #expect(reads.filter { $0["purpose"] as? String == "HRESCH" }.count == 2, "\(reads)")
        #expect(
            reads.contains {
                $0["actor"] as? String == job && $0["actorType"] as? String == "system" && $0["onBehalfOf"] != nil
            }, "\(reads)")
        #expect(accesses.allSatisfy { $0["objectName"] as? String == "scan.dcm" })
        #expect((report["objects"] as? [String])?.count == 1)
        let third = try session.json(
            ["report", "phi-access", "--tenant", tenant, "--patient", "MRN-0003"], as: "audrey")
        #expect((third["accesses"] as? [[String: Any]])?.count == 2)
        let csv = try session.run(
            ["report", "phi-access", "--tenant", tenant, "--patient", "MRN-0001", "--format", "csv"], as: "audrey")
        #expect(csv.status == 0 && csv.text.split(separator: "\r\n").count == 8, "\(csv.text)")
        let html = try session.run(
            ["report", "phi-access", "--tenant", tenant, "--patient", "MRN-0001", "--format", "html"], as: "audrey")
        #expect(html.text.contains("<table>") && html.text.components(separatedBy: "<tr>").count == 9)
        #expect(
            try session.run(["report", "phi-access", "--tenant", tenant, "--patient", "MRN-0001"], as: "rita").status
                != 0)

        // Under retention nothing is deleted, and the refusal names the day (the use-case tests move the clock
        // past it and shred).
        let early = try session.run(["dataset", "delete-object", dataset, "scan.dcm"], as: "rita")
        #expect(early.status != 0 && early.stderr.contains("retention until"), "\(early.stderr)")
        let shred = try session.run(["dataset", "shred", dataset], as: "tara")
        #expect(shred.status != 0 && shred.stderr.contains("may be deleted from"), "\(shred.stderr)")
        #expect(try download() == scan)

        server.stop()
        let events = try session.verifiedAuditEvents()
        for action in [
            "dataset.create", "key.unwrap", "dataset.object.upload", "dataset.object.read", "key.rotate",
            "report.phi-access", "dataset.grant", "dataset.grant.revoke",
        ] {
            #expect(events.contains(#""action":"\#(action)""#), "\(action)")
        }
        #expect(!events.contains("MRN-0001") && !events.contains("MRN-0003"), "no identifier reaches the log")
    }
}
