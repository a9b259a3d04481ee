import CaduceusCore
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Measures sealing and opening against this machine's raw AES-256-GCM rate, on one core.
public enum SealBenchmark {
    /// Bytes per second of a plain `AES.GCM.seal` and `open` on `bufferBytes` buffers, `total` bytes each.
    public static func rawRates(total: Int, bufferBytes: Int) throws -> (seal: Double, open: Double) {
        let key = SymmetricKey(size: .bits256)
        let buffer = [UInt8](repeating: 0x5A, count: bufferBytes)
        let rounds = max(1, total / bufferBytes)
        var boxes: [AES.GCM.SealedBox] = []
        let sealStart = ContinuousClock.now
        for index in 0..<rounds {
            let box = try AES.GCM.seal(buffer, using: key)
            if index < 4 { boxes.append(box) }
        }
        let sealSeconds = seconds(since: sealStart)
        let openStart = ContinuousClock.now
        for index in 0..<rounds { _ = try AES.GCM.open(boxes[index % boxes.count], using: key) }
        let openSeconds = seconds(since: openStart)
        return (Double(rounds * bufferBytes) / sealSeconds, Double(rounds * bufferBytes) / openSeconds)
    }

    /// Bytes per second of sealing `total` bytes with `Sealer`, fed a chunk's plaintext at a time as a file
    /// reader feeds it (the output is dropped), and of opening every chunk of the result again.
    public static func sealerRates(total: Int, chunkSize: Int) throws -> (seal: Double, open: Double) {
        let key = SymmetricKey(size: .bits256)
        var sealer = try Sealer(
            dataKey: key, keyID: [UInt8](repeating: 0, count: 16), keyVersion: 1, plaintextLength: UInt64(total),
            chunkSize: chunkSize, context: "bench")
        let step = sealer.header.plaintextPerChunk
        let piece = Data(repeating: 0xA5, count: step)
        var firstChunks: [Data] = []
        let sealStart = ContinuousClock.now
        var done = 0
        while done < total {
            let count = min(step, total - done)
            let sealed = try sealer.append(count == step ? piece : piece.prefix(count))
            if firstChunks.count < 4 { firstChunks += sealed }
            done += count
        }
        _ = try sealer.finish()
        let sealSeconds = seconds(since: sealStart)
        let opener = try Opener(headerBytes: sealer.headerBytes, dataKey: key)
        let chunks = opener.header.chunkCount - 1
        // Opened into one reused buffer, as a download streams them.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: step, alignment: 64)
        defer { buffer.deallocate() }
        let openStart = ContinuousClock.now
        for index in 0..<chunks {
            // Chunk i only opens as chunk i: the first few are opened in their own places, in rotation.
            let which = index % firstChunks.count
            let failure = firstChunks[which].withUnsafeBytes { sealed -> CaduceusError? in
                do {
                    try opener.open(chunk: which, sealed, into: buffer)
                    return nil
                } catch {
                    return (error as? CaduceusError) ?? SealError.invalid("\(error)")
                }
            }
            if let failure { throw failure }
        }
        let openSeconds = seconds(since: openStart)
        return (Double(total) / sealSeconds, Double(chunks * step) / openSeconds)
    }

    /// Seals `bytes` of zeros into a file at `path` (for random-access reads), returning the key.
    public static func makeObject(path: String, bytes: Int, chunkSize: Int) throws -> SymmetricKey {
        let key = SymmetricKey(size: .bits256)
        var sealer = try Sealer(
            dataKey: key, keyID: [UInt8](repeating: 0, count: 16), keyVersion: 1, plaintextLength: UInt64(bytes),
            chunkSize: chunkSize, context: "bench")
        let file = try File(path: path, write: true)
        defer { file.close() }
        try file.write(sealer.headerBytes)
        let piece = Data(repeating: 0, count: sealer.header.plaintextPerChunk)
        var done = 0
        while done < bytes {
            let count = min(piece.count, bytes - done)
            for chunk in try sealer.append(count == piece.count ? piece : piece.prefix(count)) { try file.write(chunk) }
            done += count
        }
        for chunk in try sealer.finish() { try file.write(chunk) }
        return key
    }

    /// Microseconds to read and open one random chunk of the sealed file at `path`, `samples` times.
    public static func randomAccess(path: String, key: SymmetricKey, samples: Int) throws -> [Double] {
        let file = try File(path: path, write: false)
        defer { file.close() }
        let opener = try Opener(headerBytes: try file.read(at: 0, count: SealHeader.size), dataKey: key)
        try opener.check(objectSize: try file.size())
        var state: UInt64 = 0x1234_5678
        var latencies: [Double] = []
        for _ in 0..<samples {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let index = Int((state >> 33) % UInt64(opener.header.chunkCount))
            let start = ContinuousClock.now
            let (offset, size) = opener.header.location(ofChunk: index)
            _ = try opener.open(chunk: index, try file.readData(at: offset, count: size))
            latencies.append(seconds(since: start) * 1e6)
        }
        return latencies
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
