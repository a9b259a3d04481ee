import AuditLog
import CaduceusCore
import Foundation

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ label: String = "audit") throws {
        path = FileManager.default.temporaryDirectory.path + "/caduceus-test-\(label)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Every node of a tree held in memory, for checking proofs without tiles.
struct MemoryTree: SubtreeHashReader {
    var leaves: [TreeHash]

    init(entries: [[UInt8]]) {
        leaves = entries.map { TreeHash.leaf($0) }
    }

    init(size: Int) {
        self.init(entries: (0..<size).map { Array("entry \($0)".utf8) })
    }

    func hash(height: Int, index: UInt64) throws -> TreeHash {
        let start = Int(index) << height
        return Self.root(leaves[start..<(start + (1 << height))])
    }

    /// RFC 9162's MTH, straight from its recursive definition.
    static func root(_ leaves: ArraySlice<TreeHash>) -> TreeHash {
        if leaves.isEmpty { return .emptyTree }
        if leaves.count == 1 { return leaves.first! }
        var k = 1
        while k << 1 < leaves.count { k <<= 1 }
        let split = leaves.startIndex + k
        return TreeHash.node(root(leaves[..<split]), root(leaves[split...]))
    }

    func root(size: Int) -> TreeHash { Self.root(leaves[0..<size]) }
}

/// Reads a file of the test target's `Vectors` folder.
func vectorFile(_ name: String) throws -> Data {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors")
    return try Data(contentsOf: folder.appendingPathComponent(name))
}

/// A well-formed audit event with the given index in its ID.
func sampleEvent(_ n: Int, outcome: AuditEvent.Outcome = .success) -> AuditEvent {
    AuditEvent(
        id: "evt-\(n)", time: Timestamp(millisecondsSinceEpoch: 1_795_000_000_000 + Int64(n)),
        actor: .init(id: "usr-\(n % 7)", type: "user"), session: "ses-\(n % 3)", action: "dataset.object.read",
        resource: .init(type: "dataset", id: "ds-\(n % 5)"), tenant: "tnt-a", outcome: outcome, purposeOfUse: "TREAT",
        requestId: "req-\(n)", sourceAddress: "10.0.0.\(n % 250)")
}

/// Creates a log of `count` sample events in `directory` and closes it; returns its keys.
func makeLog(in directory: String, count: Int, origin: String = "test.caduceus/audit") async throws -> AuditKeys {
    let keys = try AuditKeys.loadOrCreate(directory: directory + "/keys", origin: origin)
    let log = try TransparencyLog(directory: directory + "/audit", signer: keys.signer)
    for i in 0..<count { _ = try await log.append(try sampleEvent(i).canonicalEntry()) }
    try await log.close()
    return keys
}
