import CaduceusCore
import Synchronization

/// The real GPUs of this machine: discovery through NVML, memory through the CUDA driver API, both loaded
/// at run time, so that the same binary runs (with no GPUs) where neither is installed.
///
/// A GPU is matched to its CUDA device by UUID (`cuDeviceGetUuid_v2`), since CUDA's numbering differs from
/// NVML's and depends on `CUDA_VISIBLE_DEVICES`. The libraries are loaded on first use and kept.
public final class NVIDIABackend: GPUBackend {
    private let nvmlName: String
    private let cudaName: String
    private let nvml: Mutex<NVML?> = Mutex(nil)
    private let cuda: Mutex<CUDADriver?> = Mutex(nil)

    /// Creates the backend; nothing is loaded until first used, and a library that fails to load is tried
    /// again on the next use (the driver may come up after the agent).
    public init(nvmlLibrary: String = "libnvidia-ml.so.1", cudaLibrary: String = "libcuda.so.1") {
        self.nvmlName = nvmlLibrary
        self.cudaName = cudaLibrary
    }

    public func discover() -> GPUInventory {
        let nvml: NVML
        do {
            nvml = try loadNVML()
        } catch {
            return .none(error.message)
        }
        var notes: [String] = []
        let driverVersion: String?
        do {
            driverVersion = try nvml.driverVersion()
        } catch {
            driverVersion = nil
            notes.append(error.message)
        }
        let count: Int
        do {
            count = try nvml.deviceCount()
        } catch {
            return GPUInventory(driverVersion: driverVersion, gpus: [], fake: false, notes: notes + [error.message])
        }
        var gpus: [GPUInfo] = []
        for index in 0..<count {
            do {
                let device = try nvml.device(at: index)
                gpus.append(
                    GPUInfo(
                        index: index, name: try nvml.name(of: device), uuid: try nvml.uuid(of: device),
                        memoryBytes: try nvml.totalMemory(of: device), mig: nvml.migMode(of: device),
                        computeMode: nvml.computeMode(of: device), ecc: nvml.eccMode(of: device), fake: false))
            } catch {
                notes.append("GPU \(index) left out: \(error.message)")
            }
        }
        if count == 0 { notes.append("NVML found no GPUs") }
        return GPUInventory(driverVersion: driverVersion, gpus: gpus, fake: false, notes: notes)
    }

    public func withMemory<T>(
        of gpu: GPUInfo, _ body: (CUDAMemory) throws(CaduceusError) -> T
    ) throws(CaduceusError)
        -> T
    {
        let driver = try loadCUDA()
        let context = try driver.createContext(on: try driver.ordinal(ofUUID: gpu.uuid))
        let result: Result<T, CaduceusError>
        do {
            result = .success(try body(CUDAMemory(driver: driver)))
        } catch {
            result = .failure(error)
        }
        // Destroying the context frees whatever the body left allocated.
        try driver.destroy(context)
        return try result.get()
    }

    public func runningProcesses(on gpu: GPUInfo) throws(CaduceusError) -> [Int32] {
        let nvml = try loadNVML()
        return try nvml.runningProcesses(on: try nvml.device(uuid: gpu.uuid))
    }

    private func loadNVML() throws(CaduceusError) -> NVML {
        let name = nvmlName
        return try nvml.withLock { (loaded) throws(CaduceusError) in
            if let loaded { return loaded }
            let library = try NVML(libraryName: name)
            loaded = library
            return library
        }
    }

    private func loadCUDA() throws(CaduceusError) -> CUDADriver {
        let name = cudaName
        return try cuda.withLock { (loaded) throws(CaduceusError) in
            if let loaded { return loaded }
            let driver = try CUDADriver(libraryName: name)
            loaded = driver
            return driver
        }
    }
}

/// A GPU's memory through a CUDA context that is current on the calling thread.
public struct CUDAMemory: GPUMemory {
    let driver: CUDADriver

    public func memoryInfo() throws(CaduceusError) -> (free: Int, total: Int) {
        try driver.memoryInfo()
    }

    public func allocate(_ bytes: Int) throws(CaduceusError) -> UInt64? {
        try driver.allocate(bytes)
    }

    public func fill(_ address: UInt64, bytes: Int, pattern: UInt32) throws(CaduceusError) {
        try driver.fill(address, words: bytes / 4, pattern: pattern)
    }

    public func synchronize() throws(CaduceusError) {
        try driver.synchronize()
    }

    public func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(CaduceusError) {
        try driver.copy(address, into: buffer)
    }

    public func free(_ address: UInt64) throws(CaduceusError) {
        try driver.free(address)
    }
}
