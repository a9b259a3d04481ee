import CaduceusCore
import Crypto
import Foundation
import Testing

@testable import AuditLog

struct AuditEventTests {
    @Test("events encode as canonical JSON: sorted keys, no white space, same bytes every time")
    func canonical() throws {
        let event = sampleEvent(3)
        let bytes = try event.canonicalEntry()
        #expect(bytes == (try sampleEvent(3).canonicalEntry()))
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(
            text.hasPrefix(#"{"action":"dataset.object.read","actor":{"id":"usr-3","type":"user"},"breakGlass":false,"#)
        )
        #expect(!text.contains(" ") && !text.contains("\n"))
        #expect(try AuditEvent.decode(entry: bytes) == event)
    }

    @Test(
        "free text and unknown fields are refused, so PHI cannot reach an entry",
        arguments: [
            #"{"version":1,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"user"},"action":"dataset.read","resource":{"type":"dataset","id":"Jane Doe"},"outcome":"success","breakGlass":false}"#,
            #"{"version":1,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"user"},"action":"dataset.read","resource":{"type":"dataset","id":"d1"},"outcome":"success","breakGlass":false,"patientName":"Jane Doe"}"#,
            #"{"version":1,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"user","name":"Dr Jane Doe"},"action":"dataset.read","resource":{"type":"dataset","id":"d1"},"outcome":"success"}"#,
            #"{"version":1,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"user"},"action":"dataset.read","resource":{"type":"dataset","id":"d1","patient":"MRN-1"},"outcome":"success"}"#,
            #"{"version":1,"id":"e1","time":"yesterday","actor":{"id":"u1","type":"user"},"action":"dataset.read","resource":{"type":"dataset","id":"d1"},"outcome":"success"}"#,
            #"{"version":1,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"robot"},"action":"dataset.read","resource":{"type":"dataset","id":"d1"},"outcome":"success"}"#,
            #"{"version":1,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"user"},"action":"Read PHI","resource":{"type":"dataset","id":"d1"},"outcome":"success"}"#,
            #"{"version":1,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"user"},"action":"dataset.read","resource":{"type":"dataset","id":"d1"},"outcome":"maybe"}"#,
            #"{"version":2,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"user"},"action":"dataset.read","resource":{"type":"dataset","id":"d1"},"outcome":"success"}"#,
            #"{"version":1,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"user"},"action":"dataset.read","resource":{"type":"dataset","id":"d1"},"outcome":"success","sourceAddress":"mrn-1234 ward 5"}"#,
            #"{"version":1,"id":"e1","time":"2026-01-01T00:00:00.000Z","actor":{"id":"u1","type":"user"},"action":"dataset.read","resource":{"type":"dataset","id":"d1"},"outcome":"success","purposeOfUse":"treat"}"#,
        ])
    func refusesMalformed(json: String) {
        #expect(throws: CaduceusError.self) { try AuditEvent.decode(entry: Array(json.utf8)) }
    }

    @Test("payload commitments follow the documented formula, open only with the key, and can be deleted")
    func payloads() throws {
        let dir = try TemporaryDirectory("payloads")
        defer { dir.remove() }
        let key = SymmetricKey(size: .bits256)
        let store = PayloadStore(directory: dir.path, key: key)
        let payload = Array(#"{"mrn":"12345","name":"Jane Doe"}"#.utf8)
        let commitment = try store.put(payload)
        #expect(try store.get(commitment) == payload)
        let salt = [UInt8](repeating: 9, count: 32)
        let expected = SHA256.hash(data: Array("caduceus/audit/payload/v1".utf8) + [0] + salt + payload)
        #expect(PayloadStore.commitment(payload: payload, salt: salt) == "sha256:" + Hex.encode(Array(expected)))
        let file = try String(contentsOfFile: dir.path + "/" + commitment.dropFirst(7), encoding: .isoLatin1)
        #expect(!file.contains("Jane Doe"))
        #expect(throws: (any Error).self) {
            try PayloadStore(directory: dir.path, key: SymmetricKey(size: .bits256)).get(commitment)
        }
        try store.delete(commitment)
        #expect(try store.get(commitment) == nil)
    }

    @Test("deleting payloads after retention leaves the log fully verifiable")
    func payloadDeletionKeepsLogVerifiable() async throws {
        let dir = try TemporaryDirectory("trail")
        defer { dir.remove() }
        let keys = try AuditKeys.loadOrCreate(directory: dir.path + "/keys", origin: "test.caduceus/audit")
        let trail = try AuditTrail(directory: dir.path + "/audit", keys: keys)
        var commitments: [String] = []
        for i in 0..<20 {
            let index = try await trail.record(sampleEvent(i), details: .object(["mrn": .string("MRN-\(i)")]))
            #expect(index == UInt64(i))
        }
        try await trail.close()
        let reader = TileReader(directory: dir.path + "/audit", size: 20)
        for i in 0..<20 {
            let event = try AuditEvent.decode(entry: try reader.entry(at: UInt64(i)))
            let commitment = try #require(event.payload)
            #expect(try trail.payloads.get(commitment) == Array(#"{"mrn":"MRN-\#(i)"}"#.utf8))
            commitments.append(commitment)
        }
        for commitment in commitments { try trail.payloads.delete(commitment) }
        let report = try await LogVerifier(directory: dir.path + "/audit", key: keys.signer.verifierKey).verify()
        #expect(report.entries == 20)
        #expect(try trail.payloads.get(commitments[0]) == nil)
    }

    @Test("FHIR export follows IHE BALP: agent, entity, outcome, purpose of use, break-glass")
    func fhir() throws {
        var event = sampleEvent(4, outcome: .denied)
        event.breakGlass = true
        event.purposeOfUse = "ETREAT"
        guard case .object(let resource) = FHIRAuditExport.resource(for: event, index: 41, origin: "log.example/audit")
        else {
            Issue.record("not an object")
            return
        }
        #expect(resource["resourceType"] == .string("AuditEvent"))
        #expect(resource["action"] == .string("R"))
        #expect(resource["outcome"] == .string("4"))
        #expect(resource["recorded"] == .string(event.time))
        let text = String(decoding: try CanonicalJSON.encode(JSONValue.object(resource)), as: UTF8.self)
        #expect(text.contains(#""code":"ETREAT""#))
        #expect(text.contains(#""code":"BTG""#))
        #expect(text.contains(#""address":"10.0.0.4""#))
        #expect(text.contains(#""value":"ds-4""#))
        #expect(text.contains(#""valueString":"41""#))
        #expect(text.contains("IHE.BasicAudit.Read"))
    }
}

struct CanonicalEncodingTests {
    @Test("the direct encoder writes exactly what the JSON encoder writes, for 1,000 varied events")
    func directEncoderMatches() throws {
        var generator = SystemRandomNumberGenerator()
        for n in 0..<1000 {
            var event = sampleEvent(n, outcome: AuditEvent.Outcome.allCases[n % 3])
            if Bool.random(using: &generator) { event.session = nil }
            if Bool.random(using: &generator) { event.tenant = nil }
            if Bool.random(using: &generator) { event.purposeOfUse = nil }
            if Bool.random(using: &generator) { event.requestId = nil }
            if Bool.random(using: &generator) { event.sourceAddress = "2001:db8::\(n % 97)" }
            if n % 7 == 0 {
                event.breakGlass = true
                event.breakGlassGrant = "bg-\(n)"
            }
            if n % 5 == 0 { event.payload = "sha256:" + String(repeating: "0f", count: 32) }
            let direct = try event.canonicalEntry()
            #expect(direct == (try CanonicalJSON.encode(event)), "event \(n)")
            #expect(try AuditEvent.decode(entry: direct) == event)
        }
    }

    @Test("strings are escaped as the JSON encoder escapes them")
    func escaping() throws {
        struct Box: Encodable { var s: String }
        for text in ["plain", "quote\"back\\slash", "new\nline\ttab\r", "\u{1}\u{1f}", "ünïcødé ✓", "/slash/"] {
            var direct: [UInt8] = []
            JSONString.append(text, to: &direct)
            let encoded = try CanonicalJSON.encode(Box(s: text))
            #expect(Array(#"{"s":"#.utf8) + direct + [UInt8(ascii: "}")] == encoded, "\(text)")
        }
    }
}
