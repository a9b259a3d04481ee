import AuditLog
import Foundation
import Testing

/// The transparency-dev/merkle test vectors in `../shared/testdata/merkle`.
struct MerkleVectorTests {
    static let folder: String = {
        if let path = ProcessInfo.processInfo.environment["CADUCEUS_MERKLE_VECTORS"] { return path }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/testdata/merkle").path
    }()

    static let present = FileManager.default.fileExists(atPath: folder + "/inclusion")

    struct Inclusion: Decodable {
        var leafIdx: UInt64
        var treeSize: UInt64
        var root: String
        var leafHash: String
        var proof: [String]?
        var desc: String
        var wantErr: Bool
    }

    struct Consistency: Decodable {
        var size1: UInt64
        var size2: UInt64
        var root1: String
        var root2: String
        var proof: [String]?
        var desc: String
        var wantErr: Bool
    }

    static func files(_ kind: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder + "/" + kind) else { return [] }
        return enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".json") }.sorted()
            .map { folder + "/" + kind + "/" + $0 }
    }

    static func bytes(_ base64: String) -> [UInt8] {
        Data(base64Encoded: base64).map(Array.init) ?? Array(base64.utf8)
    }

    @Test(
        "every inclusion vector gives the expected verdict",
        .enabled(if: present, "skipped: ../shared/testdata/merkle is absent"))
    func inclusionVectors() throws {
        let files = Self.files("inclusion")
        #expect(files.count > 50)
        for file in files {
            let vector = try JSONDecoder().decode(Inclusion.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
            let result = Result {
                try MerkleProof.verifyInclusion(
                    leafHash: Self.bytes(vector.leafHash), index: vector.leafIdx, size: vector.treeSize,
                    proof: (vector.proof ?? []).map(Self.bytes), root: Self.bytes(vector.root))
            }
            let failed = (try? result.get()) == nil
            #expect(failed == vector.wantErr, "\(file): \(vector.desc)")
        }
    }

    @Test(
        "every consistency vector gives the expected verdict",
        .enabled(if: present, "skipped: ../shared/testdata/merkle is absent"))
    func consistencyVectors() throws {
        let files = Self.files("consistency")
        #expect(files.count > 50)
        for file in files {
            let vector = try JSONDecoder().decode(Consistency.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
            let result = Result {
                try MerkleProof.verifyConsistency(
                    size1: vector.size1, size2: vector.size2, proof: (vector.proof ?? []).map(Self.bytes),
                    root1: Self.bytes(vector.root1), root2: Self.bytes(vector.root2))
            }
            let failed = (try? result.get()) == nil
            #expect(failed == vector.wantErr, "\(file): \(vector.desc)")
        }
    }
}
