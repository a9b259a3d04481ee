import CaduceusCore

/// Who is making a request: one unique account, how it proved itself, and what it holds.
public struct Principal: Sendable, Equatable {
    /// Human or service account.
    public enum Kind: String, Codable, Sendable {
        case user, service
    }

    /// The account's unique, immutable ID.
    public var id: UserID
    /// The account's user name.
    public var name: String
    /// Human or service.
    public var kind: Kind
    /// The session the request came in, for people.
    public var session: SessionID?
    /// The API token used, for service accounts.
    public var token: TokenID?
    /// Roles held, with their scopes.
    public var bindings: [RoleBinding]
    /// Emergency-access grants (open or not; `AccessPolicy` checks the time).
    public var breakGlass: [BreakGlassGrant]
    /// Whether the account must set a new password before doing anything else.
    public var mustChangePassword: Bool

    /// Creates a principal.
    public init(
        id: UserID, name: String, kind: Kind, session: SessionID? = nil, token: TokenID? = nil,
        bindings: [RoleBinding] = [], breakGlass: [BreakGlassGrant] = [], mustChangePassword: Bool = false
    ) {
        self.id = id
        self.name = name
        self.kind = kind
        self.session = session
        self.token = token
        self.bindings = bindings
        self.breakGlass = breakGlass
        self.mustChangePassword = mustChangePassword
    }
}
