#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Work that blocks (a durable write, a memory-hard hash) on a POSIX thread of its own, so that it never
/// holds one of the few threads of Swift's cooperative pool.
public enum DedicatedThread {
    /// Runs `body` on a new detached thread, named `name` (at most 15 bytes show) where the system names threads.
    public static func start(name: String? = nil, _ body: @escaping @Sendable () -> Void) {
        guard let name else { return start(body) }
        start {
            #if os(Linux)
            // What `pthread_setname_np` does, which Swift's C modules do not declare.
            let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
            if descriptor >= 0 {
                let bytes = Array(name.utf8.prefix(15))
                _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                close(descriptor)
            }
            #endif
            body()
        }
    }

    /// Runs `body` on a new detached thread.
    public static func start(_ body: @escaping @Sendable () -> Void) {
        final class Box {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.body()
                return nil
            }, box)
        precondition(result == 0, "cannot start a thread: error \(result)")
        pthread_detach(thread)
    }

    /// Runs `work` on a new thread and returns its result to the awaiting task.
    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            start { continuation.resume(with: Result { try work() }) }
        }
    }
}
