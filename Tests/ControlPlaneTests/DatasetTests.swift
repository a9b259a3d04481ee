import AuditLog
import CaduceusCore
import CaduceusTesting
import ControlPlane
import Crypto
import Foundation
import Identity
import Persistence
import Scheduling
import Sealing
import Testing

/// Datasets at the use-case level, with the clock in the test's hand: bad uploads leave nothing, retention
/// and legal hold refuse deletion with the day it becomes possible, and shredding destroys the key and
/// leaves a signed certificate.
struct DatasetTests {
    static func body(_ bytes: [UInt8], failAfter: Int? = nil) -> AsyncThrowingStream<[UInt8], any Error> {
        AsyncThrowingStream { continuation in
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + 10_000)
                if let failAfter, end > failAfter {
                    continuation.finish(throwing: CaduceusError(code: "test.cut", message: "the connection broke"))
                    return
                }
                continuation.yield(Array(bytes[offset..<end]))
                offset = end
            }
            continuation.finish()
        }
    }

    func dataset(_ f: FleetFixture, retention: Int = 1, residency: String = "US") async throws -> DatasetView {
        try await f.h.plane.createDataset(
            FleetFixture.again(f.researcher),
            CreateDatasetRequest(
                project: f.project.id, name: "scans-\(UUID().uuidString.prefix(8).lowercased())", classification: .phi,
                residency: Residency(rawValue: residency)!, retentionYears: retention))
    }

    func upload(
        _ f: FleetFixture, _ dataset: DatasetID, _ name: String, _ bytes: [UInt8], length: Int64? = nil,
        sha: String? = nil, failAfter: Int? = nil
    ) async throws -> ObjectView {
        try await f.h.plane.uploadObject(
            FleetFixture.again(f.researcher), dataset: dataset, name: name, length: length ?? Int64(bytes.count),
            sha256: sha, patients: ["MRN-1"], body: Self.body(bytes, failAfter: failAfter))
    }

    func files(_ h: Harness) -> [String] {
        (FileManager.default.enumerator(atPath: h.directory + "/objects")?.allObjects as? [String] ?? []).filter {
            $0.contains("obj-")
        }
    }

    func refused(_ body: () async throws -> Any) async -> CaduceusError? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error as? CaduceusError
        }
    }

    @Test("bad uploads store nothing: a wrong digest, a cut-off or longer body, a taken name, a foreign residency")
    func badUploads() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            let data = try await dataset(f)
            let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let sha = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            let wrongDigest = await refused {
                try await upload(f, data.id, "a", bytes, sha: String(repeating: "0", count: 64))
            }
            #expect(wrongDigest?.code == "input.digestMismatch")
            #expect(await refused { try await upload(f, data.id, "b", bytes, failAfter: 50_000) }?.code == "test.cut")
            #expect(await refused { try await upload(f, data.id, "c", bytes, length: 90_000) } != nil)
            #expect(await refused { try await upload(f, data.id, "d", bytes, length: 110_000) } != nil)
            #expect(await refused { try await upload(f, data.id, ".hidden", bytes) }?.code == "input.invalid")
            #expect(files(h).isEmpty, "\(files(h))")
            let page = try await h.plane.listObjects(FleetFixture.again(f.researcher), data.id, after: nil, limit: 10)
            #expect(page.items.isEmpty)
            let stored = try await upload(f, data.id, "scan", bytes, sha: sha)
            #expect(stored.sha256 == sha && files(h).count == 1)
            #expect(await refused { try await upload(f, data.id, "scan", bytes) }?.code == "conflict")
            #expect(await refused { try await dataset(f, residency: "EU") }?.code == "conflict")

            // Reading: whole, a range, and a range past the end.
            let opened = try await h.plane.openObject(
                FleetFixture.again(f.researcher), dataset: data.id, name: "scan",
                range: ByteRange(start: 99_990, end: nil))
            #expect(opened.range == 99_990..<100_000)
            let beyond = await refused {
                try await h.plane.openObject(
                    FleetFixture.again(f.researcher), dataset: data.id, name: "scan",
                    range: ByteRange(start: 100_000, end: nil))
            }
            #expect(beyond?.code == "input.range")
            // The tenant admin may see the dataset but not read its contents; the refusal is audited.
            #expect(
                await refused {
                    try await h.plane.openObject(
                        FleetFixture.again(f.tenantAdmin), dataset: data.id, name: "scan", range: nil)
                }?.code == "auth.forbidden")
            let events = try await h.events()
            #expect(events.contains { $0.action == "dataset.object.read" && $0.outcome == .denied })
            #expect(events.contains { $0.action == "key.unwrap" })
        }
    }

    @Test("retention and legal hold refuse deletion with the day; after retention, shredding leaves a certificate")
    func retentionAndShredding() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            let data = try await dataset(f, retention: 1)
            _ = try await upload(f, data.id, "scan", Array(repeating: 7, count: 5000))
            // A second tenant admin logs in only after the clock moves (sessions do not last a year).
            let created = try await h.plane.createUser(f.admin, CreateUserRequest(name: "theo"))
            _ = try await h.plane.grantRole(
                f.admin, GrantRoleRequest(user: created.user.id, role: .tenantAdmin, scope: .tenant(f.tenant.id)))

            let early = await refused {
                try await h.plane.deleteObject(FleetFixture.again(f.researcher), dataset: data.id, name: "scan")
            }
            #expect(
                early?.code == "conflict" && early?.message.contains("retention until") == true,
                "\(String(describing: early))")
            let shredEarly = await refused {
                try await h.plane.shredDataset(FleetFixture.again(f.tenantAdmin), data.id)
            }
            #expect(shredEarly?.message.contains("may be deleted from") == true)
            _ = try await h.plane.setLegalHold(FleetFixture.again(f.tenantAdmin), data.id, hold: true)
            #expect(
                await refused {
                    try await h.plane.setLegalHold(FleetFixture.again(f.researcher), data.id, hold: false)
                }?.code == "auth.forbidden")

            h.clock.advance(seconds: 367 * 86_400)
            let (first, token) = try await h.login(
                "theo", try #require(created.initialPassword), secret: try #require(created.otpauthURI))
            try await h.plane.changePassword(
                first,
                ChangePasswordRequest(
                    currentPassword: try #require(created.initialPassword), newPassword: "theo's own password"))
            let theo = try await h.authenticated(token)
            let held = await refused { try await h.plane.shredDataset(FleetFixture.again(theo), data.id) }
            #expect(held?.message.contains("legal hold") == true)
            _ = try await h.plane.setLegalHold(FleetFixture.again(theo), data.id, hold: false)
            #expect(files(h).count == 1)
            let certificate = try await h.plane.shredDataset(FleetFixture.again(theo), data.id)
            #expect(files(h).isEmpty)
            let text = try h.keys.signer.verifierKey.open(Array(certificate.utf8))
            #expect(text.hasPrefix("caduceus shredding certificate v1\ndataset \(data.id)\n"), "\(text)")
            let key = try #require(data.dataKey)
            #expect(text.contains("objects 1\n") && text.contains("key \(key) destroyed"))
            #expect(try await h.plane.shreddingCertificate(FleetFixture.again(theo), data.id) == certificate)
            #expect(
                await refused { try await h.plane.shredDataset(FleetFixture.again(theo), data.id) }?.code == "conflict")
            #expect(try await h.database.datasets.dataKey(of: data.id)?.wrapped == nil, "the wrapped key is destroyed")
            let events = try await h.events()
            #expect(events.contains { $0.action == "dataset.shred" && $0.outcome == .success })
            #expect(events.filter { $0.action == "dataset.shred" && $0.outcome == .error }.count == 3)
        }
    }

    /// Logs in a person created before the clock moved (a session does not outlive a jump of days).
    func lateLogin(_ h: Harness, _ created: CreateUserResponse, _ name: String) async throws -> RequestInfo {
        let password = try #require(created.initialPassword)
        let (first, token) = try await h.login(name, password, secret: try #require(created.otpauthURI))
        try await h.plane.changePassword(
            first, ChangePasswordRequest(currentPassword: password, newPassword: "\(name)'s own password"))
        return try await h.authenticated(token)
    }

    @Test("tiering: idle objects move warm then cold, a read brings them back hot, stray copies are swept")
    func tiering() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            let data = try await h.plane.createDataset(
                FleetFixture.again(f.researcher),
                CreateDatasetRequest(
                    project: f.project.id, name: "tiered", classification: .phi, residency: Residency(rawValue: "US")!,
                    retentionYears: 1, lifecycle: LifecycleRule(warmAfterDays: 30, coldAfterDays: 90)))
            let bytes = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
            let object = try await upload(f, data.id, "scan", bytes)
            let reader = try await h.plane.createUser(f.admin, CreateUserRequest(name: "ria"))
            _ = try await h.plane.grantRole(
                f.admin,
                GrantRoleRequest(user: reader.user.id, role: .researcher, scope: .project(f.tenant.id, f.project.id)))
            func tier() async throws -> StorageTier? { try await h.database.datasets.object(id: object.id)?.tier }
            func located() -> [String] { files(h).map { String($0.prefix { $0 != "/" }) } }

            await h.plane.runLifecycle()
            #expect(try await tier() == .hot && located() == ["hot"])
            h.clock.advance(seconds: 31 * 86_400)
            await h.plane.runLifecycle()
            #expect(try await tier() == .warm && located() == ["warm"], "\(located())")
            h.clock.advance(seconds: 60 * 86_400)
            await h.plane.runLifecycle()
            #expect(try await tier() == .cold && located() == ["cold"], "\(located())")

            // A read from the cold tier works, and makes the object hot again at the next run.
            let ria = try await lateLogin(h, reader, "ria")
            let opened = try await h.plane.openObject(ria, dataset: data.id, name: "scan", range: nil)
            var read: [UInt8] = []
            let buffer = UnsafeMutableRawBufferPointer.allocate(
                byteCount: opened.reader.header.plaintextPerChunk, alignment: 16)
            defer { buffer.deallocate() }
            for index in 0..<opened.reader.header.chunkCount {
                let count = opened.reader.header.plaintextCount(ofChunk: index)
                try opened.reader.read(chunk: index, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
                read += Array(buffer[0..<count])
            }
            #expect(read == bytes)
            await h.plane.runLifecycle()
            #expect(try await tier() == .hot && located() == ["hot"], "\(located())")

            // A copy a crash left in another tier, and a file of no object, are removed at start-up.
            let storage = ObjectFiles(root: h.directory + "/objects")
            try FileManager.default.createDirectory(
                atPath: h.directory + "/objects/archive/\(data.id)", withIntermediateDirectories: true)
            try FileManager.default.copyItem(
                atPath: storage.path(object.id, of: data.id, in: .hot),
                toPath: storage.path(object.id, of: data.id, in: .archive))
            try FileManager.default.copyItem(
                atPath: storage.path(object.id, of: data.id, in: .hot),
                toPath: storage.path(ObjectID.generate(), of: data.id, in: .hot))
            #expect(located().count == 3)
            try await h.plane.enableDatasets(
                DatasetSettings(
                    store: h.database.datasets, root: KeyFileRootKeyProvider(rootKey: SymmetricKey(size: .bits256)),
                    files: storage, storageResidency: Residency(rawValue: "US")!,
                    auditDirectory: h.directory + "/audit",
                    auditVerifierKey: h.keys.signer.verifierKey, certificateSigner: h.keys.signer))
            #expect(located() == ["hot"], "\(located())")
            let events = try await h.events()
            #expect(events.filter { $0.action == "dataset.object.move" }.count == 3)
        }
    }
}
