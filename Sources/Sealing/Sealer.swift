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
        headerBytes = header.encode(commitKey: keys.commitment)
        headerDigest = Array(SHA256.hash(data: headerBytes))
        self.nonce = nonce ?? { _ in Self.random(12) }
    }

    /// Seals `bytes`, the next part of the plaintext; returns the sealed chunks it completed.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(CaduceusError) -> [UInt8] {
        guard consumed + UInt64(bytes.count) <= header.plaintextLength else {
            throw SealError.invalid("more plaintext than the \(header.plaintextLength) bytes declared")
        }
        consumed += UInt64(bytes.count)
        var output: [UInt8] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            let want = header.plaintextCount(ofChunk: index) - pending.count
            let take = min(want, rest.count)
            if pending.isEmpty && take == want {
                // A whole chunk in the input: sealed straight from it.
                try sealChunk(Array(rest.prefix(take)), into: &output)
            } else {
                pending.append(contentsOf: rest.prefix(take))
                if pending.count == header.plaintextCount(ofChunk: index) {
                    try sealChunk(pending, into: &output)
                    pending.removeAll(keepingCapacity: true)
                }
            }
            rest = rest.dropFirst(take)
        }
        return output
    }

    /// Seals what is left (the last chunk, or the one empty chunk of an empty object); throws unless exactly
    /// the declared length was appended.
    public mutating func finish() throws(CaduceusError) -> [UInt8] {
        guard consumed == header.plaintextLength else {
            throw SealError.invalid("\(consumed) bytes of plaintext where \(header.plaintextLength) were declared")
        }
        var output: [UInt8] = []
        if index < header.chunkCount {
            try sealChunk(pending, into: &output)
            pending = []
        }
        return output
    }

    private mutating func sealChunk(_ plaintext: [UInt8], into output: inout [UInt8]) throws(CaduceusError) {
        let nonceBytes = nonce(index)
        do {
            let box = try AES.GCM.seal(
                plaintext, using: keys.encryption, nonce: try AES.GCM.Nonce(data: nonceBytes),
                authenticating: Self.aad(headerDigest, index: index, last: index == header.chunkCount - 1))
            output.reserveCapacity(output.count + plaintext.count + SealHeader.chunkOverhead)
            output.append(contentsOf: nonceBytes)
            output.append(contentsOf: box.ciphertext)
            output.append(contentsOf: box.tag)
        } catch {
            throw SealError.invalid("cannot seal chunk \(index): \(error)")
        }
        index += 1
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
        headerDigest = Array(SHA256.hash(data: bytes))
    }

    /// Throws unless the object is exactly as long as its header implies.
    public func check(objectSize: Int) throws(CaduceusError) {
        guard objectSize == header.objectSize else {
            throw SealError.integrity(
                "the object is \(objectSize) bytes; its header implies \(header.objectSize): truncated or extended")
        }
    }

    /// Opens chunk `index` from its sealed bytes.
    public func open(chunk index: Int, _ sealed: some Collection<UInt8>) throws(CaduceusError) -> [UInt8] {
        guard (0..<header.chunkCount).contains(index) else {
            throw SealError.invalid("chunk \(index) is past the object's \(header.chunkCount) chunks")
        }
        let expected = header.location(ofChunk: index).size
        guard sealed.count == expected else {
            throw SealError.integrity("chunk \(index) is \(sealed.count) bytes, not \(expected)")
        }
        let bytes = Array(sealed)
        do {
            let box = try AES.GCM.SealedBox(
                nonce: try AES.GCM.Nonce(data: bytes[0..<12]), ciphertext: bytes[12..<(bytes.count - 16)],
                tag: bytes[(bytes.count - 16)...])
            return Array(
                try AES.GCM.open(
                    box, using: keys.encryption,
                    authenticating: Sealer.aad(headerDigest, index: index, last: index == header.chunkCount - 1)))
        } catch {
            throw SealError.integrity("chunk \(index) does not verify: the object was altered or reordered")
        }
    }

    /// The chunks holding plaintext bytes `range` (an empty range still names the chunk it falls in).
    public func chunks(covering range: Range<UInt64>) -> ClosedRange<Int> {
        let per = UInt64(header.plaintextPerChunk)
        let first = Int(range.lowerBound / per)
        let last = range.isEmpty ? first : Int((range.upperBound - 1) / per)
        return min(first, header.chunkCount - 1)...min(last, header.chunkCount - 1)
    }
}
