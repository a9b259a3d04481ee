import CaduceusCore
import Foundation
import SQLKit
import Scheduling
import Synchronization

/// The fleet and job store over SQL: SQLite in embedded mode, PostgreSQL when distributed (same statements).
///
/// It shares the identity store's `SQLEngine`, so its transactions are as atomic as the identity store's.
public final class SQLFleetStore: FleetStore {
    let engine: any SQLEngine
    /// The connection of the transaction this store is bound to, if any.
    let pinned: (any SQLDatabase)?

    init(engine: any SQLEngine, pinned: (any SQLDatabase)?) {
        self.engine = engine
        self.pinned = pinned
    }

    func run<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await SQLTransaction.statement(engine, pinned: pinned, body)
    }

    public func transaction<T: Sendable>(_ body: @Sendable (any FleetStore) async throws -> T) async throws -> T {
        try await SQLTransaction.run(
            engine, pinned: pinned, current: self as any FleetStore,
            inner: { [engine] db in SQLFleetStore(engine: engine, pinned: db) }, body)
    }

    // MARK: Regions, sites and fabrics

    public func insertRegion(_ region: RegionRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO regions (id, name, residency, created_at)
                VALUES (\(bind: region.id.rawValue), \(bind: region.name), \(bind: region.residency.rawValue),
                    \(bind: region.createdAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func region(id: RegionID) async throws -> RegionRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM regions WHERE id = \(bind: id.rawValue)").first().map(Self.region)
        }
    }

    public func regions(after cursor: String?, limit: Int) async throws -> Page<RegionRecord> {
        try await page(table: "regions", parent: nil, after: cursor, limit: limit, Self.region, id: \.id.rawValue)
    }

    static func region(_ row: any SQLRow) throws -> RegionRecord {
        let text = try row.decode(column: "residency", as: String.self)
        guard let residency = Residency(rawValue: text) else {
            throw CaduceusError(code: "store.corrupt", message: "region residency '\(text)' is malformed")
        }
        return RegionRecord(
            id: RegionID(unchecked: try row.decode(column: "id", as: String.self)),
            name: try row.decode(column: "name", as: String.self), residency: residency,
            createdAt: try SQLIdentityStore.time(row, "created_at"))
    }

    public func insertSite(_ site: SiteRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO sites (id, region_id, name, created_at)
                VALUES (\(bind: site.id.rawValue), \(bind: site.region.rawValue), \(bind: site.name),
                    \(bind: site.createdAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func site(id: SiteID) async throws -> SiteRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM sites WHERE id = \(bind: id.rawValue)").first().map(Self.site)
        }
    }

    public func sites(in region: RegionID?, after cursor: String?, limit: Int) async throws -> Page<SiteRecord> {
        try await page(
            table: "sites", parent: region.map { ("region_id", $0.rawValue) }, after: cursor, limit: limit, Self.site,
            id: \.id.rawValue)
    }

    static func site(_ row: any SQLRow) throws -> SiteRecord {
        SiteRecord(
            id: SiteID(unchecked: try row.decode(column: "id", as: String.self)),
            name: try row.decode(column: "name", as: String.self),
            region: RegionID(unchecked: try row.decode(column: "region_id", as: String.self)),
            createdAt: try SQLIdentityStore.time(row, "created_at"))
    }

    public func insertFabric(_ fabric: FabricRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO fabrics (id, site_id, name, created_at)
                VALUES (\(bind: fabric.id.rawValue), \(bind: fabric.site.rawValue), \(bind: fabric.name),
                    \(bind: fabric.createdAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func fabric(id: FabricID) async throws -> FabricRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM fabrics WHERE id = \(bind: id.rawValue)").first().map(Self.fabric)
        }
    }

    public func fabrics(in site: SiteID?, after cursor: String?, limit: Int) async throws -> Page<FabricRecord> {
        try await page(
            table: "fabrics", parent: site.map { ("site_id", $0.rawValue) }, after: cursor, limit: limit, Self.fabric,
            id: \.id.rawValue)
    }

    static func fabric(_ row: any SQLRow) throws -> FabricRecord {
        FabricRecord(
            id: FabricID(unchecked: try row.decode(column: "id", as: String.self)),
            name: try row.decode(column: "name", as: String.self),
            site: SiteID(unchecked: try row.decode(column: "site_id", as: String.self)),
            createdAt: try SQLIdentityStore.time(row, "created_at"))
    }

    // MARK: Nodes

    public func insertNode(_ node: NodeRecord) async throws {
        let gpus = try SQLIdentityStore.json(node.gpus)
        let life = node.lifecycle
        try await run { db in
            try await db.raw(
                """
                INSERT INTO nodes (id, name, site_id, fabric_id, gpus, state, tenant_id, next_tenant_id, held_work_of,
                    last_sanitization, created_at)
                VALUES (\(bind: node.id.rawValue), \(bind: node.name), \(bind: node.site.rawValue),
                    \(bind: node.fabric.rawValue), \(bind: gpus), \(bind: life.state.rawValue),
                    \(bind: life.tenant?.rawValue), \(bind: life.nextTenant?.rawValue), \(bind: life.heldWorkOf?.rawValue),
                    \(bind: life.lastSanitization?.rawValue), \(bind: node.createdAt.millisecondsSinceEpoch))
                """
            ).run()
        }
    }

    public func updateNode(_ node: NodeRecord) async throws {
        let life = node.lifecycle
        let gpus = try SQLIdentityStore.json(node.gpus)
        try await run { db in
            try await db.raw(
                """
                UPDATE nodes SET state = \(bind: life.state.rawValue), tenant_id = \(bind: life.tenant?.rawValue),
                    next_tenant_id = \(bind: life.nextTenant?.rawValue), held_work_of = \(bind: life.heldWorkOf?.rawValue),
                    last_sanitization = \(bind: life.lastSanitization?.rawValue), gpus = \(bind: gpus),
                    unreachable_since = \(bind: node.unreachableSince?.millisecondsSinceEpoch)
                WHERE id = \(bind: node.id.rawValue)
                """
            ).run()
        }
    }

    public func node(id: NodeID) async throws -> NodeRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM nodes WHERE id = \(bind: id.rawValue)").first().map(Self.node)
        }
    }

    public func nodes(of tenant: TenantID?, after cursor: String?, limit: Int) async throws -> Page<NodeRecord> {
        try await run { db in
            let rows = try await db.raw(
                """
                SELECT * FROM nodes
                WHERE (\(bind: tenant?.rawValue) IS NULL OR tenant_id = \(bind: tenant?.rawValue)
                        OR next_tenant_id = \(bind: tenant?.rawValue))
                    AND id > \(bind: cursor ?? "") ORDER BY id LIMIT \(bind: limit + 1)
                """
            ).all().map(Self.node)
            return SQLIdentityStore.page(rows, limit: limit, id: \.id.rawValue)
        }
    }

    public func insertSanitization(_ entry: SanitizationEntry) async throws {
        let details = try SQLIdentityStore.json(entry)
        let record = entry.record
        try await run { db in
            try await db.raw(
                """
                INSERT INTO sanitization_records (id, node_id, previous_tenant_id, completed_at, gpu_memory_scrubbed,
                    scratch_erased, details)
                VALUES (\(bind: record.id.rawValue), \(bind: record.node.rawValue), \(bind: record.previousTenant?.rawValue),
                    \(bind: record.completedAt.millisecondsSinceEpoch), \(bind: record.gpuMemoryScrubbed ? 1 : 0),
                    \(bind: record.scratchErased ? 1 : 0), \(bind: details))
                """
            ).run()
        }
    }

    public func sanitizations(
        of node: NodeID, after cursor: String?, limit: Int
    ) async throws -> Page<SanitizationEntry> {
        try await run { db in
            let rows = try await db.raw(
                """
                SELECT details FROM sanitization_records WHERE node_id = \(bind: node.rawValue)
                    AND id > \(bind: cursor ?? "") ORDER BY id LIMIT \(bind: limit + 1)
                """
            ).all().map { try Self.decodeJSON(SanitizationEntry.self, $0, "details") }
            return SQLIdentityStore.page(rows, limit: limit, id: \.record.id.rawValue)
        }
    }

    public func activeNodes() async throws -> [(node: NodeRecord, residency: Residency)] {
        try await run { db in
            try await db.raw(
                """
                SELECT nodes.*, regions.residency AS residency FROM nodes
                JOIN sites ON sites.id = nodes.site_id JOIN regions ON regions.id = sites.region_id
                WHERE nodes.state <> 'retired' ORDER BY nodes.id
                """
            ).all().map { row in
                let text = try row.decode(column: "residency", as: String.self)
                guard let residency = Residency(rawValue: text) else {
                    throw CaduceusError(code: "store.corrupt", message: "region residency '\(text)' is malformed")
                }
                return (try Self.node(row), residency)
            }
        }
    }

    static func node(_ row: any SQLRow) throws -> NodeRecord {
        let id = NodeID(unchecked: try row.decode(column: "id", as: String.self))
        let stateText = try row.decode(column: "state", as: String.self)
        guard let state = NodeState(rawValue: stateText) else {
            throw CaduceusError(code: "store.corrupt", message: "node state '\(stateText)' is malformed")
        }
        func tenant(_ column: String) throws -> TenantID? {
            try row.decode(column: column, as: String?.self).map(TenantID.init(unchecked:))
        }
        let lifecycle = NodeLifecycle(
            node: id, state: state, tenant: try tenant("tenant_id"), nextTenant: try tenant("next_tenant_id"),
            heldWorkOf: try tenant("held_work_of"),
            lastSanitization: try row.decode(column: "last_sanitization", as: String?.self).map(
                SanitizationID.init(unchecked:)))
        var node = NodeRecord(
            id: id, name: try row.decode(column: "name", as: String.self),
            site: SiteID(unchecked: try row.decode(column: "site_id", as: String.self)),
            fabric: FabricID(unchecked: try row.decode(column: "fabric_id", as: String.self)),
            gpus: try decodeJSON([GPUDevice].self, row, "gpus"), lifecycle: lifecycle,
            createdAt: try SQLIdentityStore.time(row, "created_at"))
        node.unreachableSince = try SQLIdentityStore.optionalTime(row, "unreachable_since")
        return node
    }

    // MARK: Node agents

    public func saveAgent(_ agent: AgentRecord) async throws {
        try await run { db in
            try await db.raw(
                """
                INSERT INTO node_agents (node_id, join_token_hash, join_token_expires_at, certificate_serial,
                    certificate_expires_at, enrolled_at, host_name)
                VALUES (\(bind: agent.node.rawValue), \(bind: agent.joinTokenHash),
                    \(bind: agent.joinTokenExpiresAt?.millisecondsSinceEpoch), \(bind: agent.certificateSerial),
                    \(bind: agent.certificateExpiresAt?.millisecondsSinceEpoch),
                    \(bind: agent.enrolledAt?.millisecondsSinceEpoch), \(bind: agent.hostName))
                ON CONFLICT (node_id) DO UPDATE SET join_token_hash = excluded.join_token_hash,
                    join_token_expires_at = excluded.join_token_expires_at,
                    certificate_serial = excluded.certificate_serial,
                    certificate_expires_at = excluded.certificate_expires_at, enrolled_at = excluded.enrolled_at,
                    host_name = excluded.host_name
                """
            ).run()
        }
    }

    public func agent(node: NodeID) async throws -> AgentRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM node_agents WHERE node_id = \(bind: node.rawValue)").first()
                .map(Self.agent)
        }
    }

    public func agent(joinTokenHash hash: String) async throws -> AgentRecord? {
        try await run { db in
            try await db.raw("SELECT * FROM node_agents WHERE join_token_hash = \(bind: hash)").first()
                .map(Self.agent)
        }
    }

    public func enrolledAgents() async throws -> [AgentRecord] {
        try await run { db in
            try await db.raw(
                "SELECT * FROM node_agents WHERE certificate_serial IS NOT NULL ORDER BY node_id"
            ).all().map(Self.agent)
        }
    }

    static func agent(_ row: any SQLRow) throws -> AgentRecord {
        AgentRecord(
            node: NodeID(unchecked: try row.decode(column: "node_id", as: String.self)),
            joinTokenHash: try row.decode(column: "join_token_hash", as: String?.self),
            joinTokenExpiresAt: try SQLIdentityStore.optionalTime(row, "join_token_expires_at"),
            certificateSerial: try row.decode(column: "certificate_serial", as: String?.self),
            certificateExpiresAt: try SQLIdentityStore.optionalTime(row, "certificate_expires_at"),
            enrolledAt: try SQLIdentityStore.optionalTime(row, "enrolled_at"),
            hostName: try row.decode(column: "host_name", as: String?.self))
    }

    // MARK: Helpers

    /// A page of `table` in ID order, optionally only the rows whose `parent` column has a value.
    private func page<T: Sendable>(
        table: String, parent: (column: String, value: String)?, after cursor: String?, limit: Int,
        _ map: @escaping @Sendable (any SQLRow) throws -> T, id: any KeyPath<T, String> & Sendable
    ) async throws -> Page<T> {
        let column = parent?.column ?? "id"
        let value = parent?.value
        return try await run { db in
            let rows = try await db.raw(
                """
                SELECT * FROM \(unsafeRaw: table)
                WHERE (\(bind: value) IS NULL OR \(unsafeRaw: column) = \(bind: value)) AND id > \(bind: cursor ?? "")
                ORDER BY id LIMIT \(bind: limit + 1)
                """
            ).all().map(map)
            return SQLIdentityStore.page(rows, limit: limit, id: id)
        }
    }

    static func decodeJSON<T: Decodable>(_ type: T.Type, _ row: any SQLRow, _ column: String) throws -> T {
        try decodeJSON(T.self, text: try row.decode(column: column, as: String.self), column)
    }

    static func decodeJSON<T: Decodable>(_ type: T.Type, text: String, _ column: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        } catch {
            throw CaduceusError(code: "store.corrupt", message: "the stored \(column) is malformed", underlying: error)
        }
    }
}

/// Values decoded from stored JSON, by the exact text they were decoded from (the same text always decodes
/// to the same value, so an entry never goes stale); emptied whole when it reaches `capacity`.
final class DecodedJSONCache<Value: Decodable & Sendable>: Sendable {
    private let values = Mutex<[String: Value]>([:])
    let capacity: Int

    init(capacity: Int = 20_000) { self.capacity = capacity }

    func decode(_ row: any SQLRow, _ column: String) throws -> Value {
        let text = try row.decode(column: column, as: String.self)
        if let known = values.withLock({ $0[text] }) { return known }
        let value = try SQLFleetStore.decodeJSON(Value.self, text: text, column)
        values.withLock { values in
            if values.count >= capacity { values.removeAll(keepingCapacity: true) }
            values[text] = value
        }
        return value
    }
}
