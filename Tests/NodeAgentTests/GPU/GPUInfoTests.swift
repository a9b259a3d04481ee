import NodeAgent
import Testing

@Suite struct GPUInfoTests {
    private func gpu(mig: GPUFeatureState = .disabled, computeMode: GPUComputeMode = .exclusiveProcess) -> GPUInfo {
        GPUInfo(
            index: 0, name: "NVIDIA H200", uuid: "GPU-00000000-0000-0000-0000-000000000000", memoryBytes: 150 << 30,
            mig: mig, computeMode: computeMode, ecc: .enabled, fake: false)
    }

    @Test func exclusiveProcessWithoutMIGIsOffered() {
        #expect(gpu().isOfferable)
        #expect(gpu(mig: .unsupported).refusal == nil)
    }

    @Test(arguments: [GPUFeatureState.enabled, .enabling, .disabling, .unknown])
    func anyMIGStateThatCouldShareIsRefused(mig: GPUFeatureState) throws {
        let refusal = try #require(gpu(mig: mig).refusal)
        #expect(refusal.contains("MIG"))
    }

    @Test(arguments: [GPUComputeMode.shared, .prohibited, .unknown])
    func sharedOrUnusableComputeModesAreRefused(mode: GPUComputeMode) throws {
        let refusal = try #require(gpu(computeMode: mode).refusal)
        #expect(refusal.contains("compute mode"))
    }

    @Test func theSharedModeRefusalSaysHowToFixIt() {
        #expect(gpu(computeMode: .shared).refusal?.contains("EXCLUSIVE_PROCESS") == true)
    }

    @Test func inventoryOffersOnlyAllowedGPUs() {
        let inventory = GPUInventory(
            driverVersion: "550.54.15", gpus: [gpu(), gpu(computeMode: .shared)], fake: false)
        #expect(inventory.offerable.count == 1)
        #expect(GPUInventory.none("libnvidia-ml.so.1 not found").gpus.isEmpty)
    }
}
