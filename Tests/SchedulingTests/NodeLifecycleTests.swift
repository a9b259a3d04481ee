import CaduceusCore
import Scheduling
import Testing

@Suite struct NodeLifecycleTests {
    let node = NodeID(unchecked: "node-1")
    let a = TenantID(unchecked: "tnt-a")
    let b = TenantID(unchecked: "tnt-b")

    func record(for node: NodeID, complete: Bool = true) -> SanitizationRecord {
        SanitizationRecord(
            id: .generate(), node: node, previousTenant: a, completedAt: Timestamp(millisecondsSinceEpoch: 1),
            gpuMemoryScrubbed: true, scratchErased: complete)
    }

    func lifecycle(_ state: NodeState, tenant: TenantID? = nil, heldWorkOf: TenantID? = nil) -> NodeLifecycle {
        NodeLifecycle(
            node: node, state: state, tenant: tenant, nextTenant: nil, heldWorkOf: heldWorkOf, lastSanitization: nil)
    }

    @Test func registeredNodeIsActivatedAndAssigned() throws {
        var life = NodeLifecycle(node: node)
        #expect(try life.handle(.assign(a), jobsOnNode: 0) == .none)
        #expect(life.state == .registered && life.tenant == a && !life.acceptsWork)
        #expect(try life.handle(.activate, jobsOnNode: 0) == .none)
        #expect(life.state == .available && life.acceptsWork)
    }

    @Test func cordonAndUncordon() throws {
        var life = lifecycle(.available, tenant: a)
        _ = try life.handle(.cordon, jobsOnNode: 3)
        #expect(life.state == .cordoned && !life.acceptsWork)
        _ = try life.handle(.uncordon, jobsOnNode: 3)
        #expect(life.state == .available)
    }

    @Test func drainWithWorkEvictsThenSanitises() throws {
        var life = lifecycle(.available, tenant: a)
        _ = try life.handle(.workPlaced, jobsOnNode: 1)
        #expect(try life.handle(.drain, jobsOnNode: 1) == .evictWork)
        #expect(life.state == .draining)
        #expect(throws: CaduceusError.self) { try life.handle(.emptied, jobsOnNode: 1) }
        #expect(try life.handle(.emptied, jobsOnNode: 0) == .sanitize)
        #expect(life.state == .sanitizing)
        _ = try life.handle(.sanitized(record(for: node)), jobsOnNode: 0)
        #expect(life.state == .available && life.tenant == a && life.heldWorkOf == nil)
    }

    @Test func drainOfCleanNodeReturnsToAvailable() throws {
        var life = lifecycle(.cordoned, tenant: a)
        #expect(try life.handle(.drain, jobsOnNode: 0) == .none)
        #expect(life.state == .available)
    }

    @Test func assigningACleanNodeMovesItAtOnce() throws {
        var life = lifecycle(.available, tenant: a)
        #expect(try life.handle(.assign(b), jobsOnNode: 0) == .none)
        #expect(life.tenant == b && life.state == .available)
    }

    @Test func assigningANodeThatHeldWorkGoesThroughDrainAndSanitisation() throws {
        var life = lifecycle(.available, tenant: a, heldWorkOf: a)
        #expect(try life.handle(.assign(b), jobsOnNode: 2) == .evictWork)
        #expect(life.state == .draining && life.tenant == a && life.nextTenant == b && !life.acceptsWork)
        #expect(try life.handle(.emptied, jobsOnNode: 0) == .sanitize)
        #expect(life.state == .sanitizing && life.tenant == a)
        // The shortcut is refused: no way back to available without a record.
        #expect(throws: CaduceusError.self) { try life.handle(.uncordon, jobsOnNode: 0) }
        #expect(throws: CaduceusError.self) { try life.handle(.activate, jobsOnNode: 0) }
        #expect(throws: CaduceusError.self) { try life.handle(.workPlaced, jobsOnNode: 0) }
        #expect(throws: CaduceusError.self) {
            try life.handle(.sanitized(record(for: NodeID(unchecked: "node-2"))), jobsOnNode: 0)
        }
        #expect(throws: CaduceusError.self) {
            try life.handle(.sanitized(record(for: node, complete: false)), jobsOnNode: 0)
        }
        #expect(life.state == .sanitizing && life.tenant == a)
        _ = try life.handle(.sanitized(record(for: node)), jobsOnNode: 0)
        #expect(life.state == .available && life.tenant == b && life.nextTenant == nil && life.heldWorkOf == nil)
    }

    @Test func emptyNodeThatHeldWorkIsSanitisedBeforeChangingTenant() throws {
        var life = lifecycle(.cordoned, tenant: a, heldWorkOf: a)
        #expect(try life.handle(.assign(b), jobsOnNode: 0) == .sanitize)
        #expect(life.state == .sanitizing && life.nextTenant == b)
    }

    @Test func retireNeedsAnEmptyNodeAndIsFinal() throws {
        var life = lifecycle(.available, tenant: a)
        #expect(throws: CaduceusError.self) { try life.handle(.retire, jobsOnNode: 1) }
        _ = try life.handle(.retire, jobsOnNode: 0)
        #expect(life.state == .retired && life.tenant == nil)
        for event: NodeLifecycle.Event in [.activate, .cordon, .uncordon, .drain, .assign(a), .workPlaced, .emptied] {
            #expect(throws: CaduceusError.self) { try life.handle(event, jobsOnNode: 0) }
        }
    }

    /// Every event in every state either moves as the table says or throws and changes nothing.
    @Test(arguments: NodeState.allCases)
    func refusedEventsChangeNothing(state: NodeState) {
        let events: [NodeLifecycle.Event] = [
            .activate, .cordon, .uncordon, .drain, .assign(b), .workPlaced, .emptied, .sanitized(record(for: node)),
            .retire,
        ]
        for event in events {
            var life = lifecycle(state, tenant: a, heldWorkOf: a)
            let before = life
            do {
                _ = try life.handle(event, jobsOnNode: 1)
            } catch {
                #expect(life == before, "\(state) + \(event) threw but changed the node")
            }
        }
    }

    @Test func workIsOnlyPlacedOnAvailableAssignedNodes() throws {
        var unassigned = lifecycle(.available)
        #expect(throws: CaduceusError.self) { try unassigned.handle(.workPlaced, jobsOnNode: 0) }
        var cordoned = lifecycle(.cordoned, tenant: a)
        #expect(throws: CaduceusError.self) { try cordoned.handle(.workPlaced, jobsOnNode: 0) }
    }
}
