import ArgumentParser
import CaduceusCore
import Foundation
import Logging
import Sealing

struct BenchSeal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "Seal and open rates, random-access chunk reads, against the raw AES-256-GCM rate.",
        discussion: """
            On one core: seals --gib GiB in 1 MiB chunks, fed a chunk at a time as a file reader feeds it, and opens every chunk again; reads \
            --samples random chunks of a sealed object of --object-gib GiB on disk. The reference, measured in \
            the same run, is swift-crypto's AES.GCM seal and open on 1 MiB buffers in a loop.
            """
    )

    @Option(help: "GiB to seal and open.") var gib: Int = 1
    @Option(help: "GiB of the object read at random (0: skip).") var objectGib: Int = 10
    @Option(help: "Random chunk reads to time.") var samples: Int = 2_000
    @Option(help: "Datasets whose data keys a KEK rotation re-wraps (0: skip the server part).")
    var datasets: Int = 10_000
    @Option(help: "GiB uploaded and downloaded over HTTPS on loopback (0: skip).") var uploadGib: Int = 4
    @Option(help: "Directory for the scratch object and server (default: the system temporary directory).")
    var directory: String?

    func run() async throws {
        let total = gib << 30
        // Reference and sealer alternate in eight rounds, so that a noisy neighbour slows both alike.
        var raw = (seal: 0.0, open: 0.0)
        var sealer = (seal: 0.0, open: 0.0)
        let rounds = 8
        for _ in 0..<rounds {
            let r = try SealBenchmark.rawRates(total: total / rounds, bufferBytes: 1 << 20)
            let s = try SealBenchmark.sealerRates(total: total / rounds, chunkSize: 1 << 20)
            raw = (raw.seal + 1 / r.seal, raw.open + 1 / r.open)
            sealer = (sealer.seal + 1 / s.seal, sealer.open + 1 / s.open)
        }
        // Harmonic means: bytes over total time.
        raw = (Double(rounds) / raw.seal, Double(rounds) / raw.open)
        sealer = (Double(rounds) / sealer.seal, Double(rounds) / sealer.open)
        var figures: [(String, String)] = [
            ("bytes", "\(total)"),
            ("rawSealGBps", Self.gb(raw.seal)), ("rawOpenGBps", Self.gb(raw.open)),
            ("sealGBps", Self.gb(sealer.seal)), ("openGBps", Self.gb(sealer.open)),
            ("sealPercentOfRaw", String(format: "%.1f", 100 * sealer.seal / raw.seal)),
            ("openPercentOfRaw", String(format: "%.1f", 100 * sealer.open / raw.open)),
        ]
        if objectGib > 0 {
            let path = (directory ?? FileManager.default.temporaryDirectory.path) + "/caduceus-bench-seal-\(getpid())"
            defer { unlink(path) }
            let started = ContinuousClock.now
            let key = try SealBenchmark.makeObject(path: path, bytes: objectGib << 30, chunkSize: 1 << 20)
            let written = ContinuousClock.now - started
            let latencies = try SealBenchmark.randomAccess(path: path, key: key, samples: samples).sorted()
            figures += [
                ("objectBytes", "\(objectGib << 30)"),
                (
                    "objectSealSecondsWithDisk",
                    String(
                        format: "%.2f",
                        Double(written.components.attoseconds) / 1e18 + Double(written.components.seconds))
                ),
                ("randomChunkReadP50Microseconds", String(format: "%.1f", latencies[latencies.count / 2])),
                ("randomChunkReadP99Microseconds", String(format: "%.1f", latencies[latencies.count * 99 / 100])),
            ]
        }
        if datasets > 0 {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = .warning
                return handler
            }
            let served = try await BenchDatasets.run(
                datasets: datasets, uploadBytes: uploadGib << 30,
                directory: directory ?? FileManager.default.temporaryDirectory.path)
            figures += [
                ("rotationDatasets", "\(served.datasets)"),
                ("rotationSeconds", String(format: "%.3f", served.rotationSeconds)),
                ("httpsUploadBytes", "\(served.uploadBytes)"),
                ("httpsUploadMBps", String(format: "%.1f", served.uploadMBps)),
                ("httpsDownloadMBps", String(format: "%.1f", served.downloadMBps)),
                ("peakResidentMiBDuringUpload", String(format: "%.1f", served.peakResidentMiBDuringUpload)),
                ("referenceDiskWriteMBps", String(format: "%.1f", served.diskWriteMBps)),
            ]
        }
        StandardStreams.line("{" + figures.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    static func gb(_ bytesPerSecond: Double) -> String { String(format: "%.3f", bytesPerSecond / 1e9) }
}
