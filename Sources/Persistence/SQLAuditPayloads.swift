import AuditLog
import CaduceusCore
import Identity
import SQLKit

/// The audit trail's sealed details payloads in the database (distributed mode), as base64url text under
/// their commitment, on the audit journal's own connections.
public final class SQLAuditPayloads: SharedPayloads {
    let engine: any SQLEngine

    init(engine: any SQLEngine) { self.engine = engine }

    public func put(_ commitment: String, sealed: [UInt8]) async throws {
        let encoded = Base64URL.encode(sealed)
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            try await db.raw(
                """
                INSERT INTO audit_payloads (commitment, sealed) VALUES (\(bind: commitment), \(bind: encoded))
                ON CONFLICT (commitment) DO NOTHING
                """
            ).run()
        }
    }

    public func get(_ commitment: String) async throws -> [UInt8]? {
        try await SQLTransaction.statement(engine, pinned: nil) { db in
            guard
                let row = try await db.raw("SELECT sealed FROM audit_payloads WHERE commitment = \(bind: commitment)")
                    .first()
            else { return nil }
            guard let bytes = Base64URL.decode(try row.decode(column: "sealed", as: String.self)) else {
                throw CaduceusError(code: "audit.payload", message: "the shared payload \(commitment) is damaged")
            }
            return bytes
        }
    }
}
