import CaduceusCore

/// How thoroughly and in what pieces GPU memory is scrubbed.
public struct GPUScrubOptions: Hashable, Sendable {
    /// How many times each block is overwritten; the last pass writes the record's pattern, earlier ones its
    /// complement. One pass plus sampled read-back is the default.
    public var passes: Int
    /// Block sizes are multiples of this (2 MiB, the device's large-page size).
    public var granularity: Int
    /// The smallest block tried before the scrub stops taking memory.
    public var minimumBlockBytes: Int
    /// The size of each window read back to verify.
    public var sampleBytes: Int
    /// Windows read back at random offsets in each block, besides its first and last.
    public var randomSamplesPerBlock: Int
    /// The least share of the device's memory that must be overwritten for the scrub to pass.
    public var minimumCoverage: Double

    /// Creates options; the defaults suit a data-centre GPU.
    public init(
        passes: Int = 1, granularity: Int = 2 << 20, minimumBlockBytes: Int = 2 << 20, sampleBytes: Int = 64 << 10,
        randomSamplesPerBlock: Int = 8, minimumCoverage: Double = 0.9
    ) {
        self.passes = max(1, passes)
        self.granularity = max(4, granularity)
        self.minimumBlockBytes = max(self.granularity, minimumBlockBytes)
        self.sampleBytes = max(4, sampleBytes & ~3)
        self.randomSamplesPerBlock = max(0, randomSamplesPerBlock)
        self.minimumCoverage = minimumCoverage
    }
}

/// Scrubs GPU memory: checks that no process holds the GPU, takes as much free device memory as can be had in
/// large blocks, overwrites it, reads samples back, frees it, and checks again that no process holds the GPU.
///
/// Memory is taken in blocks as large as the device gives: each allocation asks for what is free, and after a
/// refusal for half as much, down to `minimumBlockBytes`. Each block gets one device-wide fill per pass as
/// soon as it is allocated, so the device fills while the next block is being allocated. Verification reads
/// the first and last window of every block and `randomSamplesPerBlock` windows at random offsets.
///
/// The same protocol runs over real and fake devices. `scrub` blocks its thread (a CUDA context is bound to
/// one); `scrub(_:node:reason:job:)` on several GPUs runs each on a thread of its own.
public struct GPUScrubber<Backend: GPUBackend>: Sendable {
    /// The devices.
    public var backend: Backend
    /// How to scrub.
    public var options: GPUScrubOptions
    /// Where record times come from.
    public var clock: any WallClock

    /// Creates a scrubber.
    public init(
        backend: Backend, options: GPUScrubOptions = GPUScrubOptions(), clock: any WallClock = SystemWallClock()
    ) {
        self.backend = backend
        self.options = options
        self.clock = clock
    }

    /// Scrubs one GPU on the calling thread and returns the record, passed or failed.
    public func scrub(_ gpu: GPUInfo, node: NodeID, reason: GPUScrubReason, job: JobID? = nil) -> GPUScrubRecord {
        let startedAt = clock.now()
        let start = ContinuousClock.now
        var tally = Tally(pattern: UInt32.random(in: .min ... .max), deviceBytes: gpu.memoryBytes)
        var failure: CaduceusError?
        do throws(CaduceusError) {
            try checkNoProcesses(on: gpu, when: "before the scrub", tally: &tally)
            let opening = ContinuousClock.now
            var closing = opening
            try backend.withMemory(of: gpu) { (memory) throws(CaduceusError) in
                tally.phases.setupMicroseconds += elapsedMicroseconds(since: opening)
                try overwrite(memory, gpu: gpu, tally: &tally)
                closing = ContinuousClock.now
            }
            tally.phases.setupMicroseconds += elapsedMicroseconds(since: closing)
            try checkNoProcesses(on: gpu, when: "after the scrub", tally: &tally)
            try checkCoverage(gpu, tally: tally)
        } catch {
            failure = error
        }
        return GPUScrubRecord(
            node: node, gpuUUID: gpu.uuid, gpuIndex: gpu.index, fake: gpu.fake, reason: reason, job: job,
            startedAt: startedAt, durationMicroseconds: elapsedMicroseconds(since: start),
            deviceBytes: tally.deviceBytes,
            freeBytesBefore: tally.freeBytesBefore, bytesOverwritten: tally.bytesOverwritten,
            bytesVerified: tally.bytesVerified, blocks: tally.blocks, passes: options.passes, pattern: tally.pattern,
            phases: tally.phases, result: failure == nil ? .passed : .failed, failure: failure.map(GPUScrubFailure.init)
        )
    }

    /// Scrubs several GPUs at once, each on a thread of its own; the records come back in the order given.
    public func scrub(
        _ gpus: [GPUInfo], node: NodeID, reason: GPUScrubReason, job: JobID? = nil
    ) async
        -> [GPUScrubRecord]
    {
        await withTaskGroup(of: (Int, GPUScrubRecord).self) { group in
            for (position, gpu) in gpus.enumerated() {
                group.addTask {
                    let record = await withCheckedContinuation { continuation in
                        DedicatedThread.start {
                            continuation.resume(returning: self.scrub(gpu, node: node, reason: reason, job: job))
                        }
                    }
                    return (position, record)
                }
            }
            var records: [(Int, GPUScrubRecord)] = []
            for await result in group { records.append(result) }
            return records.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// What a scrub has done so far.
    struct Tally {
        var pattern: UInt32
        var deviceBytes: UInt64
        var freeBytesBefore: UInt64 = 0
        var bytesOverwritten: UInt64 = 0
        var bytesVerified: UInt64 = 0
        var blocks = 0
        var phases = GPUScrubPhases()
    }

    private func checkNoProcesses(on gpu: GPUInfo, when: String, tally: inout Tally) throws(CaduceusError) {
        let start = ContinuousClock.now
        let processes = try backend.runningProcesses(on: gpu)
        tally.phases.processCheckMicroseconds += elapsedMicroseconds(since: start)
        guard processes.isEmpty else {
            let list = processes.prefix(8).map(String.init).joined(separator: ", ")
            throw CaduceusError(
                code: "gpu.scrub.processes",
                message: "GPU \(gpu.uuid): \(when), process\(processes.count == 1 ? "" : "es") \(list) "
                    + "still hold\(processes.count == 1 ? "s" : "") a context on the GPU")
        }
    }

    private func checkCoverage(_ gpu: GPUInfo, tally: Tally) throws(CaduceusError) {
        let needed = Double(tally.deviceBytes) * options.minimumCoverage
        guard Double(tally.bytesOverwritten) >= needed else {
            throw CaduceusError(
                code: "gpu.scrub.coverage",
                message: "GPU \(gpu.uuid): only \(tally.bytesOverwritten) of \(tally.deviceBytes) bytes could be "
                    + "taken and overwritten; something else holds the rest")
        }
    }

    /// Takes, overwrites, verifies and frees the device's free memory.
    private func overwrite(_ memory: Backend.Memory, gpu: GPUInfo, tally: inout Tally) throws(CaduceusError) {
        let start = ContinuousClock.now
        let info = try memory.memoryInfo()
        tally.deviceBytes = UInt64(info.total)
        tally.freeBytesBefore = UInt64(info.free)
        var blocks: [(address: UInt64, bytes: Int)] = []
        defer {
            // Only after a failure: the release loop below empties `blocks` on success.
            for block in blocks { try? memory.free(block.address) }
        }
        var size = roundDown(info.free)
        while size >= options.minimumBlockBytes {
            guard let address = try memory.allocate(size) else {
                size = roundDown(size / 2)
                continue
            }
            blocks.append((address, size))
            for pass in 0..<options.passes {
                let pattern = pass == options.passes - 1 ? tally.pattern : ~tally.pattern
                try memory.fill(address, bytes: size, pattern: pattern)
            }
            tally.bytesOverwritten += UInt64(size)
            tally.blocks += 1
            size = min(size, roundDown(try memory.memoryInfo().free))
        }
        try memory.synchronize()
        tally.phases.overwriteMicroseconds = elapsedMicroseconds(since: start)
        guard !blocks.isEmpty else {
            throw CaduceusError(
                code: "gpu.scrub.allocate",
                message: "GPU \(gpu.uuid): no device memory could be allocated (\(info.free) bytes reported free)")
        }

        let verifying = ContinuousClock.now
        try verify(memory, blocks: blocks, gpu: gpu, tally: &tally)
        tally.phases.verifyMicroseconds = elapsedMicroseconds(since: verifying)

        let releasing = ContinuousClock.now
        while let block = blocks.last {
            try memory.free(block.address)
            blocks.removeLast()
        }
        tally.phases.releaseMicroseconds = elapsedMicroseconds(since: releasing)
    }

    /// Reads back the first and last window of every block and some at random offsets.
    private func verify(
        _ memory: Backend.Memory, blocks: [(address: UInt64, bytes: Int)], gpu: GPUInfo, tally: inout Tally
    ) throws(CaduceusError) {
        let words = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: options.sampleBytes / 4)
        defer { words.deallocate() }
        var generator = SystemRandomNumberGenerator()
        for (number, block) in blocks.enumerated() {
            let length = min(options.sampleBytes, block.bytes) & ~3
            let last = block.bytes - length
            var offsets = [0, last]
            for _ in 0..<options.randomSamplesPerBlock {
                offsets.append(Int.random(in: 0...last, using: &generator) & ~3)
            }
            let window = UnsafeMutableBufferPointer(rebasing: words[0..<(length / 4)])
            for offset in offsets {
                try memory.read(block.address + UInt64(offset), into: UnsafeMutableRawBufferPointer(window))
                if let bad = window.firstIndex(where: { $0 != tally.pattern }) {
                    throw CaduceusError(
                        code: "gpu.scrub.verify",
                        message: "GPU \(gpu.uuid): block \(number) reads 0x\(hexWord(window[bad])) at byte "
                            + "\(offset + bad * 4) after the scrub wrote 0x\(hexWord(tally.pattern))")
                }
                tally.bytesVerified += UInt64(length)
            }
        }
    }

    private func roundDown(_ bytes: Int) -> Int {
        max(0, bytes) / options.granularity * options.granularity
    }
}

/// Microseconds elapsed since `start`.
func elapsedMicroseconds(since start: ContinuousClock.Instant) -> Int64 {
    let elapsed = ContinuousClock.now - start
    return elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
}

/// Eight lower-case hexadecimal digits.
func hexWord(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}
