import CaduceusCore
import Crypto
import Foundation

/// Seals a stream of plaintext whose length is known up front, chunk by chunk: memory is one chunk, whatever
/// the object's size. Write `headerBytes`, then every byte `append` and `finish` return, in order.
public struct Sealer: Sendable {
    public let header: SealHeader
    /// The object's first 4096 bytes.
    public let headerBytes: [UInt8]
    let keys: SealKeys
    let cipher: ChunkCipher
    let headerDigest: [UInt8]
    let nonce: @Sendable (Int) -> [UInt8]
    private var index = 0
    private var consumed: UInt64 = 0
    private var pending: [UInt8] = []

    /// Prepares to seal `plaintextLength` bytes under `dataKey`. Object id, salt and nonces are random
    /// unless given (known-answer tests give them).
    public init(
        dataKey: SymmetricKey, keyID: [UInt8], keyVersion: UInt32, plaintextLength: UInt64,
        chunkSize: Int = SealHeader.defaultChunkSize, context: String, objectID: [UInt8]? = nil, salt: [UInt8]? = nil,
        nonce: (@Sendable (Int) -> [UInt8])? = nil
    ) throws(CaduceusError) {
        guard dataKey.bitCount == 256 else { throw SealError.invalid("the data key must be 256 bits") }
        let objectID = objectID ?? Self.random(16)
        let salt = salt ?? Self.random(32)
        header = try SealHeader(
            chunkSize: chunkSize, plaintextLength: plaintextLength, objectID: objectID, salt: salt, keyID: keyID,
            keyVersion: keyVersion, context: context)
        keys = SealKeys(dataKey: dataKey, salt: salt, objectID: objectID)
        cipher = try ChunkCipher(key: keys.encryption)
        headerBytes = header.encode(commitKey: keys.commitment)
        headerDigest = Array(SHA256.hash(data: headerBytes))
        self.nonce = nonce ?? { _ in Self.random(12) }
    }

    /// Seals `bytes`, the next part of the plaintext; returns the sealed chunks it completed, each whole
    /// (nonce, ciphertext, tag). A piece that holds whole chunks is sealed in place, without a copy.
    public mutating func append(
        _ bytes: some DataProtocol & RandomAccessCollection<UInt8>
    ) throws(CaduceusError)
        -> [Data]
    {
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(CaduceusError) in try append(UnsafeRawBufferPointer(buffer)) }
        }
        if let result { return try result.get() }
        return try Array(bytes).withUnsafeBytes { raw in
            Result { () throws(CaduceusError) in try append(raw) }
        }.get()
    }

    /// Seals the bytes at `raw` (see `append(_:)`).
    public mutating func append(_ raw: UnsafeRawBufferPointer) throws(CaduceusError) -> [Data] {
        guard consumed + UInt64(raw.count) <= header.plaintextLength else {
            throw SealError.invalid("more plaintext than the \(header.plaintextLength) bytes declared")
        }
        consumed += UInt64(raw.count)
        var output: [Data] = []
        var start = 0
        while start < raw.count {
            let want = header.plaintextCount(ofChunk: index) - pending.count
            let end = start + min(want, raw.count - start)
            let piece = UnsafeRawBufferPointer(rebasing: raw[start..<end])
            if pending.isEmpty && end - start == want {
                output.append(try sealChunk(piece))
            } else {
                pending.append(contentsOf: piece)
                if pending.count == header.plaintextCount(ofChunk: index) {
                    let whole = pending
                    let sealed = whole.withUnsafeBytes { buffer in
                        Result { () throws(CaduceusError) in try sealChunk(buffer) }
                    }
                    output.append(try sealed.get())
                    pending.removeAll(keepingCapacity: true)
                }
            }
            start = end
        }
        return output
    }

    /// Seals what is left (the last chunk, or the one empty chunk of an empty object); throws unless exactly
    /// the declared length was appended.
    public mutating func finish() throws(CaduceusError) -> [Data] {
        guard consumed == header.plaintextLength else {
            throw SealError.invalid("\(consumed) bytes of plaintext where \(header.plaintextLength) were declared")
        }
        guard index < header.chunkCount else { return [] }
        let rest = pending
        pending = []
        let sealed = rest.withUnsafeBytes { buffer in Result { () throws(CaduceusError) in try sealChunk(buffer) } }
        return [try sealed.get()]
    }

    private mutating func sealChunk(_ plaintext: UnsafeRawBufferPointer) throws(CaduceusError) -> Data {
        let aad = Self.aad(headerDigest, index: index, last: index == header.chunkCount - 1)
        let nonceBytes = nonce(index)
        // Every byte of the chunk is written by the seal: its memory needs no zeroing first.
        let size = plaintext.count + SealHeader.chunkOverhead
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        guard cipher.seal(plaintext, nonce: nonceBytes, aad: aad, into: memory) else {
            memory.deallocate()
            throw SealError.invalid("cannot seal chunk \(index)")
        }
        index += 1
        return Data(
            bytesNoCopy: memory.baseAddress!, count: size, deallocator: .custom { pointer, _ in pointer.deallocate() })
    }

    /// `SHA-256(header) ‖ u64(i) ‖ u8(last)`.
    static func aad(_ digest: [UInt8], index: Int, last: Bool) -> [UInt8] {
        var aad = digest
        SealHeader.append(UInt64(index), width: 8, to: &aad)
        aad.append(last ? 1 : 0)
        return aad
    }

    static func random(_ count: Int) -> [UInt8] {
        SymmetricKey(size: .init(bitCount: count * 8)).withUnsafeBytes { Array($0) }
    }
}

/// Opens a sealed object: checks its header first (in constant time), then any chunk alone.
public struct Opener: Sendable {
    public let header: SealHeader
    let keys: SealKeys
    let cipher: ChunkCipher
    let headerDigest: [UInt8]

    /// Checks the header's tag under `dataKey` before reading any field; throws `seal.integrity` for a wrong
    /// key or an altered header.
    public init(headerBytes: [UInt8], dataKey: SymmetricKey) throws(CaduceusError) {
        guard headerBytes.count >= SealHeader.size else {
            throw SealError.integrity("the object is shorter than its header")
        }
        let bytes = Array(headerBytes.prefix(SealHeader.size))
        let keys = SealKeys(dataKey: dataKey, salt: Array(bytes[40..<72]), objectID: Array(bytes[24..<40]))
        guard
            HMAC<SHA256>.isValidAuthenticationCode(
                bytes[SealHeader.tagOffset...], authenticating: bytes[..<SealHeader.tagOffset], using: keys.commitment)
        else { throw SealError.integrity("the header does not verify: wrong key, or the object was altered") }
        header = try SealHeader.parse(bytes)
        self.keys = keys
        cipher = try ChunkCipher(key: keys.encryption)
        headerDigest = Array(SHA256.hash(data: bytes))
    }

    /// Throws unless the object is exactly as long as its header implies.
    public func check(objectSize: Int) throws(CaduceusError) {
        guard objectSize == header.objectSize else {
            throw SealError.integrity(
                "the object is \(objectSize) bytes; its header implies \(header.objectSize): truncated or extended")
        }
    }

    /// Opens chunk `index` from its sealed bytes (nonce ‖ ciphertext ‖ tag).
    public func open(chunk index: Int, _ sealed: Data) throws(CaduceusError) -> Data {
        guard (0..<header.chunkCount).contains(index) else {
            throw SealError.invalid("chunk \(index) is past the object's \(header.chunkCount) chunks")
        }
        let expected = header.location(ofChunk: index).size
        guard sealed.count == expected else {
            throw SealError.integrity("chunk \(index) is \(sealed.count) bytes, not \(expected)")
        }
        let aad = Sealer.aad(headerDigest, index: index, last: index == header.chunkCount - 1)
        var plaintext = Data(count: expected - SealHeader.chunkOverhead)
        let opened = plaintext.withUnsafeMutableBytes { out in
            sealed.withUnsafeBytes { cipher.open($0, aad: aad, into: out) }
        }
        guard opened else {
            throw SealError.integrity("chunk \(index) does not verify: the object was altered or reordered")
        }
        return plaintext
    }

    /// Opens chunk `index` from its sealed bytes into `plaintext`, which must be exactly the chunk's plaintext
    /// size (a caller streaming many chunks reuses one buffer).
    public func open(
        chunk index: Int, _ sealed: UnsafeRawBufferPointer, into plaintext: UnsafeMutableRawBufferPointer
    ) throws(CaduceusError) {
        guard (0..<header.chunkCount).contains(index) else {
            throw SealError.invalid("chunk \(index) is past the object's \(header.chunkCount) chunks")
        }
        let expected = header.location(ofChunk: index).size
        guard sealed.count == expected, plaintext.count == expected - SealHeader.chunkOverhead else {
            throw SealError.integrity("chunk \(index) is \(sealed.count) bytes, not \(expected)")
        }
        let aad = Sealer.aad(headerDigest, index: index, last: index == header.chunkCount - 1)
        guard cipher.open(sealed, aad: aad, into: plaintext) else {
            throw SealError.integrity("chunk \(index) does not verify: the object was altered or reordered")
        }
    }

    /// Opens chunk `index` from its sealed bytes.
    public func open(chunk index: Int, _ sealed: some Collection<UInt8>) throws(CaduceusError) -> [UInt8] {
        Array(try open(chunk: index, Data(sealed)))
    }

    /// The chunks holding plaintext bytes `range` (an empty range still names the chunk it falls in).
    public func chunks(covering range: Range<UInt64>) -> ClosedRange<Int> {
        let per = UInt64(header.plaintextPerChunk)
        let first = Int(range.lowerBound / per)
        let last = range.isEmpty ? first : Int((range.upperBound - 1) / per)
        return min(first, header.chunkCount - 1)...min(last, header.chunkCount - 1)
    }
}
