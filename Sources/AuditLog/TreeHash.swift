import CSHA256
import CaduceusCore
import Crypto

/// A SHA-256 hash of a Merkle tree node or leaf, held inline without an allocation.
public struct TreeHash: Hashable, Sendable, CustomStringConvertible {
    /// The 32 bytes of the hash.
    public var value: SIMD32<UInt8>

    /// Creates a hash from its 32 bytes held in a vector.
    public init(value: SIMD32<UInt8>) {
        self.value = value
    }

    /// Creates a hash from exactly 32 bytes; returns nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        var value = SIMD32<UInt8>()
        for (i, byte) in bytes.enumerated() { value[i] = byte }
        self.value = value
    }

    /// Creates a hash from the first 32 bytes of a raw buffer that holds at least that many.
    init(loading buffer: UnsafeRawBufferPointer) {
        self.value = buffer.loadUnaligned(as: SIMD32<UInt8>.self)
    }

    init(digest: SHA256Digest) {
        self.value = digest.withUnsafeBytes { $0.loadUnaligned(as: SIMD32<UInt8>.self) }
    }

    /// The hash's 32 bytes.
    public var bytes: [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    /// The standard base64 form used by checkpoints and proofs.
    public var base64: String { Base64.encode(bytes) }

    /// Lower-case hexadecimal.
    public var hex: String { Hex.encode(bytes) }

    public var description: String { hex }

    /// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
    public static let emptyTree = TreeHash(digest: SHA256.hash(data: [UInt8]()))

    /// SHA-256 of `bytes` by the same code as tree hashing (for checks and benchmarks).
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> TreeHash {
        var context = caduceus_sha256_ctx()
        caduceus_sha256_init(&context)
        caduceus_sha256_update(&context, bytes.baseAddress, bytes.count)
        var hash = TreeHash(value: SIMD32())
        withUnsafeMutableBytes(of: &hash.value) {
            caduceus_sha256_final(&context, $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return hash
    }

    /// Hashes a leaf: `SHA-256(0x00 ‖ entry)`.
    public static func leaf(_ entry: some Collection<UInt8>) -> TreeHash {
        if let hash = entry.withContiguousStorageIfAvailable({ leaf(buffer: UnsafeRawBufferPointer($0)) }) {
            return hash
        }
        return Array(entry).withUnsafeBytes { leaf(buffer: $0) }
    }

    /// Hashes a leaf from raw bytes: `SHA-256(0x00 ‖ entry)`.
    public static func leaf(buffer entry: UnsafeRawBufferPointer) -> TreeHash {
        var hash = TreeHash(value: SIMD32())
        withUnsafeMutableBytes(of: &hash.value) { digest in
            caduceus_sha256_prefixed(
                0, entry.baseAddress, entry.count, nil, 0, digest.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return hash
    }

    /// Hashes an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
    public static func node(_ left: TreeHash, _ right: TreeHash) -> TreeHash {
        var hash = TreeHash(value: SIMD32())
        withUnsafeBytes(of: left.value) { l in
            withUnsafeBytes(of: right.value) { r in
                withUnsafeMutableBytes(of: &hash.value) { digest in
                    caduceus_sha256_prefixed(
                        1, l.baseAddress, 32, r.baseAddress, 32, digest.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    )
                }
            }
        }
        return hash
    }

    /// Whether tree hashing uses the processor's SHA extensions.
    public static var isAccelerated: Bool { caduceus_sha256_accelerated() != 0 }
}
