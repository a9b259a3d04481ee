import AuditLog
import CaduceusCore
import Identity
import Logging
import Scheduling

/// Regions, sites and fabrics: where nodes sit. Only platform admins change them (`fleet.manage`);
/// reading them is platform-wide (`fleet.read`).
extension ControlPlane {
    /// Creates a region with its residency.
    public func createRegion(_ request: RequestInfo, _ input: CreateRegionRequest) async throws -> RegionView {
        let record = RegionRecord(id: .generate(), name: input.name, residency: input.residency, createdAt: now)
        let subject = AuditRecorder.Subject(
            action: "region.create", resourceType: "region", resourceID: record.id.rawValue)
        let decision = try await authorize(request, .fleetManage, in: .platform, subject)
        return try await fleetChange(request, subject, decision: decision) { _, tx in
            try Names.check(input.name, "name: a region name")
            try await Self.unique("a region named '\(input.name)' exists already") { try await tx.insertRegion(record) }
            return RegionView(record)
        }
    }

    /// Lists regions.
    public func listRegions(
        _ request: RequestInfo, after cursor: String?, limit: Int
    ) async throws -> ListResponse<RegionView> {
        try await list(
            request, AuditRecorder.Subject(action: "region.list", resourceType: "region", resourceID: "all"),
            .fleetRead, in: .platform, fetch: { [fleet] _ in try await fleet.regions(after: cursor, limit: limit) },
            view: RegionView.init)
    }

    /// Shows a region.
    public func showRegion(_ request: RequestInfo, _ id: RegionID) async throws -> RegionView {
        try await showPlace(request, "region", id, fetch: { try await $0.region(id: id) }, view: RegionView.init)
    }

    /// Creates a site in a region.
    public func createSite(_ request: RequestInfo, _ input: CreateSiteRequest) async throws -> SiteView {
        let record = SiteRecord(id: .generate(), name: input.name, region: input.region, createdAt: now)
        let subject = AuditRecorder.Subject(action: "site.create", resourceType: "site", resourceID: record.id.rawValue)
        let decision = try await authorize(request, .fleetManage, in: .platform, subject)
        return try await fleetChange(request, subject, decision: decision) { _, tx in
            try Names.check(input.name, "name: a site name")
            guard try await tx.region(id: input.region) != nil else {
                throw Failure.invalid("region: no region \(input.region)")
            }
            try await Self.unique("the region already has a site named '\(input.name)'") {
                try await tx.insertSite(record)
            }
            return SiteView(record)
        }
    }

    /// Lists sites, of one region or of all.
    public func listSites(
        _ request: RequestInfo, region: RegionID?, after cursor: String?, limit: Int
    ) async throws -> ListResponse<SiteView> {
        try await list(
            request, AuditRecorder.Subject(action: "site.list", resourceType: "site", resourceID: "all"),
            .fleetRead, in: .platform,
            fetch: { [fleet] _ in try await fleet.sites(in: region, after: cursor, limit: limit) }, view: SiteView.init)
    }

    /// Shows a site.
    public func showSite(_ request: RequestInfo, _ id: SiteID) async throws -> SiteView {
        try await showPlace(request, "site", id, fetch: { try await $0.site(id: id) }, view: SiteView.init)
    }

    /// Creates a fabric (an NVLink or InfiniBand domain) in a site.
    public func createFabric(_ request: RequestInfo, _ input: CreateFabricRequest) async throws -> FabricView {
        let record = FabricRecord(id: .generate(), name: input.name, site: input.site, createdAt: now)
        let subject = AuditRecorder.Subject(
            action: "fabric.create", resourceType: "fabric", resourceID: record.id.rawValue)
        let decision = try await authorize(request, .fleetManage, in: .platform, subject)
        return try await fleetChange(request, subject, decision: decision) { _, tx in
            try Names.check(input.name, "name: a fabric name")
            guard try await tx.site(id: input.site) != nil else { throw Failure.invalid("site: no site \(input.site)") }
            try await Self.unique("the site already has a fabric named '\(input.name)'") {
                try await tx.insertFabric(record)
            }
            return FabricView(record)
        }
    }

    /// Lists fabrics, of one site or of all.
    public func listFabrics(
        _ request: RequestInfo, site: SiteID?, after cursor: String?, limit: Int
    ) async throws -> ListResponse<FabricView> {
        try await list(
            request, AuditRecorder.Subject(action: "fabric.list", resourceType: "fabric", resourceID: "all"),
            .fleetRead, in: .platform,
            fetch: { [fleet] _ in try await fleet.fabrics(in: site, after: cursor, limit: limit) },
            view: FabricView.init)
    }

    /// Shows a fabric.
    public func showFabric(_ request: RequestInfo, _ id: FabricID) async throws -> FabricView {
        try await showPlace(request, "fabric", id, fetch: { try await $0.fabric(id: id) }, view: FabricView.init)
    }

    /// Shows a region, site or fabric: platform-wide `fleet.read`, audited, 404 when it does not exist.
    private func showPlace<Record: Sendable, View: Sendable>(
        _ request: RequestInfo, _ kind: String, _ id: some TypedID,
        fetch: @escaping @Sendable (any FleetStore) async throws -> Record?,
        view: @escaping @Sendable (Record) -> View
    ) async throws -> View {
        let subject = AuditRecorder.Subject(action: kind + ".show", resourceType: kind, resourceID: id.rawValue)
        let decision = try await authorize(request, .fleetRead, in: .platform, subject)
        return try await read(request, subject, decision: decision) { [fleet] _ in
            guard let record = try await fetch(fleet) else { throw Failure.notFound("\(kind) \(id)") }
            return view(record)
        }
    }

    /// Runs an insert, turning a taken unique name into a `conflict` that says which.
    static func unique(_ message: String, _ insert: () async throws -> Void) async throws {
        do {
            try await insert()
        } catch let error as CaduceusError where error.code == "store.conflict" {
            throw Failure.conflict(message)
        }
    }
}
