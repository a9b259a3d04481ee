import CaduceusCore

/// Where a node's GPUs come from: NVML and the CUDA driver on a GPU machine (`NVIDIABackend`), or host memory
/// standing in for GPUs in demos and tests (`FakeGPUBackend`).
///
/// The scrub protocol itself lives in `GPUScrubber` and runs unchanged over every backend: a backend only
/// lists its devices, opens a device's memory, and says which processes use a device.
public protocol GPUBackend: Sendable {
    /// A device's memory, open for one scrub.
    associatedtype Memory: GPUMemory

    /// Lists the GPUs. Never fails: a machine without a driver has an inventory with no GPUs and a note why.
    func discover() -> GPUInventory

    /// Opens `gpu`'s memory on the calling thread, runs `body` with it, and closes it again, releasing
    /// whatever `body` left allocated.
    ///
    /// The memory may be bound to the calling thread (a CUDA context is), so `body` must not hand it to
    /// another thread.
    func withMemory<T>(of gpu: GPUInfo, _ body: (Memory) throws(CaduceusError) -> T) throws(CaduceusError) -> T

    /// The IDs of the processes that hold a context on `gpu` now.
    func runningProcesses(on gpu: GPUInfo) throws(CaduceusError) -> [Int32]
}

/// A device's memory, as the scrub sees it: allocate, fill with a pattern, read back, free.
///
/// Addresses are device addresses (`CUdeviceptr`); sizes are in bytes. Fills may run asynchronously until
/// `synchronize` returns.
public protocol GPUMemory {
    /// The free and total device memory in bytes.
    func memoryInfo() throws(CaduceusError) -> (free: Int, total: Int)

    /// Allocates `bytes`; returns nil when the device has not that much memory to give.
    func allocate(_ bytes: Int) throws(CaduceusError) -> UInt64?

    /// Sets `bytes / 4` 32-bit words from `address` to `pattern`.
    func fill(_ address: UInt64, bytes: Int, pattern: UInt32) throws(CaduceusError)

    /// Waits until every fill issued so far has finished.
    func synchronize() throws(CaduceusError)

    /// Copies `buffer.count` bytes from `address` into host memory.
    func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(CaduceusError)

    /// Releases an allocation.
    func free(_ address: UInt64) throws(CaduceusError)
}
