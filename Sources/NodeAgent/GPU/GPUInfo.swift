/// One GPU of a node, as discovery found it.
///
/// A GPU is offered to work only when nothing about it lets two jobs share it: MIG must be off (now and
/// after the next reset) and the compute mode must be exclusive-process. `refusal` says why one is not.
public struct GPUInfo: Hashable, Sendable, Codable {
    /// The device's index in NVML's enumeration (for fake GPUs, their number).
    public var index: Int
    /// The product name, e.g. `NVIDIA H200`.
    public var name: String
    /// The stable identifier, e.g. `GPU-5f0c…`; fake GPUs carry `FAKE-…`.
    public var uuid: String
    /// The device memory in bytes.
    public var memoryBytes: UInt64
    /// Multi-Instance GPU mode.
    public var mig: GPUFeatureState
    /// Who may create contexts on the GPU.
    public var computeMode: GPUComputeMode
    /// Error-correcting memory.
    public var ecc: GPUFeatureState
    /// Whether this is a host-memory stand-in rather than a real device.
    public var fake: Bool

    /// Creates a description of a GPU.
    public init(
        index: Int, name: String, uuid: String, memoryBytes: UInt64, mig: GPUFeatureState,
        computeMode: GPUComputeMode, ecc: GPUFeatureState, fake: Bool
    ) {
        self.index = index
        self.name = name
        self.uuid = uuid
        self.memoryBytes = memoryBytes
        self.mig = mig
        self.computeMode = computeMode
        self.ecc = ecc
        self.fake = fake
    }

    /// Why the GPU may not be offered to work, or nil when it may.
    ///
    /// Fails closed: a mode that could not be read refuses the GPU just as a sharing mode does.
    public var refusal: String? {
        switch mig {
        case .enabled, .disabling:
            return "MIG is enabled: jobs in different MIG instances would share one GPU"
        case .enabling:
            return "MIG will be enabled at the next GPU reset: jobs could come to share one GPU"
        case .unknown:
            return "the MIG mode could not be read"
        case .disabled, .unsupported:
            break
        }
        switch computeMode {
        case .exclusiveProcess, .exclusiveThread:
            return nil
        case .shared:
            return "the compute mode is Default (shared): several processes may use the GPU at once; "
                + "set it to EXCLUSIVE_PROCESS (nvidia-smi -c EXCLUSIVE_PROCESS)"
        case .prohibited:
            return "the compute mode is Prohibited: no process may use the GPU"
        case .unknown:
            return "the compute mode could not be read"
        }
    }

    /// Whether the GPU may be offered to work.
    public var isOfferable: Bool { refusal == nil }
}

/// The state of a GPU feature that can be switched on or off, such as MIG or ECC.
///
/// A change made with `nvidia-smi` takes effect at the next reset; until then the feature is `enabling` or
/// `disabling`.
public enum GPUFeatureState: String, Hashable, Sendable, Codable, CaseIterable {
    /// The GPU does not have the feature.
    case unsupported
    /// Off, and staying off.
    case disabled
    /// On, and staying on.
    case enabled
    /// Off now, on after the next reset.
    case enabling
    /// On now, off after the next reset.
    case disabling
    /// The state could not be read.
    case unknown

    /// The state from NVML's current and pending values (0 disabled, 1 enabled).
    init(current: UInt32, pending: UInt32) {
        switch (current != 0, pending != 0) {
        case (false, false): self = .disabled
        case (true, true): self = .enabled
        case (false, true): self = .enabling
        case (true, false): self = .disabling
        }
    }
}

/// Who may create compute contexts on a GPU (NVML's `nvmlComputeMode_t`).
public enum GPUComputeMode: String, Hashable, Sendable, Codable, CaseIterable {
    /// `NVML_COMPUTEMODE_DEFAULT`: any number of processes at once.
    case shared
    /// `NVML_COMPUTEMODE_EXCLUSIVE_THREAD` (deprecated): one context, used by one thread.
    case exclusiveThread
    /// `NVML_COMPUTEMODE_PROHIBITED`: no contexts at all.
    case prohibited
    /// `NVML_COMPUTEMODE_EXCLUSIVE_PROCESS`: one process at a time.
    case exclusiveProcess
    /// The mode could not be read.
    case unknown

    /// The mode from NVML's numeric value.
    init(nvml value: UInt32) {
        switch value {
        case 0: self = .shared
        case 1: self = .exclusiveThread
        case 2: self = .prohibited
        case 3: self = .exclusiveProcess
        default: self = .unknown
        }
    }
}

/// What a node has in the way of GPUs.
public struct GPUInventory: Hashable, Sendable, Codable {
    /// The NVIDIA driver version (`fake` for fake GPUs), when known.
    public var driverVersion: String?
    /// The GPUs found, in index order.
    public var gpus: [GPUInfo]
    /// Whether the GPUs are host-memory stand-ins.
    public var fake: Bool
    /// Why there are no GPUs, or why some are missing (e.g. `libnvidia-ml.so.1 not found`).
    public var notes: [String]

    /// Creates an inventory.
    public init(driverVersion: String?, gpus: [GPUInfo], fake: Bool, notes: [String] = []) {
        self.driverVersion = driverVersion
        self.gpus = gpus
        self.fake = fake
        self.notes = notes
    }

    /// An inventory with no GPUs, for the reason given.
    public static func none(_ reason: String) -> GPUInventory {
        GPUInventory(driverVersion: nil, gpus: [], fake: false, notes: [reason])
    }

    /// The GPUs that may be offered to work.
    public var offerable: [GPUInfo] { gpus.filter(\.isOfferable) }
}
