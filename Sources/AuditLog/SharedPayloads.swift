import CaduceusCore

/// Where the sealed details payloads live when several replicas share the audit log (PostgreSQL, in
/// distributed mode): each is stored there, sealed, before the event that commits to it is appended, and
/// each replica copies into its own payload folder those its log's entries commit to.
public protocol SharedPayloads: Sendable {
    /// Stores `sealed` under `commitment` (again: the same bytes, nothing changes).
    func put(_ commitment: String, sealed: [UInt8]) async throws
    /// The sealed bytes stored under `commitment`; nil when there are none (never stored, or deleted).
    func get(_ commitment: String) async throws -> [UInt8]?
}

extension AuditTrail {
    /// Copies into this replica's payload folder every payload that the log's entries from the last copy on
    /// commit to and that the shared store holds; remembers where it stopped (`payloads/.copied`). Returns
    /// how many it copied.
    @discardableResult
    public static func copyPayloads(
        log directory: String, size: UInt64, payloads: PayloadStore, from shared: any SharedPayloads
    ) async throws -> Int {
        let cursorFile = payloads.directory + "/.copied"
        let start = (try FileSystem.readIfPresent(cursorFile)).flatMap { UInt64(String(decoding: $0, as: UTF8.self)) }
        var index = min(start ?? 0, size)
        let reader = TileReader(directory: directory, size: size)
        var copied = 0
        while index < size {
            let bundle = index / TileLayout.width
            let entries = try reader.entries(bundle: bundle)
            let first = bundle * TileLayout.width
            for (offset, entry) in entries.enumerated() where first + UInt64(offset) >= index {
                guard let commitment = payloadCommitment(in: entry), !payloads.contains(commitment),
                    let sealed = try await shared.get(commitment)
                else { continue }
                try payloads.store(commitment, sealed: sealed)
                copied += 1
            }
            index = first + UInt64(entries.count)
            if entries.isEmpty { break }
        }
        try FileSystem.makeDirectories(payloads.directory)
        try FileSystem.writeAtomically(cursorFile, Array(String(index).utf8), mode: 0o600)
        return copied
    }

    /// The commitment an entry's canonical JSON names in its `payload` field, if any.
    static func payloadCommitment(in entry: ArraySlice<UInt8>) -> String? {
        let key = Array(#""payload":"sha256:"#.utf8)
        guard entry.count > key.count + 64 else { return nil }
        var i = entry.startIndex
        while i + key.count + 64 <= entry.endIndex {
            if entry[i] == key[0] && entry[i..<(i + key.count)].elementsEqual(key) {
                let start = i + key.count - 7
                let text = String(decoding: entry[start..<(start + 71)], as: UTF8.self)
                return PayloadStore.isCommitment(text) ? text : nil
            }
            i += 1
        }
        return nil
    }
}
