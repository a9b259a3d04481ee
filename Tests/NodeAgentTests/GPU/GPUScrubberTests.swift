import CaduceusCore
import Foundation
@_spi(Testing) import NodeAgent
import Testing

@Suite struct GPUScrubberTests {
    let node = NodeID(unchecked: "node-test")
    let options = GPUScrubOptions(granularity: 64 << 10, minimumBlockBytes: 64 << 10, sampleBytes: 4096)

    private func setUp(count: Int = 1, memoryBytes: Int = 4 << 20) -> (FakeGPUBackend, [GPUInfo]) {
        let backend = FakeGPUBackend(count: count, memoryBytes: memoryBytes)
        return (backend, backend.discover().gpus)
    }

    @Test func aScrubOverwritesAllOfAFakeGPUAndLeavesNoTraceOfTheJob() throws {
        let (backend, gpus) = setUp()
        backend.write(0xDEAD_BEEF, onto: 0)
        let record = GPUScrubber(backend: backend, options: options).scrub(gpus[0], node: node, reason: .jobEnded)
        #expect(record.passed, "\(String(describing: record.failure))")
        #expect(record.bytesOverwritten == 4 << 20)
        #expect(record.deviceBytes == 4 << 20)
        #expect(record.freeBytesBefore == 4 << 20)
        #expect(record.bytesVerified == 10 * 4096)
        #expect(record.blocks == 1)
        #expect(record.fake)
        #expect(record.gpuUUID.hasPrefix("FAKE-"))
        #expect(backend.count(of: 0xDEAD_BEEF, on: 0) == 0 || record.pattern == 0xDEAD_BEEF)
        #expect(backend.count(of: record.pattern, on: 0) == (4 << 20) / 4)
    }

    @Test func twoPassesEndWithTheRecordedPattern() {
        let (backend, gpus) = setUp()
        var twoPasses = options
        twoPasses.passes = 2
        let record = GPUScrubber(backend: backend, options: twoPasses).scrub(gpus[0], node: node, reason: .requested)
        #expect(record.passed)
        #expect(record.passes == 2)
        #expect(backend.count(of: record.pattern, on: 0) == (4 << 20) / 4)
    }

    @Test func memoryIsTakenInHalvingBlocksWhenLargeAllocationsFail() {
        let (backend, gpus) = setUp()
        backend.inject(.maximumAllocation(1 << 20), into: 0)
        let record = GPUScrubber(backend: backend, options: options).scrub(gpus[0], node: node, reason: .requested)
        #expect(record.passed)
        #expect(record.blocks == 4)
        #expect(record.bytesOverwritten == 4 << 20)
        #expect(record.bytesVerified == 4 * 10 * 4096)
    }

    @Test func aWrongWordReadBackFailsTheScrub() throws {
        let (backend, gpus) = setUp()
        backend.inject(.corruptFill, into: 0)
        let record = GPUScrubber(backend: backend, options: options).scrub(gpus[0], node: node, reason: .jobEnded)
        #expect(record.result == .failed)
        let failure = try #require(record.failure)
        #expect(failure.code == "gpu.scrub.verify")
        #expect(failure.message.contains(gpus[0].uuid))
    }

    @Test func aProcessLeftOnTheGPUFailsTheScrubBeforeItStarts() throws {
        let (backend, gpus) = setUp()
        backend.inject(.leftoverProcess(4242), into: 0)
        let record = GPUScrubber(backend: backend, options: options).scrub(gpus[0], node: node, reason: .jobEnded)
        #expect(record.failure?.code == "gpu.scrub.processes")
        #expect(record.failure?.message.contains("4242") == true)
        #expect(record.bytesOverwritten == 0)
    }

    @Test func aDeviceErrorFailsTheScrubAndReleasesTheMemory() {
        let (backend, gpus) = setUp()
        backend.inject(.deviceError, into: 0)
        let scrubber = GPUScrubber(backend: backend, options: options)
        #expect(scrubber.scrub(gpus[0], node: node, reason: .jobEnded).failure?.code == "gpu.fake")
        backend.clearFaults(of: 0)
        #expect(scrubber.scrub(gpus[0], node: node, reason: .requested).passed)
    }

    @Test func memoryHeldElsewhereFailsTheScrubOnCoverage() {
        let (backend, gpus) = setUp()
        backend.inject(.reservedMemory(2 << 20), into: 0)
        let record = GPUScrubber(backend: backend, options: options).scrub(gpus[0], node: node, reason: .jobEnded)
        #expect(record.failure?.code == "gpu.scrub.coverage")
        #expect(record.bytesOverwritten == 2 << 20)
    }

    @Test func severalGPUsAreScrubbedAtOnceAndReportedInOrder() async {
        let (backend, gpus) = setUp(count: 4)
        backend.inject(.corruptFill, into: 2)
        let records = await GPUScrubber(backend: backend, options: options)
            .scrub(gpus, node: node, reason: .tenantChange)
        #expect(records.map(\.gpuIndex) == [0, 1, 2, 3])
        #expect(records.map(\.passed) == [true, true, false, true])
        #expect(records.allSatisfy { $0.reason == .tenantChange && $0.node == node })
    }

    @Test func theReferenceFillCoversTheLargestBlock() throws {
        let (backend, gpus) = setUp()
        let reference = try GPUScrubber(backend: backend, options: options).measureReferenceFill(gpus[0])
        #expect(reference.bytes == 4 << 20)
        #expect(reference.microseconds >= 0)
    }

    @Test func aRecordSurvivesJSONForTheAuditTrail() throws {
        let (backend, gpus) = setUp()
        backend.inject(.leftoverProcess(7), into: 0)
        let record = GPUScrubber(backend: backend, options: options)
            .scrub(gpus[0], node: node, reason: .jobEnded, job: JobID(unchecked: "job-1"))
        let decoded = try JSONDecoder().decode(GPUScrubRecord.self, from: JSONEncoder().encode(record))
        #expect(decoded == record)
        #expect(decoded.job == JobID(unchecked: "job-1"))
    }
}
