import Foundation
import Testing

@testable import AuditLog

/// Mutates a verified log in every way an attacker or a failing disk might, and requires `verify` to fail.
struct TamperEvidenceTests {
    enum Mutation: CaseIterable {
        case flipByte, dropEntry, duplicateEntry, swapEntries, truncateFile, olderCheckpoint
    }

    /// A deterministic generator, so a failing mutation can be replayed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The files the current checkpoint rests on: the checkpoint and every tile, leaving out partial tiles
    /// that a wider partial or the full tile has superseded (they stay for clients holding older
    /// checkpoints, and how often the background materialiser writes them depends on timing).
    static func files(in directory: String) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: directory)
        let all = (enumerator?.compactMap { $0 as? String } ?? [])
            .filter { $0 == "checkpoint" || $0.hasPrefix("tile/") }
            .filter { !FileSystem.isDirectory(directory + "/" + $0) }
        let present = Set(all)
        var widest: [String: Int] = [:]
        for file in all {
            guard let range = file.range(of: ".p/"), let width = Int(file[range.upperBound...]) else { continue }
            widest[String(file[..<range.lowerBound]), default: 0] = max(
                widest[String(file[..<range.lowerBound]), default: 0], width)
        }
        return all.filter { file in
            guard let range = file.range(of: ".p/"), let width = Int(file[range.upperBound...]) else { return true }
            let tile = String(file[..<range.lowerBound])
            return !present.contains(tile) && widest[tile] == width
        }.sorted()
    }

    @Test("1,000 random mutations of a verified log are all detected")
    func randomMutations() async throws {
        let dir = try TemporaryDirectory("tamper")
        defer { dir.remove() }
        // 600 entries, then 66,000 more: full and partial tiles on levels 0, 1 and 2.
        let keys = try await makeLog(in: dir.path, count: 600)
        let older = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/audit/checkpoint"))
        let log = try TransparencyLog(directory: dir.path + "/audit", signer: keys.signer)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<32 {
                group.addTask {
                    for i in 0..<2063 {
                        _ = try await log.append(
                            Array("w\(worker) e\(i) \(String(repeating: "x", count: i % 40))".utf8))
                    }
                }
            }
            try await group.waitForAll()
        }
        try await log.close()
        let audit = dir.path + "/audit"
        let newer = try Data(contentsOf: URL(fileURLWithPath: audit + "/checkpoint"))
        let verifier = LogVerifier(directory: audit, key: keys.signer.verifierKey)
        let report = try await verifier.verify(trusted: Array(older))
        #expect(report.entries == 600 + 32 * 2063)

        let files = Self.files(in: audit)
        let bundles = files.filter { $0.hasPrefix("tile/entries/") }
        #expect(files.contains { $0.hasPrefix("tile/2/") })
        var random = SplitMix(state: 0xC0FFEE)
        var detected = 0
        for round in 0..<1000 {
            let mutation = Mutation.allCases[round % Mutation.allCases.count]
            let target: String
            switch mutation {
            case .flipByte, .truncateFile: target = files.randomElement(using: &random)!
            case .dropEntry, .duplicateEntry, .swapEntries: target = bundles.randomElement(using: &random)!
            case .olderCheckpoint: target = "checkpoint"
            }
            let path = audit + "/" + target
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            var bytes = [UInt8](original)
            var trusted: [UInt8]? = nil
            switch mutation {
            case .flipByte:
                let i = Int.random(in: 0..<bytes.count, using: &random)
                bytes[i] ^= UInt8.random(in: 1...255, using: &random)
            case .truncateFile:
                bytes.removeLast(Int.random(in: 1...min(bytes.count, 64), using: &random))
            case .dropEntry, .duplicateEntry, .swapEntries:
                var entries = try #require(TileLayout.parseBundle(bytes)).map(Array.init)
                let i = Int.random(in: 0..<entries.count, using: &random)
                switch mutation {
                case .dropEntry: entries.remove(at: i)
                case .duplicateEntry: entries.insert(entries[i], at: i)
                default:
                    let j =
                        entries.count > 1 ? (i + Int.random(in: 1..<entries.count, using: &random)) % entries.count : i
                    if entries[i] == entries[j] { entries[i].append(0x20) } else { entries.swapAt(i, j) }
                }
                bytes = []
                for entry in entries { TileLayout.appendEntry(entry, to: &bytes) }
            case .olderCheckpoint:
                bytes = Array(older)
                trusted = Array(newer)
            }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                _ = try await verifier.verify(trusted: trusted)
                Issue.record("round \(round): \(mutation) of \(target) was not detected")
            } catch {
                detected += 1
            }
            try original.write(to: URL(fileURLWithPath: path))
        }
        #expect(detected == 1000)
        _ = try await verifier.verify(trusted: Array(older))
    }

    @Test("the first bad entry or file is named")
    func namesTheCulprit() async throws {
        let dir = try TemporaryDirectory("tamper")
        defer { dir.remove() }
        let keys = try await makeLog(in: dir.path, count: 300)
        let audit = dir.path + "/audit"
        let bundle = audit + "/tile/entries/000"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bundle)))
        var entries = try #require(TileLayout.parseBundle(bytes)).map(Array.init)
        entries[17][5] ^= 0x01
        bytes = []
        for entry in entries { TileLayout.appendEntry(entry, to: &bytes) }
        try Data(bytes).write(to: URL(fileURLWithPath: bundle))
        do {
            _ = try await LogVerifier(directory: audit, key: keys.signer.verifierKey).verify()
            Issue.record("tampering was not detected")
        } catch {
            #expect("\(error)".contains("entry 17"))
        }
    }
}
