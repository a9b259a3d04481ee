import CaduceusCore
import Crypto

/// The audit log's keys in a key directory: the checkpoint signing key, its verifier key and the payload key.
///
/// `audit-signing.key` (0600) holds the note private key, `audit.vkey` the verifier key an examiner is
/// given, `audit-payload.key` (0600) the AES-256 key sealing details payloads.
public struct AuditKeys: Sendable {
    /// The checkpoint signer.
    public let signer: NoteSigner
    /// The payload sealing key.
    public let payloadKey: SymmetricKey

    /// The directory's signing key file name.
    public static let signingKeyFile = "audit-signing.key"
    /// The directory's verifier key file name.
    public static let verifierKeyFile = "audit.vkey"
    /// The directory's payload key file name.
    public static let payloadKeyFile = "audit-payload.key"

    /// Loads the keys from `directory`, creating them for log `origin` if there are none.
    public static func loadOrCreate(directory: String, origin: String) throws -> AuditKeys {
        if let keys = try loadIfPresent(directory: directory) { return keys }
        return try create(directory: directory, origin: origin)
    }

    /// Loads the keys from `directory`; throws if there are none.
    public static func load(directory: String) throws -> AuditKeys {
        guard let keys = try loadIfPresent(directory: directory) else {
            throw CaduceusError(code: "audit.key.missing", message: "no audit keys in \(directory)")
        }
        return keys
    }

    private static func loadIfPresent(directory: String) throws -> AuditKeys? {
        let signingPath = directory + "/" + signingKeyFile
        let payloadPath = directory + "/" + payloadKeyFile
        if let text = try FileSystem.readIfPresent(signingPath) {
            try checkPrivate(signingPath)
            let signer = try NoteSigner(privateKeyText: String(decoding: text, as: UTF8.self))
            guard let payload = try FileSystem.readIfPresent(payloadPath), payload.count == 32 else {
                throw CaduceusError(code: "audit.key.missing", message: "\(payloadPath) is missing or not 32 bytes")
            }
            try checkPrivate(payloadPath)
            return AuditKeys(signer: signer, payloadKey: SymmetricKey(data: payload))
        }
        return nil
    }

    private static func create(directory: String, origin: String) throws -> AuditKeys {
        let signingPath = directory + "/" + signingKeyFile
        let payloadPath = directory + "/" + payloadKeyFile
        try FileSystem.makeDirectories(directory, mode: 0o700)
        let signer = try NoteSigner.generate(name: origin)
        let payloadKey = SymmetricKey(size: .bits256)
        try FileSystem.writeAtomically(payloadPath, payloadKey.withUnsafeBytes { Array($0) }, mode: 0o600)
        try FileSystem.writeAtomically(directory + "/" + verifierKeyFile, Array((signer.verifierKey.vkey + "\n").utf8))
        try FileSystem.writeAtomically(signingPath, Array((signer.privateKeyText + "\n").utf8), mode: 0o600)
        return AuditKeys(signer: signer, payloadKey: payloadKey)
    }

    private static func checkPrivate(_ path: String) throws {
        if try FileSystem.mode(path) & 0o077 != 0 {
            throw CaduceusError(
                code: "audit.key.permissions", message: "\(path) is readable by others; it must have mode 0600")
        }
    }
}
