import AuditLog
import CaduceusCore
import CaduceusTesting
import ControlPlane
import Identity
import Scheduling
import Testing

struct FleetTests {
    @Test("platform admins own the fleet; others are refused, and every change and refusal is audited")
    func fleetAuthorisation() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            await #expect(throws: CaduceusError.self) {
                try await h.plane.createRegion(
                    f.researcher, CreateRegionRequest(name: "eu-west", residency: Residency(rawValue: "EU")!))
            }
            await #expect(throws: CaduceusError.self) {
                try await h.plane.listRegions(f.tenantAdmin, after: nil, limit: 10)
            }
            let node = try await f.node("gpu-01")
            #expect(node.state == .available && node.tenant == f.tenant.id && node.schedulable)
            // Tenant admins read their own tenant's nodes, not others'.
            #expect(
                try await h.plane.listNodes(f.tenantAdmin, tenant: f.tenant.id, after: nil, limit: 10).items.count == 1)
            #expect(try await h.plane.showNode(f.tenantAdmin, node.id).id == node.id)
            await #expect(throws: CaduceusError.self) {
                try await h.plane.listNodes(f.tenantAdmin, tenant: nil, after: nil, limit: 10)
            }
            await #expect(throws: CaduceusError.self) { try await h.plane.cordonNode(f.tenantAdmin, node.id) }
            let events = try await h.events()
            for action in [
                "region.create", "site.create", "fabric.create", "node.create", "node.assign", "node.activate",
            ] {
                #expect(events.contains { $0.action == action && $0.outcome == .success }, "\(action)")
            }
            #expect(events.contains { $0.action == "region.create" && $0.outcome == .denied })
            #expect(events.contains { $0.action == "node.cordon" && $0.outcome == .denied })
        }
    }

    @Test("bad node input names the field and changes nothing")
    func badNodeInput() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            func refusal(_ gpus: [GPUDevice], fabric: FabricID? = nil, name: String = "gpu-x") async -> String {
                do {
                    _ = try await h.plane.createNode(
                        f.admin, CreateNodeRequest(name: name, fabric: fabric ?? f.fabric.id, gpus: gpus))
                    return "accepted"
                } catch {
                    return (error as? CaduceusError)?.message ?? "\(error)"
                }
            }
            let good = FleetFixture.gpus(8, node: "x")
            #expect(await refusal([]).hasPrefix("gpus:"))
            #expect(await refusal(FleetFixture.gpus(65, node: "x")).hasPrefix("gpus:"))
            #expect(await refusal(Array(good.dropFirst())).hasPrefix("gpus:"))
            #expect(await refusal(FleetFixture.gpus(2, model: "H 200", node: "x")).hasPrefix("gpus.model:"))
            var mixed = good
            mixed[3].model = "A100"
            #expect(await refusal(mixed).hasPrefix("gpus.model:"))
            var negative = good
            negative[0].memoryMiB = -1
            #expect(await refusal(negative).hasPrefix("gpus.memoryMiB:"))
            var twins = good
            twins[1].uuid = twins[0].uuid
            #expect(await refusal(twins).hasPrefix("gpus.uuid:"))
            #expect(await refusal(good, fabric: .generate()).hasPrefix("fabric:"))
            #expect(await refusal(good, name: "GPU 01").hasPrefix("name:"))
            #expect(try await h.plane.listNodes(f.admin, tenant: nil, after: nil, limit: 10).items.isEmpty)
            _ = try await f.node("gpu-01")
            #expect(await refusal(good, name: "gpu-01").contains("exists already"))
            await #expect(throws: CaduceusError.self) {
                try await h.plane.assignNode(
                    f.admin,
                    try #require(try await h.plane.listNodes(f.admin, tenant: nil, after: nil, limit: 1).items.first)
                        .id,
                    AssignNodeRequest(tenant: .generate()))
            }
        }
    }

    @Test("reassigning a node that ran a tenant's work drains it, requeues training, and waits for sanitisation")
    func assignRefusesTheShortcut() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            let other = try await h.plane.createTenant(f.admin, CreateTenantRequest(name: "mercy"))
            let node = try await f.node("gpu-01")
            let job = try await f.submit(.training, gpus: 4)
            #expect(job.state == .placed)
            #expect(try await h.plane.showNode(f.admin, node.id).heldWorkOf == f.tenant.id)

            let moved = try await h.plane.assignNode(f.admin, node.id, AssignNodeRequest(tenant: other.id))
            #expect(moved.state == .sanitizing)
            #expect(moved.tenant == f.tenant.id && moved.nextTenant == other.id && !moved.schedulable)
            #expect(moved.jobs.isEmpty)
            let requeued = try await h.plane.showJob(f.researcher, job.id)
            #expect(requeued.state == .pending && requeued.preemptions == 1 && requeued.assignments.isEmpty)
            #expect(requeued.reason?.contains("drained") == true)
            // No way back into service without a sanitisation record.
            for shortcut in [h.plane.activateNode, h.plane.uncordonNode, h.plane.cordonNode] {
                do {
                    _ = try await shortcut(FleetFixture.again(f.admin), node.id)
                    Issue.record("a sanitising node left sanitising without a record")
                } catch let error as CaduceusError {
                    #expect(error.code == "node.transition")
                }
            }
            #expect(try await h.plane.showNode(f.admin, node.id).state == .sanitizing)
            let events = try await h.events()
            #expect(
                events.contains {
                    $0.action == "job.requeue" && $0.actor.id == "scheduler" && $0.actor.type == "system"
                        && $0.resource.id == job.id.rawValue
                })
            #expect(events.contains { $0.action == "node.assign" && $0.outcome == .success })
            #expect(events.contains { $0.action == "node.activate" && $0.outcome == .error })
        }
    }

    @Test("a clean node changes tenant at once; draining an idle clean node returns it to service; retiring ends it")
    func cleanNodeLifecycle() async throws {
        try await Harness.with { h in
            let f = try await FleetFixture.make(h)
            let other = try await h.plane.createTenant(f.admin, CreateTenantRequest(name: "mercy"))
            let node = try await f.node("gpu-01")
            let moved = try await h.plane.assignNode(f.admin, node.id, AssignNodeRequest(tenant: other.id))
            #expect(moved.state == .available && moved.tenant == other.id)
            #expect(try await h.plane.cordonNode(f.admin, node.id).state == .cordoned)
            #expect(try await h.plane.uncordonNode(f.admin, node.id).state == .available)
            #expect(try await h.plane.drainNode(f.admin, node.id).state == .available)
            #expect(try await h.plane.retireNode(f.admin, node.id).state == .retired)
            await #expect(throws: CaduceusError.self) { try await h.plane.activateNode(f.admin, node.id) }
        }
    }
}
