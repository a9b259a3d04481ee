import CaduceusCore
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a transparency log batches appends and how often it materialises tiles.
public struct TransparencyLogOptions: Sendable {
    /// The most entries committed with one journal write and one fdatasync.
    public var maxBatchSize: Int = 256
    /// How long a batch may wait for more appenders once the first has arrived, in nanoseconds.
    public var maxBatchDelay: UInt64 = 2_000_000
    /// A batch stops waiting early when no appender has arrived for this long, in nanoseconds.
    public var batchIdleGap: UInt64 = 100_000
    /// How often tiles and the checkpoint file are brought up to date while appends continue, in nanoseconds.
    public var materializeInterval: UInt64 = 1_000_000_000
    /// The durable record several replicas share, written before the local journal; nil on one machine.
    public var shared: (any SharedJournal)?
    /// The nice value the committer thread asks for, -20 to 0 (0: it runs as the process does). Every append
    /// waits on the committer, so a committer waiting for a core holds up all of them: a lower value lets it
    /// run first. The kernel grants it only within the process's `RLIMIT_NICE` (or with `CAP_SYS_NICE`);
    /// `TransparencyLog.committerPriority` says what was granted.
    public var committerNice: Int32 = 0

    /// The defaults: batches of up to 256 entries within 2 ms, tiles materialised every second.
    public init() {}
}

/// The scheduling priority a log's committer thread runs at.
public struct CommitterPriority: Sendable, Equatable {
    /// The nice value asked for (`TransparencyLogOptions.committerNice`); 0 leaves the thread as the process is.
    public var requested: Int32
    /// The nice value the thread runs at; nil where it cannot be read.
    public var granted: Int32?
    /// The thread's ID (a `/proc/self/task` entry), where the system has one.
    public var thread: Int?

    /// Whether the thread runs at the value asked for or ahead of it (nothing asked for is always granted).
    public var isGranted: Bool { requested == 0 || granted.map { $0 <= requested } ?? false }
}

/// A tamper-evident, append-only log: RFC 9162 Merkle tree, C2SP tiles and signed checkpoints.
///
/// Appends are async and may come from many tasks at once. They are grouped into batches; each batch is
/// written to the journal and made durable with one `fdatasync`, and its checkpoint is signed, before any
/// appender in it is told its index. Tiles, entry bundles and the `checkpoint` file are materialised from
/// the committed tree in the background (and on `sync()` and `close()`); after a crash they are rebuilt
/// from the journal when the log is opened again.
///
/// With a shared journal (`TransparencyLogOptions.shared`, several replicas) each batch is recorded there
/// first, where the log ends or not at all; opening the log catches it up from the shared journal.
public final class TransparencyLog: @unchecked Sendable {
    // Safe: `shared` is read and written only with `lock` held; `committer` only by the committer thread
    // once it runs (and by `init` before it starts), and so is `tiles`; `materializer` only by the
    // materialiser thread (and by `init`).
    private let lock = ConditionLock(conditions: 2)
    private static let committerWake = 0
    private static let materializerWake = 1

    private var shared: Shared
    private var committer: Committer
    private var tiles: TileBuilder
    private var materializer: TileMaterializer
    private let options: TransparencyLogOptions
    private let logger: Logger

    /// The log directory (tiles, checkpoint, journal).
    public let directory: String
    /// The log's origin line, which is also the signing key's name.
    public let origin: String

    private typealias Waiter = CheckedContinuation<UInt64, any Error>

    private struct Shared {
        var queue: [(entry: [UInt8], waiter: Waiter)] = []
        var failure: CaduceusError?
        var closing = false
        var committerDone = false
        var materializerDone = false
        var closeWaiters: [CheckedContinuation<Void, any Error>] = []
        var latest: SignedCheckpoint
        var committedSize: UInt64
        var materialized: SignedCheckpoint
        var job: TileMaterializer.Job?
        var materializing = false
        var syncWaiters: [(size: UInt64, waiter: CheckedContinuation<SignedCheckpoint, any Error>)] = []
    }

    private struct Committer {
        var frontier: MerkleFrontier
        var journal: Journal
        var signer: CheckpointSigner
        var lastMaterializeRequest: UInt64 = monotonicNanoseconds()
    }

    /// Opens the log in `directory`, creating it if it is empty, and recovers from any crash.
    ///
    /// - Parameters:
    ///   - directory: the log directory; created (0700) if missing.
    ///   - signer: the checkpoint signing key; its name is the log's origin.
    public init(
        directory: String, signer: NoteSigner, options: TransparencyLogOptions = TransparencyLogOptions(),
        logger: Logger = Logger(label: "caduceus.audit")
    ) throws {
        self.directory = directory
        self.origin = signer.name
        self.options = options
        self.logger = logger
        let journalDirectory = directory + "/journal"
        try FileSystem.makeDirectories(directory)
        var recovered = try LogRecovery.recover(
            directory: directory, journalDirectory: journalDirectory, signer: signer, logger: logger)
        if let shared = options.shared {
            try LogRecovery.catchUp(&recovered, from: shared, signer: signer, logger: logger)
        }
        var journal = Journal(directory: journalDirectory)
        try journal.openSegment(startingAt: recovered.materialized.checkpoint.size)
        committer = Committer(frontier: recovered.frontier, journal: journal, signer: recovered.signer)
        tiles = recovered.tiles
        materializer = TileMaterializer(directory: directory, journalDirectory: journalDirectory)
        shared = Shared(
            latest: recovered.signer.last, committedSize: recovered.frontier.size, materialized: recovered.materialized)
        if recovered.frontier.size > recovered.materialized.checkpoint.size
            || !FileSystem.exists(directory + "/checkpoint")
        {
            let job = try makeJob()
            try materializer.write(job)
            shared.materialized = job.checkpoint
        }
        let started = ConditionLock()
        DedicatedThread.start(name: "audit-commit") { [self] in
            let granted = Self.prioritise(options.committerNice)
            started.withLock {
                priority.withLock { $0 = granted }
                started.signal()
            }
            runCommitter()
        }
        started.withLock {
            while priority.withLock({ $0 }) == nil { started.wait() }
        }
        DedicatedThread.start(name: "audit-tiles") { [self] in runMaterializer() }
    }

    /// Set by the committer thread as it starts, before `init` returns.
    private let priority = Mutex<CommitterPriority?>(nil)

    /// The priority the committer thread runs at.
    public var committerPriority: CommitterPriority {
        priority.withLock { $0 } ?? CommitterPriority(requested: options.committerNice, granted: nil, thread: nil)
    }

    /// Raises the calling thread's priority to `nice` when that is higher than the thread's own (on Linux,
    /// `setpriority` of thread 0 is the calling thread's alone; a lower one is never taken), and says what it
    /// runs at.
    private static func prioritise(_ nice: Int32) -> CommitterPriority {
        #if canImport(Glibc)
        // `/proc/thread-self` links to `<process>/task/<thread>`.
        var link = [CChar](repeating: 0, count: 64)
        let length = readlink("/proc/thread-self", &link, link.count - 1)
        let thread =
            length > 0
            ? Int(
                String(decoding: link[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: "/")
                    .last ?? "")
            : nil
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        // getpriority may return -1 as a value: only errno tells a failure.
        func current() -> Int32? {
            errno = 0
            let value = getpriority(which, 0)
            return errno == 0 ? value : nil
        }
        if nice < 0, let before = current(), nice < before { _ = setpriority(which, 0, nice) }
        return CommitterPriority(requested: nice, granted: current(), thread: thread)
        #else
        return CommitterPriority(requested: nice, granted: nil, thread: nil)
        #endif
    }

    /// The newest signed checkpoint: every entry it covers is durable.
    public var checkpoint: SignedCheckpoint { lock.withLock { shared.latest } }

    /// Why the log refuses appends, once it has failed closed; nil while it works.
    public var failure: CaduceusError? { lock.withLock { shared.failure } }

    /// The newest checkpoint whose tiles are all on disk: proofs can be built against it.
    public var materializedCheckpoint: SignedCheckpoint { lock.withLock { shared.materialized } }

    /// Appends an entry and returns its index once it is durable and covered by a signed checkpoint.
    ///
    /// Throws, writing nothing, if the entry is empty or over 65,535 bytes, or if the log has failed or is
    /// closed; a failed write fails every appender of its batch and every later one (the log fails closed).
    public func append(_ entry: [UInt8]) async throws -> UInt64 {
        guard !entry.isEmpty, entry.count <= TileLayout.maxEntrySize else {
            throw CaduceusError(
                code: "audit.entryTooLarge",
                message: "an audit entry must be 1 to \(TileLayout.maxEntrySize) bytes, not \(entry.count)")
        }
        return try await withCheckedThrowingContinuation { waiter in
            lock.lock()
            if let failure = shared.failure ?? (shared.closing ? Self.closedError : nil) {
                lock.unlock()
                waiter.resume(throwing: failure)
                return
            }
            shared.queue.append((entry, waiter))
            if shared.queue.count == 1 || shared.queue.count >= options.maxBatchSize { lock.signal(Self.committerWake) }
            lock.unlock()
        }
    }

    /// Brings tiles and the `checkpoint` file up to the newest committed entry and returns that checkpoint.
    @discardableResult
    public func sync() async throws -> SignedCheckpoint {
        try await withCheckedThrowingContinuation { waiter in
            lock.lock()
            defer { lock.unlock() }
            if let failure = shared.failure {
                waiter.resume(throwing: failure)
            } else if shared.materialized.checkpoint.size >= shared.committedSize {
                waiter.resume(returning: shared.materialized)
            } else {
                shared.syncWaiters.append((shared.committedSize, waiter))
                lock.signal(Self.committerWake)
            }
        }
    }

    /// Commits what is queued, materialises everything, and stops the log's threads.
    ///
    /// The log must be closed once it is no longer needed: its threads keep it alive until then.
    public func close() async throws {
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, any Error>) in
            lock.lock()
            shared.closing = true
            shared.closeWaiters.append(waiter)
            lock.broadcast(Self.committerWake)
            lock.broadcast(Self.materializerWake)
            let finished = takeCloseWaitersIfStopped()
            lock.unlock()
            finished()
        }
    }

    /// Once both threads have stopped, the close waiters and how to answer them (lock held).
    private func takeCloseWaitersIfStopped() -> () -> Void {
        guard shared.committerDone && shared.materializerDone else { return {} }
        let waiters = shared.closeWaiters
        shared.closeWaiters.removeAll()
        let result: Result<Void, any Error> = shared.failure.map { .failure($0) } ?? .success(())
        return { for waiter in waiters { waiter.resume(with: result) } }
    }

    private static let closedError = CaduceusError(code: "audit.closed", message: "the audit log is closed")

    // MARK: Committer thread

    private func runCommitter() {
        lock.lock()
        while true {
            while shared.queue.isEmpty && !shared.closing && !materializationDue() {
                if shared.committedSize > shared.materialized.checkpoint.size && shared.failure == nil {
                    lock.wait(Self.committerWake, nanoseconds: options.materializeInterval)
                } else {
                    lock.wait(Self.committerWake)
                }
            }
            if shared.queue.isEmpty && shared.closing { break }
            if !shared.queue.isEmpty { lingerForBatch() }
            let batch = Array(shared.queue.prefix(options.maxBatchSize))
            shared.queue.removeFirst(batch.count)
            let failure = shared.failure
            lock.unlock()

            if !batch.isEmpty {
                if let failure {
                    for item in batch { item.waiter.resume(throwing: failure) }
                } else {
                    commit(batch)
                }
            }
            lock.lock()
            if materializationDue() { scheduleMaterialization() }
        }
        // Closing: the queue is drained; wait for the materialiser, hand it the last job, and stop.
        if shared.failure == nil {
            while shared.materializing || shared.job != nil { lock.wait(Self.committerWake, nanoseconds: 1_000_000) }
            if shared.committedSize > shared.materialized.checkpoint.size { scheduleMaterialization() }
        }
        committer.journal.close()
        shared.committerDone = true
        lock.broadcast(Self.materializerWake)
        let finished = takeCloseWaitersIfStopped()
        lock.unlock()
        finished()
    }

    /// Whether tiles should be brought up to date now (lock held).
    private func materializationDue() -> Bool {
        guard shared.failure == nil, !shared.materializing, shared.job == nil,
            shared.committedSize > shared.materialized.checkpoint.size
        else { return false }
        return !shared.syncWaiters.isEmpty || shared.closing
            || monotonicNanoseconds() - committer.lastMaterializeRequest >= options.materializeInterval
    }

    /// Waits briefly for more appenders while they keep arriving (lock held).
    private func lingerForBatch() {
        let deadline = monotonicNanoseconds() + options.maxBatchDelay
        while shared.queue.count < options.maxBatchSize && !shared.closing {
            let now = monotonicNanoseconds()
            guard now < deadline else { return }
            let before = shared.queue.count
            lock.wait(Self.committerWake, nanoseconds: min(options.batchIdleGap, deadline - now))
            if shared.queue.count == before { return }
        }
    }

    private func commit(_ batch: [(entry: [UInt8], waiter: Waiter)]) {
        let first = committer.frontier.size
        // With a shared journal a batch may be refused for a while (the database is away); the state before it
        // is kept to go back to.
        let before = options.shared == nil ? nil : (committer.frontier, tiles, committer.signer)
        do {
            let previousRoot = committer.frontier.root
            for item in batch {
                committer.frontier.append(TreeHash.leaf(item.entry)) { height, index, hash in
                    tiles.addNode(height: height, index: index, hash: hash)
                }
                tiles.addEntry(item.entry)
            }
            let next = Checkpoint(origin: origin, size: committer.frontier.size, root: committer.frontier.root)
            let signed = try committer.signer.sign(next, extending: previousRoot)
            let record = JournalRecord(firstIndex: first, entries: batch.map(\.entry), checkpointNote: signed.note)
            if let sharedJournal = options.shared {
                do {
                    try sharedJournal.append(record)
                } catch let error as CaduceusError where error.code != SharedJournalError.conflict {
                    // The database could not be reached: this batch is refused and forgotten, and the log
                    // goes on once it can be. Had the database recorded it after all, the next batch finds
                    // the log longer than this one thinks and the log fails closed.
                    (committer.frontier, tiles, committer.signer) = before!
                    logger.error("the shared audit journal refused a batch", metadata: ["error": "\(error)"])
                    let failure = CaduceusError(
                        code: "audit.unavailable", message: "the audit log cannot be written now", underlying: error)
                    for item in batch { item.waiter.resume(throwing: failure) }
                    return
                }
            }
            try committer.journal.append(record.encoded())
            lock.withLock {
                shared.latest = signed
                shared.committedSize = next.size
            }
            for (offset, item) in batch.enumerated() { item.waiter.resume(returning: first + UInt64(offset)) }
        } catch {
            let failure =
                error as? CaduceusError
                ?? CaduceusError(code: "audit.io", message: "cannot commit to the audit log", underlying: error)
            logger.critical("audit log commit failed; the log now refuses appends", metadata: ["error": "\(failure)"])
            fail(with: failure)
            for item in batch { item.waiter.resume(throwing: failure) }
        }
    }

    private func fail(with failure: CaduceusError) {
        lock.lock()
        if shared.failure == nil { shared.failure = failure }
        let waiters = shared.syncWaiters
        shared.syncWaiters.removeAll()
        lock.broadcast(Self.materializerWake)
        lock.unlock()
        for item in waiters { item.waiter.resume(throwing: failure) }
    }

    /// Builds the next materialisation job and starts a new journal segment (committer thread).
    private func makeJob() throws -> TileMaterializer.Job {
        let job = TileMaterializer.Job(files: tiles.takeFiles(), checkpoint: committer.signer.last)
        try committer.journal.rotate(startingAt: committer.frontier.size)
        return job
    }

    /// Hands a materialisation job to the materialiser thread (lock held).
    private func scheduleMaterialization() {
        committer.lastMaterializeRequest = monotonicNanoseconds()
        do {
            shared.job = try makeJob()
            lock.signal(Self.materializerWake)
        } catch {
            let failure = CaduceusError(code: "audit.io", message: "cannot rotate the audit journal", underlying: error)
            shared.failure = shared.failure ?? failure
        }
    }

    // MARK: Materialiser thread

    private func runMaterializer() {
        lock.lock()
        while true {
            while shared.job == nil && !shared.committerDone { lock.wait(Self.materializerWake) }
            guard let job = shared.job else { break }
            shared.job = nil
            shared.materializing = true
            lock.unlock()
            var failure: CaduceusError?
            do {
                try materializer.write(job)
            } catch {
                failure =
                    error as? CaduceusError
                    ?? CaduceusError(code: "audit.io", message: "cannot write audit tiles", underlying: error)
                logger.critical("audit tiles could not be written", metadata: ["error": "\(error)"])
            }
            lock.lock()
            shared.materializing = false
            var ready: [CheckedContinuation<SignedCheckpoint, any Error>] = []
            if let failure {
                shared.failure = shared.failure ?? failure
                ready = shared.syncWaiters.map(\.waiter)
                shared.syncWaiters.removeAll()
            } else {
                shared.materialized = job.checkpoint
                ready = shared.syncWaiters.filter { $0.size <= job.checkpoint.checkpoint.size }.map(\.waiter)
                shared.syncWaiters.removeAll { $0.size <= job.checkpoint.checkpoint.size }
            }
            let result =
                shared.failure.map { Result<SignedCheckpoint, any Error>.failure($0) } ?? .success(job.checkpoint)
            lock.signal(Self.committerWake)
            lock.unlock()
            for waiter in ready { waiter.resume(with: result) }
            lock.lock()
        }
        shared.materializerDone = true
        let finished = takeCloseWaitersIfStopped()
        lock.unlock()
        finished()
    }
}
