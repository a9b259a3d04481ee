import Foundation
import Testing

/// `caduceus seal encrypt|decrypt` through the real binary: round trips, ranges, the checked-in vectors of
/// the format, and refusals that leave no plaintext behind.
struct SealCLITests {
    static let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SealingTests/Vectors").path

    @Test("seal encrypt and decrypt round-trip, read ranges, open the format's vectors, and refuse bad input")
    func sealCommands() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let key = scratch.path + "/key"
        _ = FileManager.default.createFile(
            atPath: key, contents: Data((0..<32).map { UInt8($0 * 3) }), attributes: [.posixPermissions: 0o600])
        let plaintext = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) })
        try plaintext.write(to: URL(fileURLWithPath: scratch.path + "/plain"))
        let sealed = try CLI.run(
            [
                "seal", "encrypt", "--key-file", key, "--in", scratch.path + "/plain", "--out",
                scratch.path + "/sealed",
                "--chunk-size", "65536", "--context", "tnt-1/dst-2",
            ])
        #expect(sealed.status == 0, "\(sealed.stderr)")
        #expect(sealed.text.contains(#""chunks":5"#), "\(sealed.text)")
        let opened = try CLI.run(
            ["seal", "decrypt", "--key-file", key, "--in", scratch.path + "/sealed", "--out", scratch.path + "/back"])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/back")) == plaintext)
        let ranged = try CLI.run(
            [
                "seal", "decrypt", "--key-file", key, "--in", scratch.path + "/sealed", "--out", scratch.path + "/part",
                "--range", "65000-131099",
            ])
        #expect(ranged.status == 0, "\(ranged.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/part")) == plaintext[65000...131_099])

        // The vectors of the format, made by a second implementation, open with their key alone.
        let vector = try CLI.run(
            [
                "seal", "decrypt", "--key-file", Self.vectors + "/key.bin", "--in",
                Self.vectors + "/three-chunks.sealed",
                "--out", scratch.path + "/vector",
            ])
        #expect(vector.status == 0, "\(vector.stderr)")
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/vector"))
                == Data(contentsOf: URL(fileURLWithPath: Self.vectors + "/three-chunks.plain")))

        // A wrong key, a flipped bit, or a range past the end: an error, and no plaintext written.
        let wrong = scratch.path + "/wrong"
        _ = FileManager.default.createFile(atPath: wrong, contents: Data(repeating: 9, count: 32))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/sealed"))
        bytes[bytes.count - 1000] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: scratch.path + "/flipped"))
        for (keyFile, input, extra) in [
            (wrong, "/sealed", [String]()), (key, "/flipped", []), (key, "/sealed", ["--range", "299999-300000"]),
        ] {
            let refused = try CLI.run(
                ["seal", "decrypt", "--key-file", keyFile, "--in", scratch.path + input, "--out", scratch.path + "/x"]
                    + extra)
            #expect(refused.status != 0, "\(keyFile) \(input) \(extra)")
            #expect(!FileManager.default.fileExists(atPath: scratch.path + "/x"))
            #expect(!FileManager.default.fileExists(atPath: scratch.path + "/x.partial"))
        }
        let short = try CLI.run(
            ["seal", "encrypt", "--key-file", scratch.path + "/plain", "--in", key, "--out", scratch.path + "/y"])
        #expect(short.status != 0 && short.stderr.contains("32 bytes"), "\(short.stderr)")
    }
}
