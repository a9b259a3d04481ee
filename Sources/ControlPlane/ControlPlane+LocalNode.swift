import AuditLog
import CaduceusCore
import Scheduling

extension ControlPlane {
    /// The actor of audit events about the machine the control plane runs on.
    static let localAgent = (id: "local-agent", type: "system")

    /// Registers the machine the control plane runs on as a node (embedded mode), the first time only: a
    /// region named `local` with `residency`, a site and a fabric named after the host, and the node with
    /// its GPUs, `registered` until a platform admin assigns and activates it. Later starts pass the ID back
    /// and get it again.
    public func registerLocalNode(
        known: NodeID?, name: String, gpus: [GPUDevice], residency: Residency
    ) async throws -> NodeID {
        if let known, try await fleet.node(id: known) != nil { return known }
        if let same = try await sameMachine(name: name, gpus: gpus) { return same }
        try Self.checkGPUs(gpus)
        let request = RequestInfo()
        let id = NodeID.generate()
        let subject = AuditRecorder.Subject(action: "node.register", resourceType: "node", resourceID: id.rawValue)
        try await scheduling.update { [audit, now] scheduler, tx in
            let region = RegionRecord(id: .generate(), name: "local", residency: residency, createdAt: now)
            let site = SiteRecord(id: .generate(), name: name, region: region.id, createdAt: now)
            let fabric = FabricRecord(id: .generate(), name: name, site: site.id, createdAt: now)
            let node = NodeRecord(
                id: id, name: name, site: site.id, fabric: fabric.id, gpus: gpus, lifecycle: NodeLifecycle(node: id),
                createdAt: now)
            let taken =
                "this machine cannot register itself: a region 'local', or a site, fabric or node "
                + "named '\(name)', exists already"
            try await Self.unique(taken) {
                try await tx.insertRegion(region)
                try await tx.insertSite(site)
                try await tx.insertFabric(fabric)
                try await tx.insertNode(node)
            }
            try await SchedulingService.sync(node, in: tx, into: &scheduler)
            try await audit.record(request, subject, outcome: .success, actorOverride: Self.localAgent)
        }
        return id
    }

    /// The node already registered under this machine's name with exactly these GPUs: this machine, seen
    /// before by another replica of the control plane (which keeps its own data directory).
    func sameMachine(name: String, gpus: [GPUDevice]) async throws -> NodeID? {
        let uuids = Set(gpus.map(\.uuid))
        var cursor: String?
        repeat {
            let page = try await fleet.nodes(of: nil, after: cursor, limit: 200)
            if let node = page.items.first(where: { $0.name == name && Set($0.gpus.map(\.uuid)) == uuids }) {
                return node.id
            }
            cursor = page.next
        } while cursor != nil
        return nil
    }

    /// A node's record, for the agent that serves it.
    public func nodeRecord(_ id: NodeID) async throws -> NodeRecord? {
        try await fleet.node(id: id)
    }
}
