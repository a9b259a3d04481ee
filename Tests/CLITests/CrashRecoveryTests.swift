import AuditLog
import Foundation
import Testing

/// Kills a real appending process with SIGKILL at random moments and checks what survives.
struct CrashRecoveryTests {
    struct Ack: Decodable {
        var id: String
        var index: UInt64
    }

    @Test("after SIGKILL at 50 random moments every acknowledged entry is present and checkpoints stay consistent")
    func killAtRandomMoments() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let log = scratch.path + "/audit"
        #expect(try CLI.run(["audit", "init", "--log", log]).status == 0)
        let keys = try AuditKeys.load(directory: scratch.path + "/keys")
        var generator = SystemRandomNumberGenerator()
        var acknowledged: [UInt64: String] = [:]
        var checkpoints: [Checkpoint] = []
        var interrupted = 0
        for round in 0..<50 {
            let input = scratch.path + "/input-\(round).jsonl"
            let lines = (0..<20_000).map { i in
                eventLine(i).replacingOccurrences(of: "\"id\":\"evt-\(i)\"", with: "\"id\":\"r\(round)-e\(i)\"")
            }
            try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)

            let process = Process()
            process.executableURL = CLI.executable
            process.arguments = ["audit", "append", "--log", log, "--stream"]
            process.standardInput = FileHandle(forReadingAtPath: input)
            let stdout = Pipe()
            process.standardOutput = stdout
            process.standardError = FileHandle.nullDevice
            try process.run()
            let collector = Collector(stdout.fileHandleForReading)
            if round % 10 != 9 {
                // Mostly mid-stream: after the first acknowledgement, then a random while.
                let deadline = Date().addingTimeInterval(10)
                while collector.snapshot.isEmpty && Date() < deadline && process.isRunning { usleep(1000) }
                usleep(UInt32.random(in: 0...150_000, using: &generator))
            } else {
                // Sometimes during start-up or recovery.
                usleep(UInt32.random(in: 0...40_000, using: &generator))
            }
            let killedWhileRunning = process.isRunning
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let output = collector.finish()
            if killedWhileRunning { interrupted += 1 }

            var acks = 0
            for line in output.split(separator: UInt8(ascii: "\n")) {
                guard let ack = try? JSONDecoder().decode(Ack.self, from: Data(line)) else { continue }
                #expect(acknowledged[ack.index] == nil, "index \(ack.index) acknowledged twice")
                acknowledged[ack.index] = ack.id
                acks += 1
            }

            // Reopen: recovery runs, the log continues, and everything is materialised.
            let recovered = try TransparencyLog(directory: log, signer: keys.signer)
            let checkpoint = try await recovered.sync().checkpoint
            try await recovered.close()
            let reader = TileReader(directory: log, size: checkpoint.size)
            for (index, id) in acknowledged
            where index >= checkpoint.size - UInt64(min(Int(checkpoint.size), acks + 1024)) {
                let entry = String(decoding: try reader.entry(at: index), as: UTF8.self)
                #expect(entry.contains("\"id\":\"\(id)\""), "round \(round): acknowledged index \(index) lost")
            }
            #expect(acknowledged.keys.max().map { $0 < checkpoint.size } ?? true)
            for earlier in checkpoints {
                let root = earlier.size == 0 ? TreeHash.emptyTree : try MerkleProof.subtreeRoot(0, earlier.size, reader)
                #expect(
                    root == earlier.root, "round \(round): not consistent with the checkpoint of size \(earlier.size)")
            }
            checkpoints.append(checkpoint)
            try FileManager.default.removeItem(atPath: input)
        }
        // Every acknowledged entry, across all rounds, is where it was acknowledged.
        let final = try #require(checkpoints.last)
        let reader = TileReader(directory: log, size: final.size)
        for (index, id) in acknowledged {
            #expect(String(decoding: try reader.entry(at: index), as: UTF8.self).contains("\"id\":\"\(id)\""))
        }
        let report = try await LogVerifier(directory: log, key: keys.signer.verifierKey).verify()
        #expect(report.checkpoint == final)
        #expect(interrupted >= 40)
        #expect(acknowledged.count > 1000)
    }
}
