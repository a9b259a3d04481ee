import CaduceusCore
import Glibc
import NodeAgent
import Testing

/// The NVML and CUDA bindings against a stub driver: one test, since the stub keeps global state.
@Suite(.enabled(if: StubDriver.compiler != nil, "needs a C compiler to build the stub driver"))
struct NVIDIABackendStubTests {
    @Test func discoveryAndScrubThroughTheDriverBindings() throws {
        let library = try StubDriver.build()
        let backend = NVIDIABackend(nvmlLibrary: library, cudaLibrary: library)

        let inventory = backend.discover()
        #expect(inventory.driverVersion == "999.1.2")
        #expect(inventory.notes.isEmpty)
        #expect(!inventory.fake)
        try #require(inventory.gpus.count == 2)
        let (first, second) = (inventory.gpus[0], inventory.gpus[1])
        #expect(first.name == "Stub GPU")
        #expect(first.uuid == "GPU-00112233-4455-6677-8899-aabbccddeeff")
        #expect(first.memoryBytes == 64 << 20)
        #expect(first.mig == .unsupported && first.computeMode == .exclusiveProcess && first.ecc == .enabled)
        #expect(first.isOfferable)
        #expect(second.mig == .enabled && second.computeMode == .shared)
        #expect(second.refusal?.contains("MIG") == true)

        // The stub lets only the device CUDA numbers 1 (NVML's 0) allocate, so this passes only if the
        // backend found the CUDA device by UUID.
        let scrubber = GPUScrubber(backend: backend)
        let node = NodeID(unchecked: "node-stub")
        let record = scrubber.scrub(first, node: node, reason: .requested)
        #expect(record.passed, "\(String(describing: record.failure))")
        #expect(record.bytesOverwritten == 64 << 20)
        #expect(record.blocks == 4)
        #expect(record.bytesVerified == 4 * 10 * (64 << 10))
        #expect(try scrubber.measureReferenceFill(first).bytes == 16 << 20)

        let handle = try #require(dlopen(library, RTLD_NOW))
        typealias SetProcesses = @convention(c) (Int32) -> Void
        let setProcesses = unsafeBitCast(try #require(dlsym(handle, "stub_set_processes")), to: SetProcesses.self)
        setProcesses(3)
        #expect(try backend.runningProcesses(on: first) == [1000, 1001, 1002])
        let blocked = scrubber.scrub(first, node: node, reason: .jobEnded)
        #expect(blocked.failure?.code == "gpu.scrub.processes")
        #expect(blocked.failure?.message.contains("1000, 1001, 1002") == true)
        setProcesses(0)
    }
}
