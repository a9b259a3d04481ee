import CaduceusCore

/// A role held by an account in a scope.
public struct RoleBinding: Codable, Sendable, Equatable, Hashable {
    /// The binding's ID.
    public var id: RoleBindingID
    /// Who holds the role.
    public var user: UserID
    /// The role.
    public var role: Role
    /// Where it applies.
    public var scope: Scope

    /// Creates a binding.
    public init(id: RoleBindingID, user: UserID, role: Role, scope: Scope) {
        self.id = id
        self.user = user
        self.role = role
        self.scope = scope
    }
}

/// The outcome of an authorisation check.
public struct AccessDecision: Sendable, Equatable {
    /// Whether the action is allowed.
    public var allowed: Bool
    /// The break-glass grant that allowed it, when only emergency access did.
    public var breakGlass: BreakGlassID?

    /// Creates a decision.
    public init(allowed: Bool, breakGlass: BreakGlassID?) {
        self.allowed = allowed
        self.breakGlass = breakGlass
    }

    /// Denied.
    public static let denied = AccessDecision(allowed: false, breakGlass: nil)
}

/// Who may do what: one table of data from roles to permissions, and the rule that applies it.
///
/// Deny by default: a permission is allowed only if a role binding whose scope covers the target grants
/// it, or an open break-glass grant of the target's tenant does. Least privilege: the platform admin
/// manages fleet, tenants and users but holds no `phi.read` and no `audit.read`; it sees where jobs run
/// (`job.read`) but not what they run (`job.inspect`: command, arguments, environment), which only the
/// project's own researchers and services see. Tenant admins set their projects' quotas and read their
/// tenant's nodes and jobs; they neither submit nor cancel work.
public enum AccessPolicy {
    /// The permissions each role grants, within the scope it is held in.
    public static let table: [Role: Set<Permission>] = [
        .platformAdmin: [
            .userCreate, .userRead, .userUpdate, .roleGrant, .roleRead, .tokenManage, .tenantCreate, .tenantRead,
            .projectCreate, .projectRead, .fleetManage, .fleetRead, .quotaRead, .jobRead,
        ],
        .securityOfficer: [
            .userRead, .userUpdate, .roleRead, .tenantRead, .projectRead, .auditRead, .breakGlassReview, .fleetRead,
            .jobRead, .datasetRead, .datasetGovern, .keyManage, .keyRead,
        ],
        .tenantAdmin: [
            .roleGrant, .roleRead, .tokenManage, .tenantRead, .projectCreate, .projectRead, .emergencyAccess,
            .fleetRead, .quotaManage, .quotaRead, .jobRead, .datasetRead, .datasetGrant, .datasetGovern,
            .keyManage, .keyRead,
        ],
        .researcher: [
            .projectRead, .phiRead, .emergencyAccess, .quotaRead, .jobSubmit, .jobRead, .jobInspect, .jobCancel,
            .datasetWrite, .datasetRead,
        ],
        .auditor: [
            .userRead, .roleRead, .tenantRead, .projectRead, .auditRead, .fleetRead, .quotaRead, .jobRead,
            .datasetRead, .keyRead,
        ],
        .service: [
            .projectRead, .phiRead, .quotaRead, .jobSubmit, .jobRead, .jobInspect, .jobCancel, .datasetWrite,
            .datasetRead,
        ],
    ]

    /// What an open break-glass grant adds, across its whole tenant.
    public static let emergencyPermissions: Set<Permission> = [.phiRead, .projectRead, .tenantRead, .datasetRead]

    /// Decides whether `principal` may use `permission` on something in `target` at `now`.
    public static func decide(
        _ principal: Principal, _ permission: Permission, in target: Scope, at now: Timestamp
    )
        -> AccessDecision
    {
        for binding in principal.bindings where table[binding.role]?.contains(permission) == true {
            if binding.scope.covers(target) { return AccessDecision(allowed: true, breakGlass: nil) }
            // Emergency access is asked for a whole tenant by people who work in one of its projects.
            if permission == .emergencyAccess, case .tenant(let tenant) = target, binding.scope.tenant == tenant {
                return AccessDecision(allowed: true, breakGlass: nil)
            }
        }
        if emergencyPermissions.contains(permission), let tenant = target.tenant {
            for grant in principal.breakGlass where grant.tenant == tenant && grant.isOpen(at: now) {
                return AccessDecision(allowed: true, breakGlass: grant.id)
            }
        }
        return .denied
    }
}
