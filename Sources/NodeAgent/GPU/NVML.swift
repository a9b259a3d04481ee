import CaduceusCore

/// The NVIDIA Management Library (`libnvidia-ml.so.1`), loaded at run time: the calls discovery and the
/// process check need, declared from NVML's documented C ABI.
///
/// Device handles (`nvmlDevice_t`) are opaque pointers. NVML is thread-safe; it is initialised once when
/// loaded and stays initialised for the life of the process.
final class NVML: @unchecked Sendable {
    // Every stored property is immutable after init, and NVML's functions may be called from any thread.
    typealias Device = OpaquePointer

    private typealias VoidCall = @convention(c) () -> Int32
    private typealias CountCall = @convention(c) (UnsafeMutablePointer<UInt32>?) -> Int32
    private typealias HandleByIndexCall = @convention(c) (UInt32, UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    private typealias HandleByUUIDCall =
        @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    private typealias DeviceStringCall = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, UInt32) -> Int32
    private typealias SystemStringCall = @convention(c) (UnsafeMutablePointer<CChar>?, UInt32) -> Int32
    private typealias MemoryCall = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt64>?) -> Int32
    private typealias PairCall =
        @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?) -> Int32
    private typealias SingleCall = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt32>?) -> Int32
    private typealias ProcessesCall =
        @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt32>?, UnsafeMutableRawPointer?) -> Int32
    private typealias ErrorStringCall = @convention(c) (Int32) -> UnsafePointer<CChar>?

    static let success: Int32 = 0
    static let notSupported: Int32 = 3
    static let insufficientSize: Int32 = 7
    /// Bytes per `nvmlProcessInfo_t` (v2/v3: pid, usedGpuMemory, gpuInstanceId, computeInstanceId, padded).
    static let processInfoStride = 24
    /// NVML's buffer sizes for names, UUIDs and the driver version (`NVML_DEVICE_NAME_V2_BUFFER_SIZE`, …).
    static let stringBufferSize: UInt32 = 96

    private let library: SharedLibrary
    private let getCount: CountCall
    private let getHandleByIndex: HandleByIndexCall
    private let getHandleByUUID: HandleByUUIDCall
    private let getName: DeviceStringCall
    private let getUUID: DeviceStringCall
    private let getMemoryInfo: MemoryCall
    private let getMigMode: PairCall?
    private let getComputeMode: SingleCall
    private let getEccMode: PairCall
    private let getDriverVersion: SystemStringCall
    private let getComputeProcesses: ProcessesCall
    private let getGraphicsProcesses: ProcessesCall?
    private let errorString: ErrorStringCall?

    /// Loads and initialises NVML; fails with a reason such as `libnvidia-ml.so.1 not found`.
    init(libraryName: String = "libnvidia-ml.so.1") throws(CaduceusError) {
        library = try SharedLibrary(libraryName)
        errorString = library.optional("nvmlErrorString", as: ErrorStringCall.self)
        let initialise = try library.require("nvmlInit_v2", as: VoidCall.self)
        getCount = try library.require("nvmlDeviceGetCount_v2", as: CountCall.self)
        getHandleByIndex = try library.require("nvmlDeviceGetHandleByIndex_v2", as: HandleByIndexCall.self)
        getHandleByUUID = try library.require("nvmlDeviceGetHandleByUUID", as: HandleByUUIDCall.self)
        getName = try library.require("nvmlDeviceGetName", as: DeviceStringCall.self)
        getUUID = try library.require("nvmlDeviceGetUUID", as: DeviceStringCall.self)
        getMemoryInfo = try library.require("nvmlDeviceGetMemoryInfo", as: MemoryCall.self)
        getMigMode = library.optional("nvmlDeviceGetMigMode", as: PairCall.self)
        getComputeMode = try library.require("nvmlDeviceGetComputeMode", as: SingleCall.self)
        getEccMode = try library.require("nvmlDeviceGetEccMode", as: PairCall.self)
        getDriverVersion = try library.require("nvmlSystemGetDriverVersion", as: SystemStringCall.self)
        getComputeProcesses = try library.require("nvmlDeviceGetComputeRunningProcesses_v3", as: ProcessesCall.self)
        getGraphicsProcesses = library.optional("nvmlDeviceGetGraphicsRunningProcesses_v3", as: ProcessesCall.self)
        try check(initialise(), "nvmlInit_v2")
    }

    /// How many GPUs NVML sees.
    func deviceCount() throws(CaduceusError) -> Int {
        var count: UInt32 = 0
        try check(getCount(&count), "nvmlDeviceGetCount_v2")
        return Int(count)
    }

    /// The handle of the GPU at `index`.
    func device(at index: Int) throws(CaduceusError) -> Device {
        var handle: OpaquePointer?
        try check(getHandleByIndex(UInt32(index), &handle), "nvmlDeviceGetHandleByIndex_v2(\(index))")
        guard let handle else { throw failure("nvmlDeviceGetHandleByIndex_v2(\(index)) gave no handle") }
        return handle
    }

    /// The handle of the GPU with `uuid`.
    func device(uuid: String) throws(CaduceusError) -> Device {
        var handle: OpaquePointer?
        let status = uuid.withCString { getHandleByUUID($0, &handle) }
        try check(status, "nvmlDeviceGetHandleByUUID(\(uuid))")
        guard let handle else { throw failure("nvmlDeviceGetHandleByUUID(\(uuid)) gave no handle") }
        return handle
    }

    func name(of device: Device) throws(CaduceusError) -> String {
        try deviceString(getName, device, "nvmlDeviceGetName")
    }

    func uuid(of device: Device) throws(CaduceusError) -> String {
        try deviceString(getUUID, device, "nvmlDeviceGetUUID")
    }

    /// Total device memory in bytes (`nvmlMemory_t.total`).
    func totalMemory(of device: Device) throws(CaduceusError) -> UInt64 {
        var memory: (total: UInt64, free: UInt64, used: UInt64) = (0, 0, 0)
        let status = withUnsafeMutablePointer(to: &memory) {
            $0.withMemoryRebound(to: UInt64.self, capacity: 3) { getMemoryInfo(device, $0) }
        }
        try check(status, "nvmlDeviceGetMemoryInfo")
        return memory.total
    }

    func migMode(of device: Device) -> GPUFeatureState {
        guard let getMigMode else { return .unsupported }
        return featureState(getMigMode, device)
    }

    func eccMode(of device: Device) -> GPUFeatureState {
        featureState(getEccMode, device)
    }

    func computeMode(of device: Device) -> GPUComputeMode {
        var mode: UInt32 = 0
        guard getComputeMode(device, &mode) == Self.success else { return .unknown }
        return GPUComputeMode(nvml: mode)
    }

    func driverVersion() throws(CaduceusError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(Self.stringBufferSize))
        try check(getDriverVersion(&buffer, Self.stringBufferSize), "nvmlSystemGetDriverVersion")
        return string(fromCBuffer: buffer)
    }

    /// The IDs of the processes with a compute or graphics context on `device`.
    func runningProcesses(on device: Device) throws(CaduceusError) -> [Int32] {
        var found = try processes(getComputeProcesses, device, "nvmlDeviceGetComputeRunningProcesses_v3")
        if let getGraphicsProcesses {
            found += try processes(getGraphicsProcesses, device, "nvmlDeviceGetGraphicsRunningProcesses_v3")
        }
        return Array(Set(found)).sorted()
    }

    /// Asks with no buffer first: success with a count of zero means none; `NVML_ERROR_INSUFFICIENT_SIZE`
    /// means some, and gives how many to make room for.
    private func processes(_ call: ProcessesCall, _ device: Device, _ what: String) throws(CaduceusError) -> [Int32] {
        var count: UInt32 = 0
        var status = call(device, &count, nil)
        if status == Self.success { return [] }
        for _ in 0..<4 where status == Self.insufficientSize {
            var capacity = count + 8
            let buffer = UnsafeMutableRawBufferPointer.allocate(
                byteCount: Int(capacity) * Self.processInfoStride, alignment: 8)
            defer { buffer.deallocate() }
            status = call(device, &capacity, buffer.baseAddress)
            if status == Self.success {
                return (0..<Int(capacity)).map {
                    Int32(bitPattern: buffer.load(fromByteOffset: $0 * Self.processInfoStride, as: UInt32.self))
                }
            }
            count = capacity
        }
        try check(status, what)
        return []
    }

    private func featureState(_ call: PairCall, _ device: Device) -> GPUFeatureState {
        var current: UInt32 = 0
        var pending: UInt32 = 0
        switch call(device, &current, &pending) {
        case Self.success: return GPUFeatureState(current: current, pending: pending)
        case Self.notSupported: return .unsupported
        default: return .unknown
        }
    }

    private func deviceString(
        _ call: DeviceStringCall, _ device: Device, _ what: String
    ) throws(CaduceusError)
        -> String
    {
        var buffer = [CChar](repeating: 0, count: Int(Self.stringBufferSize))
        try check(call(device, &buffer, Self.stringBufferSize), what)
        return string(fromCBuffer: buffer)
    }

    private func check(_ status: Int32, _ what: String) throws(CaduceusError) {
        guard status != Self.success else { return }
        let text = errorString?(status).map { String(cString: $0) } ?? "error"
        throw failure("\(what) failed: \(text) (NVML \(status))")
    }

    private func failure(_ message: String) -> CaduceusError {
        CaduceusError(code: "gpu.nvml", message: message)
    }
}
