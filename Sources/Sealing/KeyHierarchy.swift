import CaduceusCore
import Crypto
import Foundation

/// The root of the key hierarchy: it wraps tenant key-encryption keys (KEKs) and never leaves its holder.
/// Embedded mode keeps it in a key file (mode 0600) outside the database; production may keep it in an HSM.
public protocol RootKeyProvider: Sendable {
    /// Wraps a tenant's KEK version.
    func wrapKEK(_ kek: SymmetricKey, tenant: TenantID, version: Int) throws -> [UInt8]
    /// Unwraps what `wrapKEK` made for the same tenant and version.
    func unwrapKEK(_ wrapped: [UInt8], tenant: TenantID, version: Int) throws -> SymmetricKey
}

/// The root key in a file: 32 raw bytes, mode 0600. KEKs are wrapped with AES-256-GCM under a key derived
/// from it for this purpose alone, bound to the tenant and the KEK version.
public struct KeyFileRootKeyProvider: RootKeyProvider {
    private let wrappingKey: SymmetricKey

    /// Loads the key file at `path`; refuses one that is not 32 bytes or that others may read.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path), data.count == 32 else {
            throw CaduceusError(code: "keys.root", message: "\(path) is not a 32-byte key file")
        }
        let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0o777
        guard mode & 0o077 == 0 else {
            throw CaduceusError(code: "keys.root", message: "\(path) is readable by others; it must have mode 0600")
        }
        self.init(rootKey: SymmetricKey(data: data))
    }

    /// Uses `rootKey` as the root.
    public init(rootKey: SymmetricKey) {
        wrappingKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: rootKey, info: Array("caduceus/kek-wrap/v1".utf8), outputByteCount: 32)
    }

    public func wrapKEK(_ kek: SymmetricKey, tenant: TenantID, version: Int) throws -> [UInt8] {
        try KeyWrap.wrap(kek, under: wrappingKey, aad: KeyWrap.kekAAD(tenant: tenant, version: version))
    }

    public func unwrapKEK(_ wrapped: [UInt8], tenant: TenantID, version: Int) throws -> SymmetricKey {
        try KeyWrap.unwrap(wrapped, under: wrappingKey, aad: KeyWrap.kekAAD(tenant: tenant, version: version))
    }
}

/// Wrapping keys under keys: AES-256-GCM, `nonce ‖ ciphertext ‖ tag`, bound by associated data to where the
/// key belongs. A data key is bound to `tenant ‖ dataset ‖ key id ‖ KEK version`, so a wrapped key moved to
/// another dataset, tenant or KEK version does not open.
public enum KeyWrap {
    public static func wrap(_ key: SymmetricKey, under wrapping: SymmetricKey, aad: [UInt8]) throws -> [UInt8] {
        let box = try key.withUnsafeBytes { try AES.GCM.seal(Array($0), using: wrapping, authenticating: aad) }
        guard let combined = box.combined else {
            throw CaduceusError(code: "keys.wrap", message: "cannot wrap a key")
        }
        return Array(combined)
    }

    public static func unwrap(_ wrapped: [UInt8], under wrapping: SymmetricKey, aad: [UInt8]) throws -> SymmetricKey {
        do {
            var bytes = Array(
                try AES.GCM.open(try AES.GCM.SealedBox(combined: wrapped), using: wrapping, authenticating: aad))
            defer { wipe(&bytes) }
            guard bytes.count == 32 else { throw CaduceusError(code: "keys.unwrap", message: "not a 256-bit key") }
            return SymmetricKey(data: bytes)
        } catch {
            throw CaduceusError(
                code: "keys.unwrap", message: "a wrapped key does not open: wrong key, or it was moved or altered")
        }
    }

    /// `tenant ‖ u32(version)`.
    public static func kekAAD(tenant: TenantID, version: Int) -> [UInt8] {
        var aad = Array(tenant.rawValue.utf8)
        SealHeader.append(UInt64(version), width: 4, to: &aad)
        return aad
    }

    /// `tenant ‖ dataset ‖ key id ‖ u32(KEK version)`.
    public static func dataKeyAAD(tenant: TenantID, dataset: String, keyID: [UInt8], kekVersion: Int) -> [UInt8] {
        var aad = Array(tenant.rawValue.utf8) + Array(dataset.utf8) + keyID
        SealHeader.append(UInt64(kekVersion), width: 4, to: &aad)
        return aad
    }

    /// Overwrites key bytes held in an array before it is released.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            memset_s(base, raw.count, 0, raw.count)
        }
    }
}

#if canImport(Glibc)
import Glibc

/// `memset` that the optimiser may not drop.
@inline(never)
func memset_s(_ pointer: UnsafeMutableRawPointer, _ size: Int, _ value: Int32, _ count: Int) {
    explicit_bzero(pointer, min(size, count))
}
#endif
