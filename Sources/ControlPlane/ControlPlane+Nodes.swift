import AuditLog
import CaduceusCore
import Identity
import Logging
import Scheduling
import Synchronization

/// GPU nodes: registration, the lifecycle (activate, cordon, uncordon, drain, assign, retire) and reads.
///
/// Lifecycle changes run through `NodeLifecycle`, which holds the single-tenancy rule; the scheduler is
/// told of every change in the same transaction, and work a drain or a reassignment moves off the node is
/// requeued (training) or preempted (the rest) at once.
extension ControlPlane {
    /// Registers a node with its GPUs; it takes no work until assigned and activated.
    public func createNode(_ request: RequestInfo, _ input: CreateNodeRequest) async throws -> NodeView {
        let id = NodeID.generate()
        let subject = AuditRecorder.Subject(action: "node.create", resourceType: "node", resourceID: id.rawValue)
        let decision = try await authorize(request, .fleetManage, in: .platform, subject)
        let node = try await fleetChange(request, subject, decision: decision) { [now] scheduler, tx in
            try Names.check(input.name, "name: a node name")
            try Self.checkGPUs(input.gpus)
            guard let fabric = try await tx.fabric(id: input.fabric) else {
                throw Failure.invalid("fabric: no fabric \(input.fabric)")
            }
            let record = NodeRecord(
                id: id, name: input.name, site: fabric.site, fabric: fabric.id, gpus: input.gpus,
                lifecycle: NodeLifecycle(node: id), createdAt: now)
            try await Self.unique("a node named '\(input.name)' exists already") { try await tx.insertNode(record) }
            try await SchedulingService.sync(record, in: tx, into: &scheduler)
            return NodeView(record, jobs: [])
        }
        return node
    }

    /// Puts a registered node into service.
    public func activateNode(_ request: RequestInfo, _ id: NodeID) async throws -> NodeView {
        try await changeNode(request, id, "node.activate", .activate)
    }

    /// Stops new work on a node; what runs keeps running.
    public func cordonNode(_ request: RequestInfo, _ id: NodeID) async throws -> NodeView {
        try await changeNode(request, id, "node.cordon", .cordon)
    }

    /// Lets new work onto a cordoned node again.
    public func uncordonNode(_ request: RequestInfo, _ id: NodeID) async throws -> NodeView {
        try await changeNode(request, id, "node.uncordon", .uncordon)
    }

    /// Moves the work off a node; a node that held work then waits to be sanitised.
    public func drainNode(_ request: RequestInfo, _ id: NodeID) async throws -> NodeView {
        try await changeNode(request, id, "node.drain", .drain)
    }

    /// Takes a node out of service for good (it must hold no work).
    public func retireNode(_ request: RequestInfo, _ id: NodeID) async throws -> NodeView {
        try await changeNode(request, id, "node.retire", .retire)
    }

    /// Gives a node to a tenant. A node that holds or has held another tenant's work is drained and must be
    /// sanitised first; it reaches the new tenant only once a sanitisation record exists.
    public func assignNode(_ request: RequestInfo, _ id: NodeID, _ input: AssignNodeRequest) async throws -> NodeView {
        if try await store.tenant(id: input.tenant) == nil {
            let subject = AuditRecorder.Subject(action: "node.assign", resourceType: "node", resourceID: id.rawValue)
            _ = try await authorize(request, .fleetManage, in: .platform, subject)
            try await auditFailure(request, subject, Failure.invalid("tenant"))
            throw Failure.invalid("tenant: no tenant \(input.tenant)")
        }
        return try await changeNode(request, id, "node.assign", .assign(input.tenant))
    }

    /// Lists nodes: those of one tenant (including nodes being moved to it), or all.
    public func listNodes(
        _ request: RequestInfo, tenant: TenantID?, after cursor: String?, limit: Int
    ) async throws -> ListResponse<NodeView> {
        let subject = AuditRecorder.Subject(
            action: "node.list", resourceType: "node", resourceID: "all", tenant: tenant)
        let decision = try await authorize(request, .fleetRead, in: tenant.map { .tenant($0) } ?? .platform, subject)
        return try await read(request, subject, decision: decision) { [fleet, scheduling] _ in
            let page = try await fleet.nodes(of: tenant, after: cursor, limit: limit)
            let scheduler = try await scheduling.snapshot()
            return ListResponse(
                items: page.items.map { NodeView($0, jobs: scheduler.jobs(on: $0.id)) }, next: page.next)
        }
    }

    /// Shows a node and the jobs on it.
    public func showNode(_ request: RequestInfo, _ id: NodeID) async throws -> NodeView {
        let node = try await fleet.node(id: id)
        let tenant = node?.lifecycle.tenant
        let subject = AuditRecorder.Subject(
            action: "node.show", resourceType: "node", resourceID: id.rawValue, tenant: tenant)
        let decision = try await authorize(request, .fleetRead, in: tenant.map { .tenant($0) } ?? .platform, subject)
        let scrubs = lastScrubs.withLock { $0[id].map { Array($0.values) } ?? [] }.sorted { $0.index < $1.index }
        return try await read(request, subject, decision: decision) { [scheduling] _ in
            guard let node else { throw Failure.notFound("node \(id)") }
            var view = NodeView(node, jobs: try await scheduling.snapshot().jobs(on: id))
            view.lastScrubs = scrubs
            view.agent = try await self.agentView(id)
            return view
        }
    }

    /// A node's sanitisations, newest records included as soon as they are written.
    public func listSanitizations(
        _ request: RequestInfo, _ id: NodeID, after cursor: String?, limit: Int
    ) async throws -> ListResponse<SanitizationEntry> {
        let node = try await fleet.node(id: id)
        let tenant = node?.lifecycle.tenant
        let subject = AuditRecorder.Subject(
            action: "node.sanitization.list", resourceType: "node", resourceID: id.rawValue, tenant: tenant)
        let decision = try await authorize(request, .fleetRead, in: tenant.map { .tenant($0) } ?? .platform, subject)
        return try await read(request, subject, decision: decision) { [fleet] _ in
            guard node != nil else { throw Failure.notFound("node \(id)") }
            let page = try await fleet.sanitizations(of: id, after: cursor, limit: limit)
            return ListResponse(items: page.items, next: page.next)
        }
    }

    /// Applies one lifecycle event to a node, with what it entails, and reschedules.
    /// Every node with the name of the tenant holding it, for the control plane's own runners (Slurm's
    /// matches nodes by name). No caller and no PHI: not a use case, not audited.
    public func nodeDirectory() async throws -> [(node: NodeRecord, tenantName: String?)] {
        var nodes: [NodeRecord] = []
        var cursor: String?
        repeat {
            let page = try await fleet.nodes(of: nil, after: cursor, limit: 500)
            nodes += page.items
            cursor = page.next
        } while cursor != nil
        var names: [TenantID: String] = [:]
        for tenant in Set(nodes.compactMap(\.lifecycle.tenant)) {
            names[tenant] = try await store.tenant(id: tenant)?.name
        }
        return nodes.map { ($0, $0.lifecycle.tenant.flatMap { names[$0] }) }
    }

    private func changeNode(
        _ request: RequestInfo, _ id: NodeID, _ action: String, _ event: NodeLifecycle.Event
    ) async throws -> NodeView {
        let tenant = try await fleet.node(id: id)?.lifecycle.tenant
        let subject = AuditRecorder.Subject(
            action: action, resourceType: "node", resourceID: id.rawValue, tenant: tenant)
        let decision = try await authorize(request, .fleetManage, in: .platform, subject)
        let view = try await fleetChange(request, subject, decision: decision) {
            [scheduling, now, logger] scheduler, tx in
            guard var node = try await tx.node(id: id) else { throw Failure.notFound("node \(id)") }
            var next = try node.lifecycle.handle(event, jobsOnNode: scheduler.jobs(on: id).count)
            if next == .evictWork {
                try await scheduling.evictWork(
                    from: node, scheduler: &scheduler, tx, at: now, request: request.requestID)
                next = try node.lifecycle.handle(.emptied, jobsOnNode: 0)
            }
            if next == .sanitize {
                logger.info(
                    "node awaits sanitisation",
                    metadata: ["node": "\(id)", "heldWorkOf": "\(node.lifecycle.heldWorkOf?.rawValue ?? "")"])
            }
            try await tx.updateNode(node)
            try await SchedulingService.sync(node, in: tx, into: &scheduler)
            return NodeView(node, jobs: scheduler.jobs(on: id))
        }
        await reschedule(after: request)
        return view
    }

    /// Checks a node's GPU list; the error names the field.
    static func checkGPUs(_ gpus: [GPUDevice]) throws {
        guard (1...64).contains(gpus.count) else { throw Failure.invalid("gpus: a node has 1 to 64 GPUs") }
        guard gpus.map(\.index).sorted() == Array(0..<gpus.count) else {
            throw Failure.invalid("gpus: indexes must be 0 to \(gpus.count - 1), each once")
        }
        guard let model = gpus.first?.model, GPUModel.isValidName(model) else {
            throw Failure.invalid("gpus.model: '\(gpus.first?.model.prefix(40) ?? "")' is not a GPU model name")
        }
        guard gpus.allSatisfy({ $0.model == model }) else {
            throw Failure.invalid("gpus.model: all GPUs of a node must be of one model")
        }
        guard gpus.allSatisfy({ (1...1_048_576).contains($0.memoryMiB) }) else {
            throw Failure.invalid("gpus.memoryMiB: must be 1 to 1048576")
        }
        let uuidsValid = gpus.allSatisfy { gpu in
            (1...128).contains(gpu.uuid.utf8.count) && gpu.uuid.utf8.allSatisfy { $0 > 32 && $0 < 127 }
        }
        guard uuidsValid, Set(gpus.map(\.uuid)).count == gpus.count else {
            throw Failure.invalid("gpus.uuid: each GPU needs its own UUID of 1 to 128 visible characters")
        }
    }
}
