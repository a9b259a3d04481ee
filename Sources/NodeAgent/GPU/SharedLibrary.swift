import CaduceusCore

#if canImport(Glibc)
import Glibc
#endif

/// A shared library opened at run time with `dlopen`, so that a binary that uses a vendor library still
/// starts on machines without it.
///
/// The library stays loaded for the life of the process: NVML and the CUDA driver keep global state that
/// does not survive being unloaded and loaded again.
struct SharedLibrary: @unchecked Sendable {
    // The handle is only passed to dlsym, which is thread-safe; it is never closed.
    private let handle: UnsafeMutableRawPointer
    /// The name the library was opened by.
    let name: String

    /// Opens `name`; fails with the loader's reason (e.g. `libnvidia-ml.so.1 not found`).
    init(_ name: String) throws(CaduceusError) {
        guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? ""
            let missing = reason.contains("No such file") || reason.contains("cannot open shared object")
            throw CaduceusError(
                code: "gpu.library", message: missing ? "\(name) not found" : "\(name) could not be loaded: \(reason)")
        }
        self.handle = handle
        self.name = name
    }

    /// The function `symbol` as a C function pointer of type `T`, or nil when the library lacks it.
    func optional<T>(_ symbol: String, as type: T.Type) -> T? {
        guard let address = dlsym(handle, symbol) else { return nil }
        return unsafeBitCast(address, to: type)
    }

    /// The function `symbol` as a C function pointer of type `T`; fails when the library lacks it.
    func require<T>(_ symbol: String, as type: T.Type) throws(CaduceusError) -> T {
        guard let function = optional(symbol, as: type) else {
            throw CaduceusError(code: "gpu.library", message: "\(name) has no \(symbol); the driver is too old")
        }
        return function
    }
}

/// A string from a C buffer that may lack its terminating zero.
func string(fromCBuffer buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
