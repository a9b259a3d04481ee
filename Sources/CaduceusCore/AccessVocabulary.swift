/// The roles an account can hold, each in a scope.
public enum Role: String, Codable, Sendable, CaseIterable, Comparable {
    /// Runs the platform: fleet, tenants, users. Cannot read PHI.
    case platformAdmin = "platform-admin"
    /// Reviews audit trails, break-glass use and incidents; can disable accounts.
    case securityOfficer = "security-officer"
    /// Manages a tenant: its projects, members and service accounts.
    case tenantAdmin = "tenant-admin"
    /// Works in a project: its datasets and jobs.
    case researcher
    /// Reads audit trails and reports, changes nothing.
    case auditor
    /// A service account acting for an application.
    case service

    /// The scopes this role may be granted in.
    public var allowedScopes: Set<ScopeKind> {
        switch self {
        case .platformAdmin, .securityOfficer: [.platform]
        case .auditor: [.platform, .tenant]
        case .tenantAdmin: [.tenant]
        case .researcher, .service: [.project]
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The kinds of scope.
public enum ScopeKind: String, Codable, Sendable {
    case platform, tenant, project
}

/// Where a role applies: the whole platform, one tenant, or one project of a tenant.
public enum Scope: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    case platform
    case tenant(TenantID)
    case project(TenantID, ProjectID)

    /// The kind of scope.
    public var kind: ScopeKind {
        switch self {
        case .platform: .platform
        case .tenant: .tenant
        case .project: .project
        }
    }

    /// The tenant, for tenant and project scopes.
    public var tenant: TenantID? {
        switch self {
        case .platform: nil
        case .tenant(let tenant), .project(let tenant, _): tenant
        }
    }

    /// Whether a role held in this scope applies to `other` (a scope covers itself and what is inside it).
    public func covers(_ other: Scope) -> Bool {
        switch (self, other) {
        case (.platform, _): true
        case (.tenant(let a), .tenant(let b)), (.tenant(let a), .project(let b, _)): a == b
        case (.project(let a, let p), .project(let b, let q)): a == b && p == q
        default: false
        }
    }

    /// `platform`, `tenant:<id>` or `project:<tenant id>/<project id>`.
    public var description: String {
        switch self {
        case .platform: "platform"
        case .tenant(let tenant): "tenant:\(tenant)"
        case .project(let tenant, let project): "project:\(tenant)/\(project)"
        }
    }

    /// Parses the text form.
    public init?(_ text: String) {
        if text == "platform" {
            self = .platform
        } else if text.hasPrefix("tenant:"), let tenant = TenantID(rawValue: String(text.dropFirst(7))) {
            self = .tenant(tenant)
        } else if text.hasPrefix("project:") {
            let parts = text.dropFirst(8).split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let tenant = TenantID(rawValue: String(parts[0])),
                let project = ProjectID(rawValue: String(parts[1]))
            else { return nil }
            self = .project(tenant, project)
        } else {
            return nil
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let scope = Scope(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a scope"))
        }
        self = scope
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public static func < (lhs: Scope, rhs: Scope) -> Bool { lhs.description < rhs.description }
}

/// What a request may do. Each route requires exactly one; roles grant them through one table
/// (`AccessPolicy.table` in `Identity`).
public enum Permission: String, Codable, Sendable, CaseIterable, Comparable {
    case userCreate = "user.create"
    case userRead = "user.read"
    case userUpdate = "user.update"
    case roleGrant = "role.grant"
    case roleRead = "role.read"
    case tokenManage = "token.manage"
    case tenantCreate = "tenant.create"
    case tenantRead = "tenant.read"
    case projectCreate = "project.create"
    case projectRead = "project.read"
    case auditRead = "audit.read"
    case emergencyAccess = "breakglass.open"
    case breakGlassReview = "breakglass.review"
    case phiRead = "phi.read"
    /// Create regions, sites, fabrics and nodes; move nodes through their lifecycle and between tenants.
    case fleetManage = "fleet.manage"
    /// Read regions, sites, fabrics and nodes.
    case fleetRead = "fleet.read"
    /// Set a project's GPU quota.
    case quotaManage = "quota.manage"
    /// Read quotas and what projects use of them.
    case quotaRead = "quota.read"
    /// Submit jobs.
    case jobSubmit = "job.submit"
    /// Read jobs: their shape, state, placement and why they wait (not what they run).
    case jobRead = "job.read"
    /// Read what a job runs: its command, arguments and environment, which may carry sensitive values.
    case jobInspect = "job.inspect"
    /// Cancel jobs.
    case jobCancel = "job.cancel"
    /// Create datasets and upload objects into them.
    case datasetWrite = "dataset.write"
    /// See datasets and their objects' metadata (not their contents: that is `phi.read`).
    case datasetRead = "dataset.read"
    /// Grant projects of the tenant the reading of a dataset, and revoke such grants.
    case datasetGrant = "dataset.grant"
    /// Set and clear legal holds; crypto-shred datasets whose retention is over.
    case datasetGovern = "dataset.govern"
    /// Rotate tenant key-encryption keys.
    case keyManage = "key.manage"
    /// See key versions and how many data keys each wraps.
    case keyRead = "key.read"

    public static func < (lhs: Permission, rhs: Permission) -> Bool { lhs.rawValue < rhs.rawValue }
}
