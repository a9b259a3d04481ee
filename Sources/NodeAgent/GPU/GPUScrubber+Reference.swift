import CaduceusCore

/// The speed of one plain device-wide fill, to judge the scrub's speed against.
public struct GPUFillReference: Hashable, Sendable, Codable {
    /// The bytes filled by the single fill.
    public var bytes: UInt64
    /// How long the fill took, from issue to completion, in microseconds.
    public var microseconds: Int64

    /// Creates a measurement.
    public init(bytes: UInt64, microseconds: Int64) {
        self.bytes = bytes
        self.microseconds = microseconds
    }

    /// The rate in gigabytes (10⁹ bytes) per second.
    public var gigabytesPerSecond: Double {
        microseconds > 0 ? Double(bytes) / Double(microseconds) / 1_000 : 0
    }
}

extension GPUScrubber {
    /// Measures one fill over the largest single block the device gives (as one `cuMemsetD32`), after a small
    /// warm-up fill; blocks the calling thread.
    ///
    /// This is the best case for filling memory on the device, so a scrub's rate divided by it says how much
    /// allocating in blocks, verifying and freeing cost.
    public func measureReferenceFill(_ gpu: GPUInfo) throws(CaduceusError) -> GPUFillReference {
        try backend.withMemory(of: gpu) { (memory) throws(CaduceusError) in
            var size = max(0, try memory.memoryInfo().free) / options.granularity * options.granularity
            while size >= options.minimumBlockBytes {
                guard let address = try memory.allocate(size) else {
                    size = size / 2 / options.granularity * options.granularity
                    continue
                }
                defer { try? memory.free(address) }
                try memory.fill(address, bytes: options.granularity, pattern: 0)
                try memory.synchronize()
                let start = ContinuousClock.now
                try memory.fill(address, bytes: size, pattern: 0xA5A5_A5A5)
                try memory.synchronize()
                return GPUFillReference(bytes: UInt64(size), microseconds: elapsedMicroseconds(since: start))
            }
            throw CaduceusError(code: "gpu.reference.allocate", message: "GPU \(gpu.uuid): no memory to fill")
        }
    }
}
