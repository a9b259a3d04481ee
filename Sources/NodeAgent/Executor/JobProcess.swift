import CaduceusCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the local executor runs: one job's program, where, with which GPUs and for how long.
public struct ExecutionRequest: Sendable, Hashable {
    /// The job.
    public var job: JobID
    /// Its tenant and project, passed to the program as `CADUCEUS_TENANT` and `CADUCEUS_PROJECT`.
    public var tenant: TenantID
    public var project: ProjectID
    /// The program: an absolute path, or a name looked up in `PATH`.
    public var command: String
    /// Its arguments.
    public var arguments: [String]
    /// Its environment (on top of a minimal one: `PATH`, `HOME` and `TMPDIR` set to the scratch directory).
    public var environment: [String: String]
    /// UUIDs of the GPUs it may use, passed as `CUDA_VISIBLE_DEVICES`.
    public var gpuUUIDs: [String]
    /// The longest it may run, in seconds.
    public var maxRuntimeSeconds: Int

    /// Creates a request.
    public init(
        job: JobID, tenant: TenantID, project: ProjectID, command: String, arguments: [String] = [],
        environment: [String: String] = [:], gpuUUIDs: [String] = [], maxRuntimeSeconds: Int
    ) {
        self.job = job
        self.tenant = tenant
        self.project = project
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.gpuUUIDs = gpuUUIDs
        self.maxRuntimeSeconds = maxRuntimeSeconds
    }

    /// The environment the program gets: the request's, then the executor's own variables, which win.
    func environment(scratch: String) -> [String: String] {
        var variables = environment
        variables["PATH"] = variables["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        variables["HOME"] = scratch
        variables["TMPDIR"] = scratch
        variables["CUDA_VISIBLE_DEVICES"] = gpuUUIDs.joined(separator: ",")
        variables["CADUCEUS_JOB_ID"] = job.rawValue
        variables["CADUCEUS_TENANT"] = tenant.rawValue
        variables["CADUCEUS_PROJECT"] = project.rawValue
        return variables
    }
}

/// How a job's process ended.
public enum ExecutionEnd: Hashable, Sendable, CustomStringConvertible {
    /// The program exited with this status.
    case exited(Int32)
    /// A signal the job did not ask for ended it.
    case signalled(Int32)
    /// It ran past its maximum run time and was stopped.
    case timedOut
    /// It was stopped because its job was cancelled.
    case cancelled
    /// It was stopped because its job was preempted.
    case preempted
    /// It never started.
    case failedToStart(String)

    /// Whether the job succeeded.
    public var succeeded: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .signalled(let signal): "ended by signal \(signal)"
        case .timedOut: "stopped after its maximum run time"
        case .cancelled: "stopped: cancelled"
        case .preempted: "stopped: preempted"
        case .failedToStart(let reason): "did not start: \(reason)"
        }
    }
}

/// Why the executor stops a job.
public enum StopReason: Hashable, Sendable {
    case cancelled, preempted, timedOut

    var end: ExecutionEnd {
        switch self {
        case .cancelled: .cancelled
        case .preempted: .preempted
        case .timedOut: .timedOut
        }
    }
}

/// Starting a program in a process group of its own, with its output going to pipes.
enum Spawn {
    struct Child {
        var pid: pid_t
        var stdout: Int32
        var stderr: Int32
    }

    typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) ->
        Int32

    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), found at run time.
    static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    /// glibc's `posix_spawn_file_actions_addchdir_np` (2.29 and later), found at run time.
    static let addChdir: AddChdir? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        else { return nil }
        return unsafeBitCast(symbol, to: AddChdir.self)
    }()

    /// Starts `path` with `arguments` and `environment` in `directory`, in a new process group.
    static func start(
        path: String, arguments: [String], environment: [String: String], directory: String
    ) throws(CaduceusError) -> Child {
        // Pipes are made and marked close-on-exec under one lock with the spawn, so that no other job started
        // at the same moment inherits this one's write ends (which would keep its logs open).
        try lock.withLock { _ throws(CaduceusError) -> Child in
            try startLocked(path: path, arguments: arguments, environment: environment, directory: directory)
        }
    }

    private static let lock = Mutex(())

    private static func startLocked(
        path: String, arguments: [String], environment: [String: String], directory: String
    ) throws(CaduceusError) -> Child {
        var out: [Int32] = [0, 0]
        var err: [Int32] = [0, 0]
        guard pipe(&out) == 0 else {
            throw CaduceusError(code: "executor.spawn", message: "cannot create pipes: errno \(errno)")
        }
        guard pipe(&err) == 0 else {
            close(out[0])
            close(out[1])
            throw CaduceusError(code: "executor.spawn", message: "cannot create pipes: errno \(errno)")
        }
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer {
            close(out[1])
            close(err[1])
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        // The job gets standard input, output and error and nothing else of this process: not its database,
        // its audit log, its sockets or another job's pipes.
        guard let addCloseFrom, addCloseFrom(&actions, 3) == 0, let addChdir, addChdir(&actions, directory) == 0 else {
            close(out[0])
            close(err[0])
            throw CaduceusError(
                code: "executor.spawn",
                message: "this C library cannot close a child's descriptors or set its directory")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result =
            path.contains("/")
            ? posix_spawn(&pid, path, &actions, &attributes, argv, envp)
            : spawnSearchingPath(&pid, path, &actions, &attributes, argv, envp, environment["PATH"] ?? "")
        guard result == 0 else {
            close(out[0])
            close(err[0])
            throw CaduceusError(
                code: "executor.spawn",
                message: "cannot start '\(path.prefix(200))': \(String(cString: strerror(result)))")
        }
        return Child(pid: pid, stdout: out[0], stderr: err[0])
    }

    /// posix_spawnp looks the name up in the parent's PATH; this looks in the job's.
    private static func spawnSearchingPath(
        _ pid: inout pid_t, _ name: String, _ actions: inout posix_spawn_file_actions_t,
        _ attributes: inout posix_spawnattr_t, _ argv: [UnsafeMutablePointer<CChar>?],
        _ envp: [UnsafeMutablePointer<CChar>?], _ searchPath: String
    ) -> Int32 {
        for folder in searchPath.split(separator: ":") where !folder.isEmpty {
            let candidate = "\(folder)/\(name)"
            guard access(candidate, X_OK) == 0 else { continue }
            return posix_spawn(&pid, candidate, &actions, &attributes, argv, envp)
        }
        return ENOENT
    }
}
