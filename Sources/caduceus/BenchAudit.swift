import ArgumentParser
import AuditLog
import CaduceusCore
import Crypto
import Foundation

struct BenchAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Durable append rate, latency, proof time and verification rate of the audit log.",
        discussion: """
            Appends --entries audit events of about 300 bytes from --appenders concurrent tasks to a new log \
            (each acknowledged only once durable), then builds inclusion proofs and verifies the whole log \
            offline. References measured in the same run: raw SHA-256 on 65-byte inputs, fdatasync after a \
            small append, and atomic file replacement (write, fsync, rename, directory fsync).
            """
    )

    @Option(help: "Entries to append.")
    var entries: Int = 1_000_000

    @Option(help: "Concurrent appenders.")
    var appenders: Int = 64

    @Option(help: "Inclusion proofs to time.")
    var proofs: Int = 10_000

    @Option(help: "Directory to create the scratch log in (default: the system temporary directory).")
    var directory: String?

    @Flag(help: "Keep the scratch log afterwards.")
    var keep = false

    func run() async throws {
        let base = directory ?? FileManager.default.temporaryDirectory.path
        let root = base + "/caduceus-bench-audit-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if !keep { try? FileManager.default.removeItem(atPath: root) } }

        let (sha, swiftCryptoSHA) = Self.rawSHA256Rates()
        let fsyncRate = try Self.fdatasyncRate(path: root + "/fsync-probe")
        let replaceRate = try Self.atomicReplaceRate(directory: root)

        let keys = try AuditKeys.loadOrCreate(directory: root + "/keys", origin: "bench.caduceus.local/audit")
        let log = try TransparencyLog(directory: root + "/audit", signer: keys.signer)
        let template = try Self.template()
        let perAppender = (entries + appenders - 1) / appenders
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for worker in 0..<appenders {
                group.addTask {
                    var entry = template
                    var times: [UInt64] = []
                    times.reserveCapacity(perAppender)
                    let first = worker * perAppender
                    for i in first..<min(entries, first + perAppender) {
                        Self.stamp(&entry, i)
                        let t0 = ContinuousClock.now
                        _ = try await log.append(entry)
                        times.append(UInt64((ContinuousClock.now - t0).nanoseconds))
                    }
                    return times
                }
            }
            var all: [UInt64] = []
            all.reserveCapacity(entries)
            for try await part in group { all += part }
            return all
        }
        let appendSeconds = (ContinuousClock.now - start).seconds
        let closeStart = ContinuousClock.now
        try await log.close()
        let closeSeconds = (ContinuousClock.now - closeStart).seconds
        let sorted = latencies.sorted()
        let mean = Double(latencies.reduce(0, +)) / Double(max(1, latencies.count)) / 1000
        let p99 = Double(sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, sorted.count * 99 / 100)]) / 1000

        let checkpoint = try Checkpoint.open(
            try Array(Data(contentsOf: URL(fileURLWithPath: root + "/audit/checkpoint"))), key: keys.signer.verifierKey)
        let proof = try Self.proofTimes(directory: root + "/audit", size: checkpoint.size, count: proofs)

        let verifyStart = ContinuousClock.now
        let report = try await LogVerifier(directory: root + "/audit", key: keys.signer.verifierKey).verify()
        let verifySeconds = (ContinuousClock.now - verifyStart).seconds
        let verifyRate = Double(report.hashes) / verifySeconds

        let figures: [(String, String)] = [
            ("entries", "\(entries)"),
            ("entryBytes", "\(template.count)"),
            ("appenders", "\(appenders)"),
            ("durableAppendsPerSecond", Self.number(Double(entries) / appendSeconds)),
            ("appendSeconds", Self.number(appendSeconds)),
            ("appendLatencyMeanMicroseconds", Self.number(mean)),
            ("appendLatencyP99Microseconds", Self.number(p99)),
            ("closeAndMaterializeSeconds", Self.number(closeSeconds)),
            ("inclusionProofMicrosecondsWarm", Self.number(proof.warm)),
            ("inclusionProofMicrosecondsFirstTouch", Self.number(proof.cold)),
            ("verifyHashesPerSecond", Self.number(verifyRate)),
            ("verifySeconds", Self.number(verifySeconds)),
            ("verifyThreads", "\(LogVerifier(directory: "", key: keys.signer.verifierKey).parallelism)"),
            ("referenceSHA256PerSecond65Bytes", Self.number(sha)),
            ("referenceSwiftCryptoSHA256PerSecond65Bytes", Self.number(swiftCryptoSHA)),
            ("sha256Accelerated", "\(TreeHash.isAccelerated)"),
            ("verifyRateOverRawSHA256", Self.number(verifyRate / sha)),
            ("referenceFdatasyncPerSecond", Self.number(fsyncRate)),
            ("referenceAtomicReplacePerSecond", Self.number(replaceRate)),
            ("treeSize", "\(checkpoint.size)"),
        ]
        StandardStreams.line("{" + figures.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    static func number(_ value: Double) -> String {
        String(format: "%.2f", value)
    }

    /// A canonical audit event of about 300 bytes whose ID digits are rewritten per entry.
    static func template() throws -> [UInt8] {
        let event = AuditEvent(
            id: "evt-000000000000", time: Timestamp(millisecondsSinceEpoch: 1_795_000_000_000),
            actor: .init(id: "usr-7f3a9c2e", type: "user"), action: "dataset.read",
            resource: .init(type: "dataset", id: "ds-3b9f27e1"), tenant: "tnt-0042", outcome: .success,
            purposeOfUse: "TREAT", requestId: "req-5d1e9a7c", sourceAddress: "10.2.3.4")
        return try event.canonicalEntry()
    }

    /// Writes `n` as the 12 digits of the template's event ID.
    static func stamp(_ entry: inout [UInt8], _ n: Int) {
        let marker = Array("evt-".utf8)
        guard let at = (0..<(entry.count - 16)).first(where: { entry[$0..<($0 + 4)].elementsEqual(marker) }) else {
            return
        }
        var value = n
        for i in stride(from: at + 15, through: at + 4, by: -1) {
            entry[i] = UInt8(48 + value % 10)
            value /= 10
        }
    }

    /// SHA-256 of 65-byte inputs per second, by the tree's own hasher and by swift-crypto.
    static func rawSHA256Rates() -> (tree: Double, swiftCrypto: Double) {
        let tree = hashRate { input in input.withUnsafeBytes { TreeHash.sha256($0) }.value[0] }
        let swiftCrypto = hashRate { input in
            input.withUnsafeBytes { raw in
                var hasher = SHA256()
                hasher.update(bufferPointer: raw)
                return hasher.finalize().withUnsafeBytes { $0[0] }
            }
        }
        return (tree, swiftCrypto)
    }

    /// Calls `hash` on 2,000,000 distinct 65-byte inputs and returns the calls per second.
    static func hashRate(_ hash: ([UInt8]) -> UInt8) -> Double {
        var input = [UInt8](repeating: 0x5A, count: 65)
        let count = 2_000_000
        let start = ContinuousClock.now
        for i in 0..<count {
            // Each input depends on the previous digest, so no call can be skipped or overlapped.
            input[1] = UInt8(truncatingIfNeeded: i)
            input[2] = hash(input)
        }
        return Double(count) / (ContinuousClock.now - start).seconds
    }

    static func fdatasyncRate(path: String) throws -> Double {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CLIError("cannot create \(path)") }
        defer { close(fd); unlink(path) }
        let record = [UInt8](repeating: 0x42, count: 300)
        var count = 0
        let start = ContinuousClock.now
        while (ContinuousClock.now - start) < .seconds(1) {
            _ = record.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard fdatasync(fd) == 0 else { throw CLIError("fdatasync failed") }
            count += 1
        }
        return Double(count) / (ContinuousClock.now - start).seconds
    }

    static func atomicReplaceRate(directory: String) throws -> Double {
        let target = directory + "/replace-probe"
        let temp = target + ".tmp"
        let bytes = [UInt8](repeating: 0x43, count: 8192)
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(dirFD); unlink(target) }
        var count = 0
        let start = ContinuousClock.now
        while (ContinuousClock.now - start) < .seconds(1) {
            let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            fsync(fd)
            close(fd)
            rename(temp, target)
            fsync(dirFD)
            count += 1
        }
        return Double(count) / (ContinuousClock.now - start).seconds
    }

    /// Mean microseconds per inclusion proof for random indexes: first touch of each, then again warm.
    static func proofTimes(directory: String, size: UInt64, count: Int) throws -> (cold: Double, warm: Double) {
        guard size > 0, count > 0 else { return (0, 0) }
        var generator = SystemRandomNumberGenerator()
        let indexes = (0..<count).map { _ in UInt64.random(in: 0..<size, using: &generator) }
        let nodes = TileNodeCache()
        func pass() throws -> Double {
            let reader = TileReader(directory: directory, size: size, nodes: nodes)
            let start = ContinuousClock.now
            for index in indexes { _ = try MerkleProof.inclusionPath(index: index, size: size, reader: reader) }
            return (ContinuousClock.now - start).seconds * 1e6 / Double(count)
        }
        let cold = try pass()
        return (cold, try pass())
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
