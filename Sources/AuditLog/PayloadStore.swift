import CaduceusCore
import Crypto

/// Keeps audit details that may hold PHI apart from the log, each sealed with AES-256-GCM.
///
/// An entry refers to its payload by the salted commitment
/// `SHA-256("caduceus/audit/payload/v1" ‖ 0x00 ‖ salt ‖ payload)`, so a payload can be deleted when its
/// retention ends while the log, which holds only the commitment, stays verifiable. A payload file is
/// `nonce (12) ‖ ciphertext ‖ tag (16)` over `salt (32) ‖ payload`, with the commitment as AAD.
public struct PayloadStore: Sendable {
    /// The directory holding one file per payload, named by its commitment's hex digits.
    public let directory: String
    private let key: SymmetricKey

    /// Creates a store in `directory` sealing with the 32-byte `key`.
    public init(directory: String, key: SymmetricKey) {
        self.directory = directory
        self.key = key
    }

    /// The commitment to `payload` under `salt`, as `sha256:<hex>`.
    public static func commitment(payload: [UInt8], salt: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(data: Array("caduceus/audit/payload/v1".utf8) + [0x00])
        hasher.update(data: salt)
        hasher.update(data: payload)
        return "sha256:" + Hex.encode(Array(hasher.finalize()))
    }

    /// Seals and durably stores `payload`; returns its commitment for the audit event.
    public func put(_ payload: [UInt8]) throws -> String {
        let (commitment, sealed) = try seal(payload)
        try store(commitment, sealed: sealed)
        return commitment
    }

    /// Seals `payload` under a fresh salt: its commitment and the sealed bytes, stored nowhere yet.
    public func seal(_ payload: [UInt8]) throws -> (commitment: String, sealed: [UInt8]) {
        let salt = Array(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        let commitment = Self.commitment(payload: payload, salt: salt)
        let sealed = try AES.GCM.seal(salt + payload, using: key, authenticating: Array(commitment.utf8))
        guard let combined = sealed.combined else {
            throw CaduceusError(code: "audit.payload", message: "cannot seal an audit payload")
        }
        return (commitment, Array(combined))
    }

    /// Seals `details`, if any, for `event`, which then commits to them: the commitment and the sealed bytes,
    /// stored nowhere yet. Throws when `event` names a payload already.
    public func seal(
        _ details: JSONValue?, for event: inout AuditEvent
    ) throws -> (commitment: String, sealed: [UInt8])? {
        guard let details else { return nil }
        guard event.payload == nil else {
            throw CaduceusError(code: "audit.event.malformed", message: "an event with details may not name a payload")
        }
        let sealed = try seal(try CanonicalJSON.encode(details))
        event.payload = sealed.commitment
        return sealed
    }

    /// Durably stores sealed bytes (from `seal`, here or on another replica) under their commitment.
    public func store(_ commitment: String, sealed: [UInt8]) throws {
        guard Self.isCommitment(commitment) else {
            throw CaduceusError(code: "audit.payload", message: "\(commitment) is not a payload commitment")
        }
        try FileSystem.makeDirectories(directory)
        try FileSystem.writeAtomically(path(for: commitment), sealed, mode: 0o600)
    }

    /// Whether the payload with `commitment` is stored here.
    public func contains(_ commitment: String) -> Bool {
        Self.isCommitment(commitment) && FileSystem.exists(path(for: commitment))
    }

    /// `sha256:` and 64 lower-case hex digits.
    static func isCommitment(_ text: String) -> Bool {
        let hex = text.replacingPrefix("sha256:")
        return text.hasPrefix("sha256:") && hex.utf8.count == 64
            && hex.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// Opens the payload with `commitment`, checking it against the commitment; nil if it was deleted.
    public func get(_ commitment: String) throws -> [UInt8]? {
        guard let bytes = try FileSystem.readIfPresent(path(for: commitment)) else { return nil }
        let opened: [UInt8]
        do {
            let box = try AES.GCM.SealedBox(combined: bytes)
            opened = Array(try AES.GCM.open(box, using: key, authenticating: Array(commitment.utf8)))
        } catch {
            throw CaduceusError(
                code: "audit.payload", message: "payload \(commitment) does not open", underlying: error)
        }
        guard opened.count >= 32 else { throw CaduceusError(code: "audit.payload", message: "payload is too short") }
        let payload = Array(opened[32...])
        guard Self.commitment(payload: payload, salt: Array(opened[0..<32])) == commitment else {
            throw CaduceusError(code: "audit.payload", message: "payload \(commitment) does not match its commitment")
        }
        return payload
    }

    /// Deletes the payload with `commitment` (its retention has ended); the log is untouched.
    public func delete(_ commitment: String) throws {
        try FileSystem.remove(path(for: commitment))
    }

    private func path(for commitment: String) -> String {
        directory + "/" + commitment.replacingPrefix("sha256:")
    }
}

extension String {
    func replacingPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }
}
