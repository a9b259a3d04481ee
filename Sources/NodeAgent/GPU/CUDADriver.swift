import CaduceusCore

/// The CUDA driver API (`libcuda.so.1`), loaded at run time: the calls a scrub needs, declared from the
/// driver's documented C ABI.
///
/// `CUdevice` is an `Int32` ordinal, `CUcontext` an opaque pointer, `CUdeviceptr` a `UInt64`. The driver is
/// thread-safe; a context is current on the thread that created it.
final class CUDADriver: @unchecked Sendable {
    // Every stored property is immutable after init, and the driver's functions may be called from any thread.
    typealias Context = OpaquePointer

    private typealias InitCall = @convention(c) (UInt32) -> Int32
    private typealias CountCall = @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    private typealias DeviceGetCall = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    private typealias UUIDCall = @convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32
    private typealias ContextCreateCall = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32, Int32) -> Int32
    private typealias ContextCall = @convention(c) (OpaquePointer?) -> Int32
    private typealias VoidCall = @convention(c) () -> Int32
    private typealias MemoryInfoCall = @convention(c) (UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> Int32
    private typealias AllocateCall = @convention(c) (UnsafeMutablePointer<UInt64>?, Int) -> Int32
    private typealias SetCall = @convention(c) (UInt64, UInt32, Int) -> Int32
    private typealias CopyCall = @convention(c) (UnsafeMutableRawPointer?, UInt64, Int) -> Int32
    private typealias FreeCall = @convention(c) (UInt64) -> Int32
    private typealias ErrorNameCall = @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32

    static let success: Int32 = 0
    static let outOfMemory: Int32 = 2

    private let library: SharedLibrary
    private let initialise: InitCall
    private let getCount: CountCall
    private let getDevice: DeviceGetCall
    private let getUUID: UUIDCall
    private let createContext: ContextCreateCall
    private let destroyContext: ContextCall
    private let synchronizeContext: VoidCall
    private let getMemoryInfo: MemoryInfoCall
    private let allocateMemory: AllocateCall
    private let setMemory: SetCall
    private let copyToHost: CopyCall
    private let freeMemory: FreeCall
    private let errorName: ErrorNameCall?

    /// Loads the driver and calls `cuInit`.
    init(libraryName: String = "libcuda.so.1") throws(CaduceusError) {
        library = try SharedLibrary(libraryName)
        errorName = library.optional("cuGetErrorName", as: ErrorNameCall.self)
        initialise = try library.require("cuInit", as: InitCall.self)
        getCount = try library.require("cuDeviceGetCount", as: CountCall.self)
        getDevice = try library.require("cuDeviceGet", as: DeviceGetCall.self)
        guard
            let uuid = library.optional("cuDeviceGetUuid_v2", as: UUIDCall.self)
                ?? library.optional("cuDeviceGetUuid", as: UUIDCall.self)
        else {
            throw CaduceusError(
                code: "gpu.library", message: "\(libraryName) has no cuDeviceGetUuid; the driver is too old")
        }
        getUUID = uuid
        createContext = try library.require("cuCtxCreate_v2", as: ContextCreateCall.self)
        destroyContext = try library.require("cuCtxDestroy_v2", as: ContextCall.self)
        synchronizeContext = try library.require("cuCtxSynchronize", as: VoidCall.self)
        getMemoryInfo = try library.require("cuMemGetInfo_v2", as: MemoryInfoCall.self)
        allocateMemory = try library.require("cuMemAlloc_v2", as: AllocateCall.self)
        setMemory = try library.require("cuMemsetD32_v2", as: SetCall.self)
        copyToHost = try library.require("cuMemcpyDtoH_v2", as: CopyCall.self)
        freeMemory = try library.require("cuMemFree_v2", as: FreeCall.self)
        try check(initialise(0), "cuInit")
    }

    /// The CUDA ordinal of the GPU whose UUID NVML reports as `uuid` (`GPU-xxxxxxxx-xxxx-…`).
    ///
    /// CUDA numbers devices its own way (fastest first, and only those in `CUDA_VISIBLE_DEVICES`), so the
    /// ordinal is found by comparing UUIDs rather than assumed equal to NVML's index.
    func ordinal(ofUUID uuid: String) throws(CaduceusError) -> Int32 {
        var count: Int32 = 0
        try check(getCount(&count), "cuDeviceGetCount")
        for ordinal in 0..<count {
            var device: Int32 = 0
            try check(getDevice(&device, ordinal), "cuDeviceGet(\(ordinal))")
            var bytes = [UInt8](repeating: 0, count: 16)
            try check(getUUID(&bytes, device), "cuDeviceGetUuid(\(ordinal))")
            if Self.formatUUID(bytes) == uuid.lowercased() { return device }
        }
        throw CaduceusError(
            code: "gpu.cuda",
            message: "GPU \(uuid) is not among the \(count) devices CUDA sees (is CUDA_VISIBLE_DEVICES set?)")
    }

    /// NVML's text form of a 16-byte CUDA UUID: `gpu-` and 8-4-4-4-12 lower-case hexadecimal digits.
    static func formatUUID(_ bytes: [UInt8]) -> String {
        var text = "gpu"
        for (position, byte) in bytes.enumerated() {
            if [0, 4, 6, 8, 10].contains(position) { text += "-" }
            text += String(byte >> 4, radix: 16) + String(byte & 0x0f, radix: 16)
        }
        return text
    }

    func createContext(on device: Int32) throws(CaduceusError) -> Context {
        var context: OpaquePointer?
        try check(createContext(&context, 0, device), "cuCtxCreate_v2")
        guard let context else { throw CaduceusError(code: "gpu.cuda", message: "cuCtxCreate_v2 gave no context") }
        return context
    }

    func destroy(_ context: Context) throws(CaduceusError) {
        try check(destroyContext(context), "cuCtxDestroy_v2")
    }

    func synchronize() throws(CaduceusError) {
        try check(synchronizeContext(), "cuCtxSynchronize")
    }

    func memoryInfo() throws(CaduceusError) -> (free: Int, total: Int) {
        var free = 0
        var total = 0
        try check(getMemoryInfo(&free, &total), "cuMemGetInfo_v2")
        return (free, total)
    }

    /// Allocates `bytes`; nil when the device is out of memory.
    func allocate(_ bytes: Int) throws(CaduceusError) -> UInt64? {
        var address: UInt64 = 0
        let status = allocateMemory(&address, bytes)
        if status == Self.outOfMemory { return nil }
        try check(status, "cuMemAlloc_v2(\(bytes))")
        return address
    }

    func fill(_ address: UInt64, words: Int, pattern: UInt32) throws(CaduceusError) {
        try check(setMemory(address, pattern, words), "cuMemsetD32_v2")
    }

    func copy(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(CaduceusError) {
        try check(copyToHost(buffer.baseAddress, address, buffer.count), "cuMemcpyDtoH_v2")
    }

    func free(_ address: UInt64) throws(CaduceusError) {
        try check(freeMemory(address), "cuMemFree_v2")
    }

    private func check(_ status: Int32, _ what: String) throws(CaduceusError) {
        guard status != Self.success else { return }
        var name: UnsafePointer<CChar>?
        let text = errorName.flatMap { $0(status, &name) == Self.success ? name.map { String(cString: $0) } : nil }
        throw CaduceusError(code: "gpu.cuda", message: "\(what) failed: \(text ?? "error") (CUDA \(status))")
    }
}
