import CaduceusCore
import Crypto

/// The 4096-byte header of a sealed object (format version 1, suite 1: AES-256-GCM, HKDF-SHA256,
/// HMAC-SHA256 commitment). All integers big-endian:
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 8 | magic `CADSEAL1` |
/// | 8 | 2 | version = 1 |
/// | 10 | 2 | suite = 1 |
/// | 12 | 4 | chunk size C (ciphertext per full chunk; a multiple of 4096, ≥ 4096) |
/// | 16 | 8 | plaintext length L |
/// | 24 | 16 | object id |
/// | 40 | 32 | salt |
/// | 72 | 16 | key id (the data key's) |
/// | 88 | 4 | key version |
/// | 92 | 2 | context length N (≤ 3900) |
/// | 94 | N | context (UTF-8, IDs only) |
/// | 94+N | … | zero bytes up to 4064 |
/// | 4064 | 32 | HMAC-SHA256(K_com, bytes 0..<4064) |
public struct SealHeader: Sendable, Equatable {
    public static let size = 4096
    public static let tagOffset = 4064
    public static let magic: [UInt8] = Array("CADSEAL1".utf8)
    public static let version: UInt16 = 1
    public static let suite: UInt16 = 1
    /// Nonce and tag of every chunk.
    public static let chunkOverhead = 28
    public static let defaultChunkSize = 1 << 20
    public static let maxContextBytes = 3900

    public var chunkSize: Int
    public var plaintextLength: UInt64
    public var objectID: [UInt8]
    public var salt: [UInt8]
    public var keyID: [UInt8]
    public var keyVersion: UInt32
    public var context: String

    /// Creates a header; throws `seal.invalid` for a chunk size or context the format does not allow.
    public init(
        chunkSize: Int = defaultChunkSize, plaintextLength: UInt64, objectID: [UInt8], salt: [UInt8], keyID: [UInt8],
        keyVersion: UInt32, context: String
    ) throws(CaduceusError) {
        guard chunkSize >= 4096, chunkSize % 4096 == 0, chunkSize <= 1 << 30 else {
            throw SealError.invalid("the chunk size must be a multiple of 4096 from 4096 to 1 GiB")
        }
        guard objectID.count == 16, salt.count == 32, keyID.count == 16 else {
            throw SealError.invalid("object id and key id take 16 bytes, the salt 32")
        }
        guard context.utf8.count <= Self.maxContextBytes else {
            throw SealError.invalid("the context is over \(Self.maxContextBytes) bytes")
        }
        self.chunkSize = chunkSize
        self.plaintextLength = plaintextLength
        self.objectID = objectID
        self.salt = salt
        self.keyID = keyID
        self.keyVersion = keyVersion
        self.context = context
    }

    /// Plaintext bytes a full chunk carries.
    public var plaintextPerChunk: Int { chunkSize - Self.chunkOverhead }

    /// How many chunks the object has (an empty object has one).
    public var chunkCount: Int {
        max(1, Int((plaintextLength + UInt64(plaintextPerChunk) - 1) / UInt64(plaintextPerChunk)))
    }

    /// Plaintext bytes in chunk `index`.
    public func plaintextCount(ofChunk index: Int) -> Int {
        index < chunkCount - 1 ? plaintextPerChunk : Int(plaintextLength - UInt64(index * plaintextPerChunk))
    }

    /// Where chunk `index` starts in the object, and its size.
    public func location(ofChunk index: Int) -> (offset: Int, size: Int) {
        (Self.size + index * chunkSize, plaintextCount(ofChunk: index) + Self.chunkOverhead)
    }

    /// The exact size of the sealed object.
    public var objectSize: Int {
        let last = location(ofChunk: chunkCount - 1)
        return last.offset + last.size
    }

    /// The header's bytes, tagged with the object's commitment key.
    func encode(commitKey: SymmetricKey) -> [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(Self.size)
        Self.append(UInt64(Self.version), width: 2, to: &bytes)
        Self.append(UInt64(Self.suite), width: 2, to: &bytes)
        Self.append(UInt64(chunkSize), width: 4, to: &bytes)
        Self.append(plaintextLength, width: 8, to: &bytes)
        bytes += objectID + salt + keyID
        Self.append(UInt64(keyVersion), width: 4, to: &bytes)
        let context = Array(self.context.utf8)
        Self.append(UInt64(context.count), width: 2, to: &bytes)
        bytes += context
        bytes += [UInt8](repeating: 0, count: Self.tagOffset - bytes.count)
        bytes += HMAC<SHA256>.authenticationCode(for: bytes, using: commitKey)
        return bytes
    }

    /// Reads the fields of a header, without checking its tag (that needs the data key: see `SealKeys`).
    public static func parse(_ bytes: [UInt8]) throws(CaduceusError) -> SealHeader {
        guard bytes.count >= size else { throw SealError.integrity("the object is shorter than its header") }
        guard Array(bytes[0..<8]) == magic else { throw SealError.integrity("not a sealed object (no CADSEAL1 magic)") }
        guard read(bytes, 8, 2) == UInt64(version), read(bytes, 10, 2) == UInt64(suite) else {
            throw SealError.integrity("a sealed object of an unknown version or suite")
        }
        let contextLength = Int(read(bytes, 92, 2))
        guard contextLength <= maxContextBytes,
            bytes[(94 + contextLength)..<tagOffset].allSatisfy({ $0 == 0 }),
            let context = String(validating: bytes[94..<(94 + contextLength)], as: UTF8.self)
        else { throw SealError.integrity("the header is malformed") }
        do {
            return try SealHeader(
                chunkSize: Int(read(bytes, 12, 4)), plaintextLength: read(bytes, 16, 8),
                objectID: Array(bytes[24..<40]), salt: Array(bytes[40..<72]), keyID: Array(bytes[72..<88]),
                keyVersion: UInt32(read(bytes, 88, 4)), context: context)
        } catch {
            throw SealError.integrity("the header is malformed: \(error.message)")
        }
    }

    static func append(_ value: UInt64, width: Int, to bytes: inout [UInt8]) {
        for shift in stride(from: (width - 1) * 8, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }

    static func read(_ bytes: [UInt8], _ offset: Int, _ width: Int) -> UInt64 {
        bytes[offset..<(offset + width)].reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// The keys of one object, derived from the data key with HKDF-SHA256 over the object's salt and id.
public struct SealKeys: Sendable {
    let encryption: SymmetricKey
    let commitment: SymmetricKey

    /// `PRK = HKDF-Extract(salt, DK)`; `K_enc`, `K_com` = HKDF-Expand(PRK, label ‖ object id, 32).
    public init(dataKey: SymmetricKey, salt: [UInt8], objectID: [UInt8]) {
        let prk = HKDF<SHA256>.extract(inputKeyMaterial: dataKey, salt: salt)
        encryption = HKDF<SHA256>.expand(
            pseudoRandomKey: prk, info: Array("caduceus/seal/v1/enc".utf8) + objectID, outputByteCount: 32)
        commitment = HKDF<SHA256>.expand(
            pseudoRandomKey: prk, info: Array("caduceus/seal/v1/commit".utf8) + objectID, outputByteCount: 32)
    }
}

/// Errors of sealing and opening: `seal.integrity` (the object was altered, or the key is wrong) and
/// `seal.invalid` (a request the format cannot take).
public enum SealError {
    public static func integrity(_ message: String) -> CaduceusError {
        CaduceusError(code: "seal.integrity", message: message)
    }

    public static func invalid(_ message: String) -> CaduceusError {
        CaduceusError(code: "seal.invalid", message: message)
    }
}
