import CCryptoBoringSSL
import CaduceusCore
import Crypto

/// AES-256-GCM over one object's chunks, on one key schedule: seals into and opens from caller buffers,
/// so a chunk costs one pass over its bytes and no copy. It is swift-crypto's own BoringSSL, used through
/// its AEAD interface (which `AES.GCM` wraps, allocating and copying per call).
final class ChunkCipher: @unchecked Sendable {
    // BoringSSL allows concurrent seal and open calls on one context; it is never changed after creation.
    private let context: UnsafeMutablePointer<EVP_AEAD_CTX>

    init(key: SymmetricKey) throws(CaduceusError) {
        let created = key.withUnsafeBytes { raw in
            CCryptoBoringSSL_EVP_AEAD_CTX_new(
                CCryptoBoringSSL_EVP_aead_aes_256_gcm(), raw.bindMemory(to: UInt8.self).baseAddress, raw.count, 16)
        }
        guard let created else { throw SealError.invalid("cannot set up AES-256-GCM") }
        context = created
    }

    deinit { CCryptoBoringSSL_EVP_AEAD_CTX_free(context) }

    /// Seals `plaintext` into `chunk`, which must hold 28 bytes more: nonce, ciphertext, tag.
    func seal(
        _ plaintext: UnsafeRawBufferPointer, nonce: [UInt8], aad: [UInt8], into chunk: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard nonce.count == 12, chunk.count == plaintext.count + SealHeader.chunkOverhead else { return false }
        chunk.copyBytes(from: nonce)
        var written = 0
        let sealed = CCryptoBoringSSL_EVP_AEAD_CTX_seal(
            context, chunk.baseAddress!.assumingMemoryBound(to: UInt8.self) + 12, &written, chunk.count - 12, nonce,
            12, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), plaintext.count, aad, aad.count)
        return sealed == 1 && written == chunk.count - 12
    }

    /// Opens `chunk` (nonce, ciphertext, tag) into `plaintext`, which must hold 28 bytes less.
    func open(
        _ chunk: UnsafeRawBufferPointer, aad: [UInt8], into plaintext: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard chunk.count >= SealHeader.chunkOverhead, plaintext.count == chunk.count - SealHeader.chunkOverhead,
            let base = chunk.baseAddress?.assumingMemoryBound(to: UInt8.self)
        else { return false }
        var written = 0
        let opened = CCryptoBoringSSL_EVP_AEAD_CTX_open(
            context, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), &written, plaintext.count, base, 12,
            base + 12, chunk.count - 12, aad, aad.count)
        return opened == 1 && written == plaintext.count
    }
}
