import CaduceusCore
import ControlPlane
import Logging
import NodeAgent
import Scheduling

#if canImport(Glibc)
import Glibc
#endif

/// Starts the node agent of this machine inside `caduceus serve` (embedded mode).
public enum EmbeddedAgent {
    /// How the local node is set up.
    public struct Settings: Sendable {
        /// The data directory (`jobs/` and `local-node` go there).
        public var dataDirectory: String
        /// Host-memory stand-ins for GPUs, for demonstrations and tests (0: discover real GPUs with NVML).
        public var fakeGPUs: Int
        /// Bytes of host memory per fake GPU.
        public var fakeGPUBytes: Int
        /// The residency of the `local` region the node is registered in.
        public var residency: Residency
        /// The node's name (default: the host name).
        public var nodeName: String
        /// Seconds a stopped job has between SIGTERM and SIGKILL.
        public var graceSeconds: Double

        /// Creates settings.
        public init(
            dataDirectory: String, fakeGPUs: Int, fakeGPUBytes: Int = 8 << 20, residency: Residency,
            nodeName: String, graceSeconds: Double = 10
        ) {
            self.dataDirectory = dataDirectory
            self.fakeGPUs = fakeGPUs
            self.fakeGPUBytes = fakeGPUBytes
            self.residency = residency
            self.nodeName = nodeName
            self.graceSeconds = graceSeconds
        }
    }

    /// Discovers this machine's GPUs, registers it as a node on first start, and returns its agent; nil
    /// (with the reason logged) when the machine has no GPU that may be offered to work.
    public static func start(
        plane: ControlPlane, settings: Settings, logger: Logger
    ) async throws -> LocalNodeAgent? {
        guard
            let found = try discover(
                fakeGPUs: settings.fakeGPUs, fakeGPUBytes: settings.fakeGPUBytes, logger: logger)
        else { return nil }
        return try await start(found, plane: plane, settings: settings, logger: logger)
    }

    /// This machine's GPUs that may be offered to work, and how to make the agent that runs jobs on them.
    public struct Discovery: Sendable {
        /// The GPUs, as the fleet records them.
        public var devices: [GPUDevice]
        /// Whether they are host-memory stand-ins.
        public var fake: Bool
        /// Makes the node's agent once its ID is known.
        public var makeAgent: @Sendable (NodeID, LocalExecutor, Logger) -> LocalNodeAgent
    }

    /// Discovers this machine's GPUs (NVML, or `fakeGPUs` stand-ins); nil, with the reason logged, when none
    /// may be offered to work.
    public static func discover(fakeGPUs: Int, fakeGPUBytes: Int = 8 << 20, logger: Logger) throws -> Discovery? {
        guard (0...64).contains(fakeGPUs) else {
            throw CaduceusError(code: "config.invalid", message: "fakeGPUs must be 0 to 64")
        }
        if fakeGPUs > 0 {
            return discover(FakeGPUBackend(count: fakeGPUs, memoryBytes: fakeGPUBytes), logger: logger)
        }
        return discover(NVIDIABackend(), logger: logger)
    }

    private static func discover<Backend: GPUBackend>(_ backend: Backend, logger: Logger) -> Discovery? {
        let inventory = backend.discover()
        let offered = inventory.gpus.filter(\.isOfferable)
        for gpu in inventory.gpus where !gpu.isOfferable {
            logger.warning(
                "GPU not offered to work", metadata: ["gpu": "\(gpu.uuid)", "reason": "\(gpu.refusal ?? "unknown")"])
        }
        guard !offered.isEmpty else {
            logger.notice(
                "this machine offers no GPU to work; no local node",
                metadata: ["notes": "\(inventory.notes.joined(separator: "; "))"])
            return nil
        }
        let devices = offered.map { gpu in
            GPUDevice(
                index: gpu.index, model: modelName(gpu.name, fake: gpu.fake), memoryMiB: Int(gpu.memoryBytes >> 20),
                uuid: gpu.uuid)
        }
        return Discovery(devices: devices, fake: inventory.fake) { node, executor, logger in
            LocalNodeAgent(node: node, gpus: NodeGPUs(node: node, backend: backend), executor: executor, logger: logger)
        }
    }

    private static func start(
        _ found: Discovery, plane: ControlPlane, settings: Settings, logger: Logger
    )
        async throws -> LocalNodeAgent
    {
        let devices = found.devices
        let idFile = settings.dataDirectory + "/local-node"
        let known = readText(idFile).flatMap { NodeID(rawValue: $0) }
        let node = try await plane.registerLocalNode(
            known: known, name: settings.nodeName, gpus: devices, residency: settings.residency)
        if known != node { try writeText(node.rawValue, to: idFile) }
        logger.info(
            "local node ready", metadata: ["node": "\(node)", "gpus": "\(devices.count)", "fake": "\(found.fake)"])
        let executor = LocalExecutor(
            settings: .init(root: settings.dataDirectory + "/jobs", graceSeconds: settings.graceSeconds))
        return found.makeAgent(node, executor, logger)
    }

    /// A GPU model name the fleet accepts: `NVIDIA H200` → `H200`; fake GPUs are `FAKE`.
    static func modelName(_ name: String, fake: Bool) -> String {
        if fake { return "FAKE" }
        var text = name.hasPrefix("NVIDIA ") ? String(name.dropFirst(7)) : name
        text = text.map { $0 == " " ? "-" : String($0) }.joined()
        let kept = text.unicodeScalars.filter {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-._".unicodeScalars.contains($0))
        }
        let model = String(String.UnicodeScalarView(kept).prefix(64))
        return model.isEmpty ? "GPU" : model
    }

    private static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\n").first.map(String.init)
    }

    private static func writeText(_ text: String, to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CaduceusError(code: "agent.files", message: "cannot write \(path)") }
        let bytes = Array((text + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            throw CaduceusError(code: "agent.files", message: "cannot write \(path)")
        }
    }
}
