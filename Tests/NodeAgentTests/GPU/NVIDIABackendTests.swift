import CaduceusCore
import NodeAgent
import Testing

@Suite struct NVIDIABackendTests {
    @Test func withoutNVMLThereAreNoGPUsAndTheInventorySaysWhy() {
        let inventory = NVIDIABackend(nvmlLibrary: "libnvidia-ml-absent.so.1").discover()
        #expect(inventory.gpus.isEmpty)
        #expect(!inventory.fake)
        #expect(inventory.notes == ["libnvidia-ml-absent.so.1 not found"])
    }

    @Test func withoutTheCUDADriverAScrubFailsAndSaysWhy() {
        let backend = NVIDIABackend(
            nvmlLibrary: "libnvidia-ml-absent.so.1", cudaLibrary: "libcuda-absent.so.1")
        let gpu = GPUInfo(
            index: 0, name: "NVIDIA H200", uuid: "GPU-00000000-0000-0000-0000-000000000000", memoryBytes: 1 << 30,
            mig: .disabled, computeMode: .exclusiveProcess, ecc: .enabled, fake: false)
        let record = GPUScrubber(backend: backend).scrub(gpu, node: NodeID(unchecked: "node-a"), reason: .requested)
        #expect(record.result == .failed)
        #expect(record.failure?.message.contains("libnvidia-ml-absent.so.1 not found") == true)
    }
}
