import CaduceusCore
import Synchronization

/// GPUs made of host memory, for demos and tests on machines without a GPU (`--fake-gpus N`).
///
/// Each fake GPU owns a buffer of host memory that the scrub protocol allocates from, fills, reads back
/// and frees exactly as it does device memory, so the whole scrub path runs in CI. Fake GPUs say so
/// everywhere: their UUIDs start with `FAKE-`, their name is `Fake GPU (host memory)`, and every inventory
/// and record carries `fake: true`.
///
/// Tests can make a fake GPU misbehave (`inject(_:into:)`) to drive the failure paths.
public final class FakeGPUBackend: GPUBackend {
    private let devices: [FakeGPUDevice]

    /// Creates `count` fake GPUs of `memoryBytes` each (a multiple of 4; 64 MiB by default).
    public init(count: Int, memoryBytes: Int = 64 << 20) {
        let bytes = max(4, memoryBytes & ~3)
        devices = (0..<max(0, count)).map { FakeGPUDevice(index: $0, bytes: bytes) }
    }

    /// The UUID of fake GPU `index`: `FAKE-` and a UUID-shaped number, so it cannot be mistaken for a real one.
    public static func uuid(index: Int) -> String {
        let digits = String(index, radix: 16)
        return "FAKE-00000000-0000-0000-0000-" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }

    public func discover() -> GPUInventory {
        let gpus = devices.map {
            GPUInfo(
                index: $0.index, name: "Fake GPU (host memory)", uuid: Self.uuid(index: $0.index),
                memoryBytes: UInt64($0.bytes), mig: .unsupported, computeMode: .exclusiveProcess, ecc: .unsupported,
                fake: true)
        }
        return GPUInventory(
            driverVersion: "fake", gpus: gpus, fake: true,
            notes: ["fake GPUs: host memory standing in for \(devices.count) GPU(s); not real devices"])
    }

    public func withMemory<T>(
        of gpu: GPUInfo, _ body: (FakeGPUMemory) throws(CaduceusError) -> T
    )
        throws(CaduceusError) -> T
    {
        let device = try device(of: gpu)
        var result: Result<T, CaduceusError> = .failure(CaduceusError(code: "gpu.fake", message: "not run"))
        device.session.withLock { _ in
            do throws(CaduceusError) {
                result = .success(try body(FakeGPUMemory(device: device)))
            } catch {
                result = .failure(error)
            }
            device.releaseAll()
        }
        return try result.get()
    }

    public func runningProcesses(on gpu: GPUInfo) throws(CaduceusError) -> [Int32] {
        try device(of: gpu).state.withLock { $0.leftoverProcesses.sorted() }
    }

    /// Makes fake GPU `index` misbehave from now on, until `clearFaults(of:)`.
    @_spi(Testing) public func inject(_ fault: FakeGPUFault, into index: Int) {
        devices[index].state.withLock { state in
            switch fault {
            case .corruptFill: state.corruptFill = true
            case .deviceError: state.deviceError = true
            case .leftoverProcess(let pid): state.leftoverProcesses.insert(pid)
            case .reservedMemory(let bytes): state.reserved = max(0, min(bytes, devices[index].bytes))
            case .maximumAllocation(let bytes): state.maximumAllocation = bytes
            }
        }
    }

    /// Makes fake GPU `index` behave again.
    @_spi(Testing) public func clearFaults(of index: Int) {
        devices[index].state.withLock { state in
            state.corruptFill = false
            state.deviceError = false
            state.leftoverProcesses = []
            state.reserved = 0
            state.maximumAllocation = nil
        }
    }

    /// Fills all of fake GPU `index` with `pattern`, as a job's data would fill a real one.
    @_spi(Testing) public func write(_ pattern: UInt32, onto index: Int) {
        let device = devices[index]
        device.session.withLock { _ in device.words.update(repeating: pattern) }
    }

    /// How many 32-bit words of fake GPU `index` hold `pattern`.
    @_spi(Testing) public func count(of pattern: UInt32, on index: Int) -> Int {
        let device = devices[index]
        return device.session.withLock { _ in device.words.reduce(0) { $1 == pattern ? $0 + 1 : $0 } }
    }

    private func device(of gpu: GPUInfo) throws(CaduceusError) -> FakeGPUDevice {
        guard gpu.fake, devices.indices.contains(gpu.index), gpu.uuid == Self.uuid(index: gpu.index) else {
            throw CaduceusError(code: "gpu.fake", message: "no fake GPU \(gpu.uuid)")
        }
        return devices[gpu.index]
    }
}

/// A way to make a fake GPU misbehave, to test what a failed scrub does.
@_spi(Testing) public enum FakeGPUFault: Hashable, Sendable {
    /// Fills write the complement of the pattern into the first block, so verification finds a mismatch.
    case corruptFill
    /// Fills fail, as on a device that fell off the bus.
    case deviceError
    /// A process keeps a context on the GPU.
    case leftoverProcess(Int32)
    /// This many bytes at the end of the memory cannot be allocated, as if another context held them.
    case reservedMemory(Int)
    /// No single allocation may be larger than this, as on a device whose free memory is fragmented.
    case maximumAllocation(Int)
}

/// One fake GPU: its host memory and its allocation table.
final class FakeGPUDevice: @unchecked Sendable {
    // `words` is written only while `session` is held; `state` guards the rest.
    struct State {
        var allocations: [UInt64: Int] = [:]
        var next = 0
        var reserved = 0
        var maximumAllocation: Int?
        var corruptFill = false
        var deviceError = false
        var leftoverProcesses: Set<Int32> = []
    }

    /// Where fake device addresses start, so that no address is zero.
    static let base: UInt64 = 0x1_0000_0000

    let index: Int
    let bytes: Int
    let words: UnsafeMutableBufferPointer<UInt32>
    let session = Mutex(())
    let state = Mutex(State())

    init(index: Int, bytes: Int) {
        self.index = index
        self.bytes = bytes
        words = .allocate(capacity: bytes / 4)
        words.initialize(repeating: 0)
    }

    deinit { words.deallocate() }

    func releaseAll() {
        state.withLock {
            $0.allocations = [:]
            $0.next = 0
        }
    }
}

/// A fake GPU's memory: a bump allocator over its host buffer.
public struct FakeGPUMemory: GPUMemory {
    let device: FakeGPUDevice

    public func memoryInfo() throws(CaduceusError) -> (free: Int, total: Int) {
        let bytes = device.bytes
        return device.state.withLock { (bytes - $0.reserved - $0.next, bytes) }
    }

    public func allocate(_ bytes: Int) throws(CaduceusError) -> UInt64? {
        let capacity = device.bytes
        return device.state.withLock { state in
            guard bytes > 0, bytes % 4 == 0, state.next + bytes <= capacity - state.reserved,
                bytes <= state.maximumAllocation ?? bytes
            else { return nil }
            let address = FakeGPUDevice.base + UInt64(state.next)
            state.allocations[address] = bytes
            state.next += bytes
            return address
        }
    }

    public func fill(_ address: UInt64, bytes: Int, pattern: UInt32) throws(CaduceusError) {
        let (start, corrupt, broken) = try range(address, bytes) { $0.corruptFill && address == FakeGPUDevice.base }
        guard !broken else { throw CaduceusError(code: "gpu.fake", message: "fill failed: the fake device is lost") }
        UnsafeMutableBufferPointer(rebasing: device.words[start..<(start + bytes / 4)])
            .update(repeating: corrupt ? ~pattern : pattern)
    }

    public func synchronize() throws(CaduceusError) {}

    public func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(CaduceusError) {
        let (start, _, _) = try range(address, buffer.count) { _ in false }
        let source = UnsafeRawBufferPointer(
            UnsafeMutableBufferPointer(rebasing: device.words[start..<(start + buffer.count / 4)]))
        buffer.copyMemory(from: source)
    }

    public func free(_ address: UInt64) throws(CaduceusError) {
        let known = device.state.withLock { state in
            guard state.allocations.removeValue(forKey: address) != nil else { return false }
            if state.allocations.isEmpty { state.next = 0 }
            return true
        }
        guard known else { throw CaduceusError(code: "gpu.fake", message: "free of an address never allocated") }
    }

    /// The word index where `bytes` at `address` start, after checking they lie inside one allocation.
    private func range(
        _ address: UInt64, _ bytes: Int, _ corrupt: (FakeGPUDevice.State) -> Bool
    )
        throws(CaduceusError) -> (start: Int, corrupt: Bool, broken: Bool)
    {
        let inside = device.state.withLock { state -> (Bool, Bool, Bool) in
            let owner = state.allocations.first {
                address >= $0.key && address + UInt64(bytes) <= $0.key + UInt64($0.value)
            }
            return (owner != nil, corrupt(state), state.deviceError)
        }
        guard inside.0, bytes % 4 == 0, address % 4 == 0 else {
            throw CaduceusError(
                code: "gpu.fake", message: "access outside an allocation at 0x\(String(address, radix: 16))")
        }
        return (Int(address - FakeGPUDevice.base) / 4, inside.1, inside.2)
    }
}
