#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex with condition variables, for the log's dedicated I/O threads.
///
/// The log's committer blocks in `fdatasync`; doing that on a thread of its own keeps Swift's small
/// cooperative pool free for the appenders.
final class ConditionLock: @unchecked Sendable {
    // Safe: the pthread objects are allocated once, never moved, and used only through pthread calls,
    // which synchronise themselves.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let conditions: UnsafeMutablePointer<pthread_cond_t>
    private let conditionCount: Int

    init(conditions count: Int = 1) {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        conditionCount = count
        conditions = .allocate(capacity: count)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        for i in 0..<count { pthread_cond_init(conditions + i, &attributes) }
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        for i in 0..<conditionCount { pthread_cond_destroy(conditions + i) }
        pthread_mutex_destroy(mutex)
        conditions.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits on condition `index`; the lock must be held.
    func wait(_ index: Int = 0) { pthread_cond_wait(conditions + index, mutex) }

    /// Waits on condition `index` for at most `nanoseconds`; the lock must be held.
    func wait(_ index: Int = 0, nanoseconds: UInt64) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let total = UInt64(deadline.tv_nsec) + nanoseconds
        deadline.tv_sec += Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        pthread_cond_timedwait(conditions + index, mutex, &deadline)
    }

    func signal(_ index: Int = 0) { pthread_cond_signal(conditions + index) }
    func broadcast(_ index: Int = 0) { pthread_cond_broadcast(conditions + index) }
}

/// Monotonic time in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
