import AuditLog
import CaduceusCore
import ControlPlane
import Foundation
import Identity
import Testing

@testable import ControlPlaneHTTP

/// The responses that write their own JSON must write exactly what their `Encodable` conformance writes: a
/// field added to one of them and not to its writer fails here.
@Suite("Directly written JSON responses")
struct DirectJSONTests {
    static func encodable(_ value: some Encodable) throws -> [UInt8] {
        let writer = JSONStreamWriter()
        try writer.write(value, depth: 0)
        #expect(!writer.unstreamable)
        return writer.bytes
    }

    static func check(_ json: String) throws {
        let value = try JSONDecoder().decode(MeResponse.self, from: Data(json.utf8))
        let direct = DirectJSON.encode(value)
        #expect(String(decoding: direct, as: UTF8.self) == String(decoding: try encodable(value), as: UTF8.self))
        #expect(try StreamingJSONEncoder().encode(value) == direct)
        #expect(
            try JSONDecoder().decode(JSONValue.self, from: Data(direct))
                == StreamingJSONEncoderTests.foundation(value))
    }

    static let user = UserID.generate()
    static let tenant = TenantID.generate()

    static func userView(name: String = "alice") -> String {
        #"{"id":"\#(user)","name":"\#(name)","kind":"user","disabled":false,"mustChangePassword":true,"#
            + #""mfaEnrolled":true,"createdAt":"2026-11-30T01:02:03.456Z"}"#
    }

    static func role(_ role: Role, _ scope: Scope) -> String {
        #"{"id":"\#(RoleBindingID.generate())","user":"\#(user)","role":"\#(role.rawValue)","scope":"\#(scope)"}"#
    }

    @Test("a session's view, with roles in every kind of scope and grants reviewed and not")
    func sessionView() throws {
        let roles = [
            Self.role(.platformAdmin, .platform), Self.role(.tenantAdmin, .tenant(Self.tenant)),
            Self.role(.researcher, .project(Self.tenant, ProjectID.generate())),
        ]
        let reviewed = """
            {"id":"\(BreakGlassID.generate())","user":"\(Self.user)","tenant":"\(Self.tenant)",\
            "reason":"ward 7 \\"sepsis\\" alert\\n\\u0001 / tab\\t é 🙂","openedAt":"2026-11-29T23:00:00.000Z",\
            "expiresAt":"2026-11-30T01:00:00.000Z","open":false,"reviewedBy":"\(UserID.generate())",\
            "reviewedAt":"2026-11-30T02:00:00.000Z","reviewNote":"justified","overdue":false}
            """
        let unreviewed = """
            {"id":"\(BreakGlassID.generate())","user":"\(Self.user)","tenant":"\(Self.tenant)",\
            "reason":"on-call access to the imaging archive","openedAt":"2026-11-28T00:00:00.000Z",\
            "expiresAt":"2026-11-28T04:00:00.000Z","open":true,"overdue":true}
            """
        try Self.check(
            #"{"user":\#(Self.userView()),"session":"\#(SessionID.generate())","roles":[\#(roles.joined(separator: ","))],"#
                + #""breakGlass":[\#(reviewed),\#(unreviewed)]}"#)
    }

    @Test("a token's view, with no roles and no grants")
    func tokenView() throws {
        try Self.check(
            #"{"user":\#(Self.userView(name: "svc.pipeline")),"token":"\#(TokenID.generate())","roles":[],"#
                + #""breakGlass":[]}"#)
    }
}
