import CaduceusCore

/// Evidence of one scrub of one GPU's memory, for the audit trail: what was overwritten and read back, how
/// long it took, and whether it passed.
///
/// Every field is an identifier, a count, a time or a code; `failure` holds a machine-made message, never
/// anything a job wrote.
public struct GPUScrubRecord: Hashable, Sendable, Codable {
    /// The node the GPU belongs to.
    public var node: NodeID
    /// The GPU's UUID (`GPU-…`, or `FAKE-…` for a host-memory stand-in).
    public var gpuUUID: String
    /// The GPU's index on the node.
    public var gpuIndex: Int
    /// Whether the GPU is a host-memory stand-in.
    public var fake: Bool
    /// Why the scrub ran.
    public var reason: GPUScrubReason
    /// The job whose end caused the scrub, if one did.
    public var job: JobID?
    /// When the scrub started.
    public var startedAt: Timestamp
    /// How long the scrub took in all, from the first process check to the last, in microseconds.
    public var durationMicroseconds: Int64
    /// The device's memory in bytes.
    public var deviceBytes: UInt64
    /// The bytes free on the device when the scrub began.
    public var freeBytesBefore: UInt64
    /// The bytes allocated and overwritten with the pattern.
    public var bytesOverwritten: UInt64
    /// The bytes read back and found to hold the pattern.
    public var bytesVerified: UInt64
    /// How many blocks the memory was taken in.
    public var blocks: Int
    /// How many times each block was overwritten.
    public var passes: Int
    /// The 32-bit pattern of the last pass.
    public var pattern: UInt32
    /// Time spent in each step.
    public var phases: GPUScrubPhases
    /// Whether the scrub passed.
    public var result: GPUScrubResult
    /// What went wrong, when it failed.
    public var failure: GPUScrubFailure?

    /// Creates a record.
    public init(
        node: NodeID, gpuUUID: String, gpuIndex: Int, fake: Bool, reason: GPUScrubReason, job: JobID?,
        startedAt: Timestamp, durationMicroseconds: Int64, deviceBytes: UInt64, freeBytesBefore: UInt64,
        bytesOverwritten: UInt64, bytesVerified: UInt64, blocks: Int, passes: Int, pattern: UInt32,
        phases: GPUScrubPhases, result: GPUScrubResult, failure: GPUScrubFailure?
    ) {
        self.node = node
        self.gpuUUID = gpuUUID
        self.gpuIndex = gpuIndex
        self.fake = fake
        self.reason = reason
        self.job = job
        self.startedAt = startedAt
        self.durationMicroseconds = durationMicroseconds
        self.deviceBytes = deviceBytes
        self.freeBytesBefore = freeBytesBefore
        self.bytesOverwritten = bytesOverwritten
        self.bytesVerified = bytesVerified
        self.blocks = blocks
        self.passes = passes
        self.pattern = pattern
        self.phases = phases
        self.result = result
        self.failure = failure
    }

    /// Whether the scrub passed.
    public var passed: Bool { result == .passed }
}

/// Why a GPU was scrubbed.
public enum GPUScrubReason: String, Hashable, Sendable, Codable, CaseIterable {
    /// A job that used the GPU ended.
    case jobEnded
    /// The node is being handed to another tenant.
    case tenantChange
    /// The agent started: what the GPUs held before is unknown.
    case startup
    /// An operator asked for it (or a retry after a failure).
    case requested
}

/// How a scrub ended.
public enum GPUScrubResult: String, Hashable, Sendable, Codable, CaseIterable {
    /// Memory overwritten, samples read back correct, no process left on the GPU.
    case passed
    /// Something went wrong; the GPU must not be given to work.
    case failed
}

/// Where a scrub's time went, in microseconds.
public struct GPUScrubPhases: Hashable, Sendable, Codable {
    /// Checking for processes before and after, with NVML.
    public var processCheckMicroseconds: Int64
    /// Opening the device (CUDA context creation) and closing it.
    public var setupMicroseconds: Int64
    /// Allocating the memory and overwriting it, up to the end of the last fill.
    public var overwriteMicroseconds: Int64
    /// Reading samples back and comparing them.
    public var verifyMicroseconds: Int64
    /// Freeing the memory.
    public var releaseMicroseconds: Int64

    /// Creates a breakdown; every phase defaults to zero.
    public init(
        processCheckMicroseconds: Int64 = 0, setupMicroseconds: Int64 = 0, overwriteMicroseconds: Int64 = 0,
        verifyMicroseconds: Int64 = 0, releaseMicroseconds: Int64 = 0
    ) {
        self.processCheckMicroseconds = processCheckMicroseconds
        self.setupMicroseconds = setupMicroseconds
        self.overwriteMicroseconds = overwriteMicroseconds
        self.verifyMicroseconds = verifyMicroseconds
        self.releaseMicroseconds = releaseMicroseconds
    }

    /// The scrub proper: allocating, overwriting, verifying and freeing, without opening the device.
    public var scrubMicroseconds: Int64 { overwriteMicroseconds + verifyMicroseconds + releaseMicroseconds }
}

/// Why a scrub failed: a stable code (`gpu.scrub.verify`, `gpu.scrub.processes`, …) and a message.
public struct GPUScrubFailure: Hashable, Sendable, Codable, CustomStringConvertible {
    /// A stable, dotted identifier of the kind of failure.
    public var code: String
    /// A one-line explanation.
    public var message: String

    /// Creates a failure.
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// The failure of an error.
    public init(_ error: CaduceusError) {
        self.init(code: error.code, message: error.description)
    }

    public var description: String { "\(code): \(message)" }
}
