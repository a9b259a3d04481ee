import ArgumentParser
import CaduceusCore
import Crypto
import Sealing

#if canImport(Glibc)
import Glibc
#endif

/// `caduceus seal`: the sealed-object format offline, with a raw 32-byte key file — to interoperate with
/// other tools, and to recover data with nothing but its data key.
struct SealCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal", abstract: "Seal or open a file in the sealed-object format with a raw key file.",
        subcommands: [Encrypt.self, Decrypt.self])

    struct KeyOptions: ParsableArguments {
        @Option(help: "A file holding the raw 32-byte data key.") var keyFile: String
        @Option(name: .customLong("in"), help: "The file to read.") var input: String
        @Option(name: .customLong("out"), help: "The file to write (mode 0600; written only if all goes well).")
        var output: String

        func key() throws -> SymmetricKey {
            let bytes = try StandardStreams.readInput(keyFile)
            guard bytes.count == 32 else { throw CLIError("\(keyFile) must hold exactly 32 bytes (a raw AES-256 key)") }
            var status = stat()
            if stat(keyFile, &status) == 0 && status.st_mode & 0o077 != 0 {
                StandardStreams.error("warning: \(keyFile) can be read by other users; keep keys at mode 0600")
            }
            return SymmetricKey(data: bytes)
        }
    }

    struct Encrypt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Seal a file.")
        @OptionGroup var files: KeyOptions
        @Option(help: "Ciphertext bytes per chunk: a multiple of 4096 (default 1048576).")
        var chunkSize: Int = SealHeader.defaultChunkSize
        @Option(help: "Context recorded in the header (IDs only, never PHI or file names).") var context: String = ""
        @Option(help: "The data key's id, 32 hex digits (default zeros).") var keyID: String?
        @Option(help: "The data key's version.") var keyVersion: UInt32 = 1

        func run() async throws {
            let id = try keyID.map(Self.hexBytes) ?? [UInt8](repeating: 0, count: 16)
            let sealed = try SealedFile.seal(
                input: files.input, output: files.output, dataKey: try files.key(), keyID: id,
                keyVersion: keyVersion, chunkSize: chunkSize, context: context)
            StandardStreams.line(
                #"{"plaintextBytes":\#(sealed.header.plaintextLength),"sealedBytes":\#(sealed.objectSize),"#
                    + #""chunks":\#(sealed.header.chunkCount),"plaintextSHA256":"\#(sealed.plaintextSHA256)"}"#)
        }

        static func hexBytes(_ text: String) throws -> [UInt8] {
            let digits = Array(text.lowercased().utf8)
            guard digits.count == 32 else { throw CLIError("--key-id takes 32 hex digits") }
            return try stride(from: 0, to: 32, by: 2).map { index in
                guard let byte = UInt8(String(decoding: digits[index..<(index + 2)], as: UTF8.self), radix: 16) else {
                    throw CLIError("--key-id takes 32 hex digits")
                }
                return byte
            }
        }
    }

    struct Decrypt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a sealed file (verifying every chunk read); --range START-END reads bytes START to END.")
        @OptionGroup var files: KeyOptions
        @Option(help: "Plaintext bytes START-END (END included, as in HTTP; START- reads to the end).")
        var range: String?

        func run() async throws {
            let key = try files.key()
            var wanted: Range<UInt64>?
            if let range {
                let length = try SealedFile.plaintextLength(path: files.input, dataKey: key)
                wanted = try Self.parse(range, length: length)
            }
            let written = try SealedFile.open(input: files.input, output: files.output, dataKey: key, range: wanted)
            StandardStreams.line(#"{"plaintextBytes":\#(written)}"#)
        }

        /// `START-END` (inclusive) or `START-` as a half-open range within `length`.
        static func parse(_ text: String, length: UInt64) throws -> Range<UInt64> {
            let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            let start = parts.count == 2 ? UInt64(parts[0]) : nil
            let end = parts.count == 2 ? (parts[1].isEmpty ? length : UInt64(parts[1]).map { $0 + 1 }) : nil
            guard let start, let end else { throw CLIError("--range takes START-END or START- (bytes, END included)") }
            guard start < end || (start == end && parts[1].isEmpty), end <= length else {
                throw CLIError("--range \(text) is not within the object's \(length) bytes")
            }
            return start..<end
        }
    }
}
