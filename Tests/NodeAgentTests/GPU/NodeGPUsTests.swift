import CaduceusCore
@_spi(Testing) import NodeAgent
import Testing

@Suite struct NodeGPUsTests {
    let node = NodeID(unchecked: "node-test")
    let job = JobID(unchecked: "job-1")
    let options = GPUScrubOptions(granularity: 64 << 10, minimumBlockBytes: 64 << 10, sampleBytes: 4096)

    private func setUp(count: Int = 2) -> (FakeGPUBackend, NodeGPUs) {
        let backend = FakeGPUBackend(count: count, memoryBytes: 1 << 20)
        return (backend, NodeGPUs(node: node, backend: backend, options: options))
    }

    @Test func gpusAreOfferedOnlyAfterAFirstScrub() async throws {
        let (_, gpus) = setUp()
        #expect(await gpus.offerable().isEmpty)
        #expect(await gpus.status().allSatisfy { $0.state == .awaitingScrub })
        let outcome = try await gpus.sanitize(reason: .startup)
        #expect(outcome.returnsToPool)
        #expect(outcome.records.count == 2)
        #expect(await gpus.offerable().count == 2)
    }

    @Test func aJobsGPUsReturnToThePoolAfterTheirScrub() async throws {
        let (_, gpus) = setUp()
        _ = try await gpus.sanitize(reason: .startup)
        let uuid = FakeGPUBackend.uuid(index: 1)
        try await gpus.claim([uuid], for: job)
        #expect(await gpus.offerable().map(\.uuid) == [FakeGPUBackend.uuid(index: 0)])
        let outcome = await gpus.jobEnded(job)
        #expect(outcome.returnsToPool)
        #expect(outcome.records.map(\.gpuUUID) == [uuid])
        #expect(outcome.records.first?.reason == .jobEnded)
        #expect(outcome.records.first?.job == job)
        #expect(await gpus.offerable().count == 2)
        #expect(await gpus.status()[1].lastScrub?.job == job)
    }

    @Test func aFailedScrubCordonsTheNodeUntilAScrubPasses() async throws {
        let (backend, gpus) = setUp()
        _ = try await gpus.sanitize(reason: .startup)
        try await gpus.claim([FakeGPUBackend.uuid(index: 0)], for: job)
        backend.inject(.leftoverProcess(31337), into: 0)
        let outcome = await gpus.jobEnded(job)
        let alert = try #require(outcome.alert)
        #expect(!outcome.returnsToPool)
        #expect(alert.node == node)
        #expect(alert.gpuUUIDs == [FakeGPUBackend.uuid(index: 0)])
        #expect(alert.message.contains("31337"))
        #expect(await gpus.cordon == alert)
        #expect(await gpus.offerable().isEmpty)
        await #expect(throws: CaduceusError.self) {
            try await gpus.claim([FakeGPUBackend.uuid(index: 1)], for: JobID(unchecked: "job-2"))
        }

        #expect(try await !gpus.sanitize(reason: .requested).returnsToPool)
        backend.clearFaults(of: 0)
        #expect(try await gpus.sanitize(reason: .requested).returnsToPool)
        #expect(await gpus.cordon == nil)
        #expect(await gpus.offerable().count == 2)
    }

    @Test func aTenantChangeWaitsForTheNodeToBeDrained() async throws {
        let (_, gpus) = setUp()
        _ = try await gpus.sanitize(reason: .startup)
        try await gpus.claim([FakeGPUBackend.uuid(index: 0)], for: job)
        await #expect(throws: CaduceusError.self) { try await gpus.sanitize(reason: .tenantChange) }
        _ = await gpus.jobEnded(job)
        let outcome = try await gpus.sanitize(reason: .tenantChange)
        #expect(outcome.records.count == 2 && outcome.records.allSatisfy { $0.reason == .tenantChange })
    }

    @Test func claimsAreRefusedForUnknownOrBusyGPUs() async throws {
        let (_, gpus) = setUp()
        _ = try await gpus.sanitize(reason: .startup)
        await #expect(throws: CaduceusError.self) { try await gpus.claim(["GPU-nope"], for: job) }
        try await gpus.claim([FakeGPUBackend.uuid(index: 0)], for: job)
        await #expect(throws: CaduceusError.self) {
            try await gpus.claim([FakeGPUBackend.uuid(index: 0)], for: JobID(unchecked: "job-2"))
        }
    }

    @Test func aNodeWithoutGPUsScrubsNothingAndPasses() async throws {
        let gpus = NodeGPUs(node: node, backend: NVIDIABackend(nvmlLibrary: "libnvidia-ml-absent.so.1"))
        #expect(await gpus.inventory.gpus.isEmpty)
        #expect(try await gpus.sanitize(reason: .tenantChange).records.isEmpty)
    }
}
