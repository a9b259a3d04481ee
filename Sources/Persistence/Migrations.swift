import CaduceusCore
import SQLKit

/// One versioned schema change, written in SQL that SQLite and PostgreSQL both accept.
struct Migration: Sendable {
    var version: Int
    var name: String
    var statements: [String]
}

/// The schema, version by version. Applied in order at start-up, each exactly once, inside a transaction.
enum Migrations {
    static let all: [Migration] = [
        Migration(
            version: 1, name: "identity",
            statements: [
                """
                CREATE TABLE tenants (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE projects (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,
                    created_at BIGINT NOT NULL, UNIQUE (tenant_id, name))
                """,
                """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, password_hash TEXT,
                    totp_secret TEXT, totp_last_step BIGINT, must_change_password BOOLEAN NOT NULL,
                    disabled BOOLEAN NOT NULL, throttle TEXT NOT NULL, created_at BIGINT NOT NULL, created_by TEXT)
                """,
                """
                CREATE TABLE sessions (
                    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), token_digest TEXT NOT NULL UNIQUE,
                    created_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL, ended_at BIGINT, source_address TEXT)
                """,
                "CREATE INDEX sessions_user ON sessions (user_id)",
                """
                CREATE TABLE api_tokens (
                    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), name TEXT NOT NULL,
                    token_digest TEXT NOT NULL UNIQUE, scope TEXT NOT NULL, created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL, revoked_at BIGINT)
                """,
                "CREATE INDEX api_tokens_user ON api_tokens (user_id)",
                """
                CREATE TABLE role_bindings (
                    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), role TEXT NOT NULL,
                    scope TEXT NOT NULL, granted_by TEXT, granted_at BIGINT NOT NULL, UNIQUE (user_id, role, scope))
                """,
                """
                CREATE TABLE break_glass (
                    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),
                    tenant_id TEXT NOT NULL REFERENCES tenants(id), reason TEXT NOT NULL, opened_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL, closed_at BIGINT, reviewed_by TEXT, reviewed_at BIGINT, review_note TEXT)
                """,
                "CREATE INDEX break_glass_user ON break_glass (user_id)",
                """
                CREATE TABLE idempotency_keys (
                    principal_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, request_digest TEXT NOT NULL,
                    status INTEGER NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL,
                    PRIMARY KEY (principal_id, idempotency_key))
                """,
            ]),
        Migration(
            version: 2, name: "fleet-and-jobs",
            statements: [
                """
                CREATE TABLE regions (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, residency TEXT NOT NULL, created_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE sites (
                    id TEXT PRIMARY KEY, region_id TEXT NOT NULL REFERENCES regions(id), name TEXT NOT NULL,
                    created_at BIGINT NOT NULL, UNIQUE (region_id, name))
                """,
                """
                CREATE TABLE fabrics (
                    id TEXT PRIMARY KEY, site_id TEXT NOT NULL REFERENCES sites(id), name TEXT NOT NULL,
                    created_at BIGINT NOT NULL, UNIQUE (site_id, name))
                """,
                """
                CREATE TABLE nodes (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, site_id TEXT NOT NULL REFERENCES sites(id),
                    fabric_id TEXT NOT NULL REFERENCES fabrics(id), gpus TEXT NOT NULL, state TEXT NOT NULL,
                    tenant_id TEXT REFERENCES tenants(id), next_tenant_id TEXT REFERENCES tenants(id),
                    held_work_of TEXT REFERENCES tenants(id), last_sanitization TEXT, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX nodes_tenant ON nodes (tenant_id)",
                """
                CREATE TABLE quotas (
                    project_id TEXT PRIMARY KEY REFERENCES projects(id), tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    guaranteed_gpus BIGINT NOT NULL, maximum_gpus BIGINT NOT NULL, updated_at BIGINT NOT NULL,
                    updated_by TEXT)
                """,
                "CREATE INDEX quotas_tenant ON quotas (tenant_id)",
                """
                CREATE TABLE jobs (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    project_id TEXT NOT NULL REFERENCES projects(id), spec TEXT NOT NULL, state TEXT NOT NULL,
                    submitted_by TEXT NOT NULL, submitted_at BIGINT NOT NULL, assignments TEXT NOT NULL,
                    started_at BIGINT, ended_at BIGINT, preemptions INTEGER NOT NULL, reason TEXT)
                """,
                "CREATE INDEX jobs_tenant ON jobs (tenant_id, id)",
                "CREATE INDEX jobs_project ON jobs (project_id, id)",
                "CREATE INDEX jobs_state ON jobs (state)",
            ]),
        Migration(
            version: 3, name: "sanitization-records",
            statements: [
                """
                CREATE TABLE sanitization_records (
                    id TEXT PRIMARY KEY, node_id TEXT NOT NULL REFERENCES nodes(id),
                    previous_tenant_id TEXT REFERENCES tenants(id), completed_at BIGINT NOT NULL,
                    gpu_memory_scrubbed INTEGER NOT NULL, scratch_erased INTEGER NOT NULL, details TEXT NOT NULL)
                """,
                "CREATE INDEX sanitization_records_node ON sanitization_records (node_id, id)",
            ]),
        Migration(
            version: 4, name: "node-agents",
            statements: [
                """
                CREATE TABLE node_agents (
                    node_id TEXT PRIMARY KEY REFERENCES nodes(id), join_token_hash TEXT UNIQUE,
                    join_token_expires_at BIGINT, certificate_serial TEXT, certificate_expires_at BIGINT,
                    enrolled_at BIGINT, host_name TEXT)
                """,
                "ALTER TABLE nodes ADD COLUMN unreachable_since BIGINT",
            ]),
        Migration(
            version: 5, name: "datasets-and-keys",
            statements: [
                """
                CREATE TABLE tenant_keys (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id), version INTEGER NOT NULL, wrapped TEXT NOT NULL,
                    created_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, version))
                """,
                """
                CREATE TABLE patient_index_keys (
                    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id), wrapped TEXT NOT NULL)
                """,
                """
                CREATE TABLE datasets (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL, classification TEXT NOT NULL,
                    residency TEXT NOT NULL, retention_years INTEGER NOT NULL, lifecycle TEXT NOT NULL,
                    legal_hold INTEGER NOT NULL, created_at BIGINT NOT NULL, created_by TEXT NOT NULL,
                    shredded_at BIGINT, UNIQUE (project_id, name))
                """,
                "CREATE INDEX datasets_tenant ON datasets (tenant_id, id)",
                """
                CREATE TABLE data_keys (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    dataset_id TEXT NOT NULL UNIQUE REFERENCES datasets(id), kek_version INTEGER NOT NULL,
                    wrapped TEXT, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX data_keys_tenant ON data_keys (tenant_id)",
                """
                CREATE TABLE dataset_objects (
                    id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL REFERENCES datasets(id), name TEXT NOT NULL,
                    plaintext_bytes BIGINT NOT NULL, sealed_bytes BIGINT NOT NULL, sha256 TEXT NOT NULL,
                    chunk_size INTEGER NOT NULL, tier TEXT NOT NULL, created_at BIGINT NOT NULL,
                    created_by TEXT NOT NULL, last_read_at BIGINT, patients INTEGER NOT NULL,
                    UNIQUE (dataset_id, name))
                """,
                """
                CREATE TABLE object_patients (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id), patient_hash TEXT NOT NULL,
                    object_id TEXT NOT NULL REFERENCES dataset_objects(id) ON DELETE CASCADE,
                    PRIMARY KEY (tenant_id, patient_hash, object_id))
                """,
                """
                CREATE TABLE dataset_grants (
                    id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL REFERENCES datasets(id),
                    tenant_id TEXT NOT NULL REFERENCES tenants(id), project_id TEXT NOT NULL REFERENCES projects(id),
                    purpose TEXT NOT NULL, approved_by TEXT NOT NULL, approved_at BIGINT NOT NULL, revoked_at BIGINT)
                """,
                "CREATE INDEX dataset_grants_dataset ON dataset_grants (dataset_id)",
                """
                CREATE TABLE shredding_certificates (
                    dataset_id TEXT PRIMARY KEY REFERENCES datasets(id), note TEXT NOT NULL)
                """,
            ]),
        Migration(
            version: 6, name: "replicas-and-leases",
            statements: [
                """
                CREATE TABLE replicas (
                    id TEXT PRIMARY KEY, host TEXT NOT NULL, url TEXT NOT NULL, version TEXT NOT NULL,
                    started_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE leases (
                    name TEXT PRIMARY KEY, holder TEXT NOT NULL, token BIGINT NOT NULL, expires_at BIGINT NOT NULL)
                """,
            ]),
        Migration(
            version: 7, name: "shared-audit-journal",
            statements: [
                """
                CREATE TABLE audit_batches (
                    first_index BIGINT PRIMARY KEY, end_index BIGINT NOT NULL UNIQUE, record TEXT NOT NULL)
                """,
                "CREATE TABLE audit_payloads (commitment TEXT PRIMARY KEY, sealed TEXT NOT NULL)",
            ]),
        Migration(
            version: 8, name: "audit-outbox",
            statements: [
                """
                CREATE TABLE audit_outbox (
                    digest TEXT PRIMARY KEY, recorded_at BIGINT NOT NULL, entry TEXT NOT NULL)
                """,
                "CREATE INDEX audit_outbox_recorded ON audit_outbox (recorded_at, digest)",
            ]),
        Migration(
            version: 9, name: "session-changes",
            statements: [
                "CREATE TABLE session_changes (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, at BIGINT NOT NULL)",
                "CREATE INDEX session_changes_at ON session_changes (at)",
            ]),
    ]

    /// Applies every migration not yet applied; returns the versions applied now.
    static func run(on db: any SQLDatabase, clock: any WallClock) async throws -> [Int] {
        try await db.raw(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)
            """
        ).run()
        let applied = Set(
            try await db.raw("SELECT version FROM schema_migrations").all().map {
                try $0.decode(column: "version", as: Int.self)
            })
        if let newest = applied.max(), newest > (all.map(\.version).max() ?? 0) {
            throw CaduceusError(
                code: "store.schemaTooNew",
                message: "the database has schema version \(newest), newer than this build knows; upgrade Caduceus")
        }
        var ran: [Int] = []
        for migration in all where !applied.contains(migration.version) {
            try await db.raw("BEGIN").run()
            do {
                for statement in migration.statements { try await db.raw(SQLQueryString(statement)).run() }
                try await db.raw(
                    """
                    INSERT INTO schema_migrations (version, name, applied_at)
                    VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: clock.now().millisecondsSinceEpoch))
                    """
                ).run()
                try await db.raw("COMMIT").run()
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw CaduceusError(
                    code: "store.migration", message: "schema migration \(migration.version) failed", underlying: error)
            }
            ran.append(migration.version)
        }
        return ran
    }
}
