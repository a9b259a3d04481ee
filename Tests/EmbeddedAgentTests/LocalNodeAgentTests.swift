import AuditLog
import CaduceusCore
import CaduceusTesting
import ControlPlane
import EmbeddedAgent
import Foundation
import Logging
@_spi(Testing) import NodeAgent
import Scheduling
import Testing

/// The local node agent under the real control plane, over fake GPUs with faults injected.
struct LocalNodeAgentTests {
    @Test func aFailedScrubCordonsTheNodeAndIsAuditedAsAnError() async throws {
        try await Harness.with { h in
            let admin = try await h.adminRequest()
            let tenant = try await h.plane.createTenant(admin, CreateTenantRequest(name: "st-marys"))
            let backend = FakeGPUBackend(count: 2, memoryBytes: 8 << 20)
            let devices = backend.discover().gpus.map {
                GPUDevice(index: $0.index, model: "FAKE", memoryMiB: 8, uuid: $0.uuid)
            }
            let node = try await h.plane.registerLocalNode(
                known: nil, name: "local", gpus: devices, residency: Residency(rawValue: "US")!)
            // A second start finds the node it registered.
            #expect(
                try await h.plane.registerLocalNode(
                    known: node, name: "local", gpus: devices, residency: Residency(rawValue: "US")!) == node)
            _ = try await h.plane.assignNode(admin, node, AssignNodeRequest(tenant: tenant.id))
            #expect(try await h.plane.activateNode(admin, node).state == .available)

            // GPU 1 reads back something else than was written: its memory cannot be trusted to be clean.
            backend.inject(.corruptFill, into: 1)
            let agent = LocalNodeAgent(
                node: node, gpus: NodeGPUs(node: node, backend: backend),
                executor: LocalExecutor(settings: .init(root: h.directory + "/jobs", graceSeconds: 1)),
                logger: Logger(label: "test"))
            let running = Task { await h.plane.runJobs(on: agent) }
            var shown = try await h.plane.showNode(admin, node)
            let deadline = Date().addingTimeInterval(20)
            while shown.state != .cordoned && Date() < deadline {
                try await Task.sleep(for: .milliseconds(50))
                shown = try await h.plane.showNode(admin, node)
            }
            running.cancel()
            await running.value
            #expect(shown.state == .cordoned, "a failed scrub must stop the node taking work")
            #expect(shown.lastScrubs.map(\.passed) == [true, false])
            let scrubs = try await h.events().filter { $0.action == "gpu.scrub" }
            #expect(scrubs.count == 2)
            #expect(scrubs.filter { $0.outcome == .error }.count == 1)
            #expect(scrubs.allSatisfy { $0.actor.type == "node" && $0.actor.id == node.rawValue })
        }
    }
}
