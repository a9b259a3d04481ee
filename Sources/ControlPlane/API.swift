import AuditLog
import CaduceusCore
import Identity
import Logging

/// The JSON type of a request field, and whether it must be present.
public struct FieldSpec: Sendable, Equatable {
    /// `string`, `integer`, `boolean`, `array` or `object`.
    public var type: String
    /// Whether the field must be present.
    public var required: Bool
    /// For arrays, the type of their items; for objects, the type of their values.
    public var items: String? = nil

    /// A required string.
    public static let string = FieldSpec(type: "string", required: true)
    /// A required integer.
    public static let integer = FieldSpec(type: "integer", required: true)
    /// An optional string.
    public static let optionalString = FieldSpec(type: "string", required: false)
    /// An optional integer.
    public static let optionalInteger = FieldSpec(type: "integer", required: false)
    /// An optional boolean.
    public static let optionalBoolean = FieldSpec(type: "boolean", required: false)
    /// An optional array of strings.
    public static let optionalStrings = FieldSpec(type: "array", required: false, items: "string")
    /// An optional object whose values are strings.
    public static let optionalStringMap = FieldSpec(type: "object", required: false, items: "string")
    /// A required array of objects.
    public static let objects = FieldSpec(type: "array", required: true, items: "object")
}

/// Request bodies that refuse fields they do not know (an unknown field is a client bug, or worse).
public protocol StrictDecodable: Decodable, Sendable {
    /// The JSON fields the type accepts, with their types; also what the OpenAPI document says.
    static var schema: [String: FieldSpec] { get }
}

extension StrictDecodable {
    /// The names of the accepted fields.
    public static var fields: Set<String> { Set(schema.keys) }
}

/// A page of results and the cursor for the next.
public struct ListResponse<Item: Codable & Sendable>: Codable, Sendable {
    public var items: [Item]
    public var next: String?

    public init(items: [Item], next: String?) {
        self.items = items
        self.next = next
    }
}

public struct LoginRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["user": .string, "password": .string, "code": .string]
    public var user: String
    public var password: String
    public var code: String

    public init(user: String, password: String, code: String) {
        self.user = user
        self.password = password
        self.code = code
    }
}

public struct LoginResponse: Codable, Sendable {
    public var token: String
    public var session: SessionID
    public var user: UserView
    public var mustChangePassword: Bool
    public var idleTimeoutMinutes: Int
}

public struct UserView: Codable, Sendable, Equatable {
    public var id: UserID
    public var name: String
    public var kind: Principal.Kind
    public var disabled: Bool
    public var mustChangePassword: Bool
    public var mfaEnrolled: Bool
    public var createdAt: Timestamp

    init(_ record: UserRecord) {
        id = record.id
        name = record.name
        kind = record.kind
        disabled = record.disabled
        mustChangePassword = record.mustChangePassword
        mfaEnrolled = record.sealedTOTPSecret != nil
        createdAt = record.createdAt
    }
}

public struct MeResponse: Codable, Sendable {
    public var user: UserView
    public var session: SessionID?
    public var token: TokenID?
    /// The roles in force for this session or token (a token's are narrowed to its scope).
    public var roles: [RoleBinding]
    public var breakGlass: [BreakGlassView]
}

public struct ChangePasswordRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["currentPassword": .string, "newPassword": .string]
    public var currentPassword: String
    public var newPassword: String

    public init(currentPassword: String, newPassword: String) {
        self.currentPassword = currentPassword
        self.newPassword = newPassword
    }
}

public struct EnrollMFARequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["code": .string]
    /// A current code from the authenticator being replaced.
    public var code: String

    public init(code: String) { self.code = code }
}

public struct EnrollMFAResponse: Codable, Sendable {
    public var otpauthURI: String
}

public struct CreateUserRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["name": .string, "kind": .optionalString]
    public var name: String
    public var kind: Principal.Kind?

    public init(name: String, kind: Principal.Kind? = nil) {
        self.name = name
        self.kind = kind
    }
}

public struct CreateUserResponse: Codable, Sendable {
    public var user: UserView
    /// For people: a one-time password that must be changed at first log-in. Shown once.
    public var initialPassword: String?
    /// For people: the TOTP enrolment URI. Shown once.
    public var otpauthURI: String?
}

public struct RoleBindingView: Codable, Sendable, Equatable {
    public var id: RoleBindingID
    public var user: UserID
    public var role: Role
    public var scope: Scope
    public var grantedBy: UserID?
    public var grantedAt: Timestamp

    init(_ record: RoleBindingRecord) {
        id = record.binding.id
        user = record.binding.user
        role = record.binding.role
        scope = record.binding.scope
        grantedBy = record.grantedBy
        grantedAt = record.grantedAt
    }
}

public struct GrantRoleRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["user": .string, "role": .string, "scope": .string]
    public var user: UserID
    public var role: Role
    public var scope: Scope

    public init(user: UserID, role: Role, scope: Scope) {
        self.user = user
        self.role = role
        self.scope = scope
    }
}

public struct CreateTokenRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = [
        "user": .string, "name": .string, "scope": .string, "days": .optionalInteger,
    ]
    /// The service account the token is for.
    public var user: UserID
    public var name: String
    public var scope: Scope
    /// Days until it expires (1–365).
    public var days: Int?

    public init(user: UserID, name: String, scope: Scope, days: Int? = nil) {
        self.user = user
        self.name = name
        self.scope = scope
        self.days = days
    }
}

public struct TokenView: Codable, Sendable {
    public var id: TokenID
    public var user: UserID
    public var name: String
    public var scope: Scope
    public var createdAt: Timestamp
    public var expiresAt: Timestamp
    public var revokedAt: Timestamp?

    init(_ record: APITokenRecord) {
        id = record.id
        user = record.user
        name = record.name
        scope = record.scope
        createdAt = record.createdAt
        expiresAt = record.expiresAt
        revokedAt = record.revokedAt
    }
}

public struct CreateTokenResponse: Codable, Sendable {
    /// The token itself, shown this once.
    public var token: String
    public var details: TokenView
}

public struct CreateTenantRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["name": .string]
    public var name: String

    public init(name: String) { self.name = name }
}

public struct TenantView: Codable, Sendable {
    public var id: TenantID
    public var name: String
    public var createdAt: Timestamp

    init(_ record: TenantRecord) {
        id = record.id
        name = record.name
        createdAt = record.createdAt
    }
}

public struct CreateProjectRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["tenant": .string, "name": .string]
    public var tenant: TenantID
    public var name: String

    public init(tenant: TenantID, name: String) {
        self.tenant = tenant
        self.name = name
    }
}

public struct ProjectView: Codable, Sendable {
    public var id: ProjectID
    public var tenant: TenantID
    public var name: String
    public var createdAt: Timestamp

    init(_ record: ProjectRecord) {
        id = record.id
        tenant = record.tenant
        name = record.name
        createdAt = record.createdAt
    }
}

public struct OpenBreakGlassRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["tenant": .string, "reason": .string, "minutes": .integer]
    public var tenant: TenantID
    public var reason: String
    /// How long, at most 240 minutes.
    public var minutes: Int

    public init(tenant: TenantID, reason: String, minutes: Int) {
        self.tenant = tenant
        self.reason = reason
        self.minutes = minutes
    }
}

public struct ReviewBreakGlassRequest: StrictDecodable, Encodable {
    public static let schema: [String: FieldSpec] = ["note": .string]
    public var note: String

    public init(note: String) { self.note = note }
}

public struct BreakGlassView: Codable, Sendable {
    public var id: BreakGlassID
    public var user: UserID
    public var tenant: TenantID
    public var reason: String
    public var openedAt: Timestamp
    public var expiresAt: Timestamp
    public var open: Bool
    public var reviewedBy: UserID?
    public var reviewedAt: Timestamp?
    public var reviewNote: String?
    /// Unreviewed for more than 24 hours.
    public var overdue: Bool

    init(_ grant: BreakGlassGrant, now: Timestamp) {
        id = grant.id
        user = grant.user
        tenant = grant.tenant
        reason = grant.reason
        openedAt = grant.openedAt
        expiresAt = grant.expiresAt
        open = grant.isOpen(at: now)
        reviewedBy = grant.reviewedBy
        reviewedAt = grant.reviewedAt
        reviewNote = grant.reviewNote
        overdue = grant.isOverdueForReview(at: now)
    }
}

/// Checks names of users, tenants and projects: 2–64 of `a–z 0–9 . _ -`, starting with a letter.
enum Names {
    static func check(_ name: String, _ what: String) throws {
        let bytes = Array(name.utf8)
        guard (2...64).contains(bytes.count), (97...122).contains(bytes[0]),
            bytes.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 46 || $0 == 95 || $0 == 45 })
        else {
            throw Failure.invalid(
                "\(what) must be 2–64 lower-case letters, digits, '.', '_' or '-', starting with a letter")
        }
    }
}
