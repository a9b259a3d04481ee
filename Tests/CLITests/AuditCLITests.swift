import Foundation
import Testing

/// End-to-end tests of `caduceus audit …`, running the real executable.
struct AuditCLITests {
    func makeLog(_ scratch: Scratch, count: Int, details: Bool = false) throws -> (log: String, vkey: String) {
        let log = scratch.path + "/audit"
        let lines = (0..<count).map { eventLine($0, details: details) }.joined(separator: "\n") + "\n"
        let result = try CLI.run(["audit", "append", "--log", log], input: Data(lines.utf8))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text.split(separator: "\n").count == count)
        return (log, scratch.path + "/keys/audit.vkey")
    }

    @Test("append, verify, prove and check a proof, all through the CLI")
    func appendVerifyProve() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let (log, vkey) = try makeLog(scratch, count: 300)
        let verify = try CLI.run(["audit", "verify", "--log", log, "--vkey", vkey])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.text.contains("size 300"))
        let proof = try CLI.run(["audit", "prove", "--log", log, "--index", "257"])
        #expect(proof.status == 0)
        #expect(proof.text.hasPrefix("c2sp.org/tlog-proof@v1\nindex 257\n"))
        let proofFile = try scratch.write("257.tlog-proof", proof.text)
        let entry = try CLI.run(["audit", "entry", "--log", log, "--index", "257"])
        let entryFile = scratch.path + "/257.entry"
        try entry.stdout.write(to: URL(fileURLWithPath: entryFile))
        let check = try CLI.run(["audit", "check-proof", "--vkey", vkey, "--entry", entryFile, proofFile])
        #expect(check.status == 0, "\(check.stderr)")
        let other = try CLI.run(["audit", "entry", "--log", log, "--index", "12"])
        try other.stdout.write(to: URL(fileURLWithPath: entryFile))
        let wrong = try CLI.run(["audit", "check-proof", "--vkey", vkey, "--entry", entryFile, proofFile])
        #expect(wrong.status != 0)
    }

    @Test("verify fails, naming the file, when a tile is changed; and with a newer trusted checkpoint")
    func verifyDetectsTampering() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let (log, vkey) = try makeLog(scratch, count: 40)
        let older = try Data(contentsOf: URL(fileURLWithPath: log + "/checkpoint"))
        let more = (40..<80).map { eventLine($0) }.joined(separator: "\n")
        #expect(try CLI.run(["audit", "append", "--log", log], input: Data(more.utf8)).status == 0)
        let newer = try Data(contentsOf: URL(fileURLWithPath: log + "/checkpoint"))
        let trustedFile = scratch.path + "/trusted"
        try older.write(to: URL(fileURLWithPath: trustedFile))
        #expect(try CLI.run(["audit", "verify", "--log", log, "--vkey", vkey, "--trusted", trustedFile]).status == 0)

        try newer.write(to: URL(fileURLWithPath: trustedFile))
        try older.write(to: URL(fileURLWithPath: log + "/checkpoint"))
        let rolledBack = try CLI.run(["audit", "verify", "--log", log, "--vkey", vkey, "--trusted", trustedFile])
        #expect(rolledBack.status == 1)
        #expect(rolledBack.stderr.contains("older than the trusted checkpoint"))
        try newer.write(to: URL(fileURLWithPath: log + "/checkpoint"))

        let tile = log + "/tile/0/000.p/80"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: tile))
        bytes[100] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: tile))
        let tampered = try CLI.run(["audit", "verify", "--log", log, "--vkey", vkey])
        #expect(tampered.status == 1)
        #expect(tampered.stderr.contains("tile/0/000.p/80"))
        #expect(tampered.stderr.split(separator: "\n").count == 1)
    }

    @Test("malformed and oversize events are refused with a clear error and nothing is written")
    func badInput() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let (log, vkey) = try makeLog(scratch, count: 5)
        let before = try Data(contentsOf: URL(fileURLWithPath: log + "/checkpoint"))
        let bad =
            eventLine(5) + "\n" + #"{"actor":{"id":"usr-1","type":"user"},"action":"dataset.read","outcome":"success"}"#
        let missing = try CLI.run(["audit", "append", "--log", log], input: Data(bad.utf8))
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("line 2") && missing.stderr.contains("resource"))
        let huge =
            #"{"actor":{"id":"usr-1","type":"user"},"action":"dataset.read","resource":{"type":"dataset","id":"d"},"outcome":"success","id":"\#(String(repeating: "a", count: 70_000))"}"#
        let oversize = try CLI.run(["audit", "append", "--log", log], input: Data(huge.utf8))
        #expect(oversize.status != 0)
        let notJSON = try CLI.run(["audit", "append", "--log", log], input: Data("patient Jane Doe\n".utf8))
        #expect(notJSON.status != 0)
        #expect(notJSON.stderr.contains("line 1"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: log + "/checkpoint")) == before)
        #expect(try CLI.run(["audit", "verify", "--log", log, "--vkey", vkey]).text.contains("size 5"))
    }

    @Test("a missing log, a wrong key or a foreign log give a one-line error, never a crash")
    func wrongLogs() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let (log, vkey) = try makeLog(scratch, count: 3)
        let missing = try CLI.run(["audit", "verify", "--log", scratch.path + "/nothing", "--vkey", vkey])
        #expect(missing.status == 1)
        #expect(missing.stderr.split(separator: "\n").count == 1)
        let other = try Scratch()
        defer { other.remove() }
        let (_, otherKey) = try makeLog(other, count: 3)
        let foreign = try CLI.run(["audit", "verify", "--log", log, "--vkey", otherKey])
        #expect(foreign.status == 1)
        #expect(foreign.stderr.contains("not signed by"))
        let garbageKey = try scratch.write("garbage.vkey", "hello")
        let garbage = try CLI.run(["audit", "verify", "--log", log, "--vkey", garbageKey])
        #expect(garbage.status == 1)
        #expect(garbage.stderr.split(separator: "\n").count == 1)
        // Appending to a log with another log's keys must not open it.
        let mixed = try CLI.run(
            ["audit", "append", "--log", log, "--key-dir", other.path + "/keys"], input: Data(eventLine(9).utf8))
        #expect(mixed.status != 0)
        for result in [missing, foreign, garbage, mixed] { #expect(!result.stderr.contains("Fatal error")) }
    }

    @Test("export writes a FHIR R4 Bundle of AuditEvents and JSON lines exactly as logged")
    func export() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let (log, vkey) = try makeLog(scratch, count: 260, details: true)
        let fhir = try CLI.run(["audit", "export", "--log", log, "--format", "fhir", "--vkey", vkey])
        #expect(fhir.status == 0, "\(fhir.stderr)")
        let bundle = try #require(try JSONSerialization.jsonObject(with: fhir.stdout) as? [String: Any])
        #expect(bundle["resourceType"] as? String == "Bundle")
        let entries = try #require(bundle["entry"] as? [[String: Any]])
        #expect(entries.count == 260)
        let resource = try #require(entries[7]["resource"] as? [String: Any])
        #expect(resource["resourceType"] as? String == "AuditEvent")
        #expect(resource["id"] as? String == "evt-7")
        let agent = try #require((resource["agent"] as? [[String: Any]])?.first)
        #expect((agent["network"] as? [String: Any])?["address"] as? String == "127.0.0.1")
        #expect(!fhir.text.contains("MRN-7"))

        let jsonl = try CLI.run(["audit", "export", "--log", log, "--format", "jsonl"])
        let lines = jsonl.text.split(separator: "\n")
        #expect(lines.count == 260)
        let entry = try CLI.run(["audit", "entry", "--log", log, "--index", "200"])
        #expect(Data(lines[200].utf8) == entry.stdout)

        // The details payload is sealed apart, readable with the payload key, and deletable.
        let event = try #require(try JSONSerialization.jsonObject(with: Data(lines[3].utf8)) as? [String: Any])
        let commitment = try #require(event["payload"] as? String)
        let payload = try CLI.run(["audit", "payload", "--log", log, commitment])
        #expect(payload.text.contains("MRN-3"))
        #expect(try CLI.run(["audit", "payload", "--log", log, "--delete", commitment]).status == 0)
        #expect(try CLI.run(["audit", "payload", "--log", log, commitment]).status != 0)
        #expect(try CLI.run(["audit", "verify", "--log", log, "--vkey", vkey]).status == 0)
    }
}
