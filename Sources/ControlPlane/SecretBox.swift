import AuditLog
import CaduceusCore
import Crypto
import Identity
import Logging

/// Seals small secrets (TOTP secrets) under a key derived from the root key, so the database never holds
/// them in clear. The sealed form is base64url of AES-256-GCM `nonce ‖ ciphertext ‖ tag`, bound to a
/// context (the account's ID) as associated data.
public struct SecretBox: Sendable {
    private let key: SymmetricKey

    /// Derives the box's key from `rootKey` for `purpose` (HKDF-SHA256).
    public init(rootKey: SymmetricKey, purpose: String) {
        key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: rootKey, info: Array("caduceus/secret-box/v1/\(purpose)".utf8), outputByteCount: 32)
    }

    /// Seals `secret` for `context`.
    public func seal(_ secret: [UInt8], context: String) throws -> String {
        let box = try AES.GCM.seal(secret, using: key, authenticating: Array(context.utf8))
        guard let combined = box.combined else {
            throw CaduceusError(code: "crypto.seal", message: "cannot seal a secret")
        }
        return Base64URL.encode(Array(combined))
    }

    /// Opens what `seal` made for the same `context`.
    public func open(_ sealed: String, context: String) throws -> [UInt8] {
        do {
            guard let bytes = Base64URL.decode(sealed) else { throw Failure.invalid("sealed secret is malformed") }
            let box = try AES.GCM.SealedBox(combined: bytes)
            return Array(try AES.GCM.open(box, using: key, authenticating: Array(context.utf8)))
        } catch {
            throw CaduceusError(code: "crypto.open", message: "a sealed secret does not open", underlying: error)
        }
    }
}
