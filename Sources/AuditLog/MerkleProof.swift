import CaduceusCore

/// Reads the hash of a perfect subtree: `height` levels above the leaves, `index`-th from the left.
public protocol SubtreeHashReader {
    /// The root hash of the perfect subtree covering leaves `index·2^height ..< (index+1)·2^height`.
    func hash(height: Int, index: UInt64) throws -> TreeHash
}

/// Builds and checks RFC 9162 inclusion and consistency proofs.
public enum MerkleProof {
    static func error(_ message: String) -> CaduceusError {
        CaduceusError(code: "audit.proof.invalid", message: message)
    }

    // MARK: Generation (RFC 9162 §2.1.3.1, §2.1.4.1)

    /// The inclusion path of leaf `index` in the tree of `size` leaves.
    public static func inclusionPath(
        index: UInt64, size: UInt64, reader: some SubtreeHashReader
    ) throws -> [TreeHash] {
        guard index < size else { throw error("index \(index) is not below tree size \(size)") }
        var path: [TreeHash] = []
        try inclusionPath(index, 0, size, reader, &path)
        return path.reversed()
    }

    private static func inclusionPath(
        _ m: UInt64, _ start: UInt64, _ end: UInt64, _ reader: some SubtreeHashReader, _ path: inout [TreeHash]
    ) throws {
        let n = end - start
        if n == 1 { return }
        let k = largestPowerOfTwo(below: n)
        // The path is built root-first here and reversed by the caller, so recursion stays a tail call.
        if m < start + k {
            path.append(try subtreeRoot(start + k, end, reader))
            try inclusionPath(m, start, start + k, reader, &path)
        } else {
            path.append(try subtreeRoot(start, start + k, reader))
            try inclusionPath(m, start + k, end, reader, &path)
        }
    }

    /// The consistency proof between the trees of `oldSize` and `newSize` leaves (0 < oldSize ≤ newSize).
    public static func consistencyPath(
        oldSize: UInt64, newSize: UInt64, reader: some SubtreeHashReader
    ) throws -> [TreeHash] {
        guard oldSize > 0 else { throw error("a consistency proof from an empty tree is meaningless") }
        guard oldSize <= newSize else { throw error("old size \(oldSize) exceeds new size \(newSize)") }
        if oldSize == newSize { return [] }
        var path: [TreeHash] = []
        try subproof(oldSize, 0, newSize, true, reader, &path)
        return path.reversed()
    }

    private static func subproof(
        _ m: UInt64, _ start: UInt64, _ end: UInt64, _ whole: Bool, _ reader: some SubtreeHashReader,
        _ path: inout [TreeHash]
    ) throws {
        let n = end - start
        if m == n {
            if !whole { path.append(try subtreeRoot(start, end, reader)) }
            return
        }
        let k = largestPowerOfTwo(below: n)
        if m <= k {
            path.append(try subtreeRoot(start + k, end, reader))
            try subproof(m, start, start + k, whole, reader, &path)
        } else {
            path.append(try subtreeRoot(start, start + k, reader))
            try subproof(m - k, start + k, end, false, reader, &path)
        }
    }

    /// The root of leaves `start ..< end`, where `start` is aligned as in RFC 9162's decomposition.
    public static func subtreeRoot(_ start: UInt64, _ end: UInt64, _ reader: some SubtreeHashReader) throws -> TreeHash
    {
        let n = end - start
        if n & (n - 1) == 0 {
            let height = n.trailingZeroBitCount
            return try reader.hash(height: height, index: start >> UInt64(height))
        }
        let k = largestPowerOfTwo(below: n)
        return TreeHash.node(try subtreeRoot(start, start + k, reader), try subtreeRoot(start + k, end, reader))
    }

    /// The largest power of two strictly below `n` (n > 1).
    static func largestPowerOfTwo(below n: UInt64) -> UInt64 {
        UInt64(1) << UInt64(63 - (n - 1).leadingZeroBitCount)
    }

    // MARK: Verification (RFC 9162 §2.1.3.2, §2.1.4.2)

    /// Computes the root implied by an inclusion proof; throws if the proof's shape is wrong.
    public static func rootFromInclusion(
        leafHash: [UInt8], index: UInt64, size: UInt64, proof: [[UInt8]]
    ) throws -> TreeHash {
        guard index < size else { throw error("index \(index) is not below tree size \(size)") }
        guard let leaf = TreeHash(bytes: leafHash) else { throw error("leaf hash is not 32 bytes") }
        let path = try hashes(proof)
        var fn = index
        var sn = size - 1
        var r = leaf
        for p in path {
            guard sn != 0 else { throw error("inclusion proof is too long") }
            if fn & 1 == 1 || fn == sn {
                r = TreeHash.node(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = TreeHash.node(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw error("inclusion proof is too short") }
        return r
    }

    /// Checks that `leafHash` is leaf `index` of the tree of `size` leaves whose root is `root`.
    public static func verifyInclusion(
        leafHash: [UInt8], index: UInt64, size: UInt64, proof: [[UInt8]], root: [UInt8]
    ) throws {
        let computed = try rootFromInclusion(leafHash: leafHash, index: index, size: size, proof: proof)
        guard computed.bytes == root else { throw error("inclusion proof does not lead to the root") }
    }

    /// Checks that the tree of `size2` leaves with `root2` extends the tree of `size1` leaves with `root1`.
    public static func verifyConsistency(
        size1: UInt64, size2: UInt64, proof: [[UInt8]], root1: [UInt8], root2: [UInt8]
    ) throws {
        guard size1 <= size2 else { throw error("size1 \(size1) exceeds size2 \(size2)") }
        guard size1 > 0 else { throw error("a consistency proof from an empty tree is meaningless") }
        if size1 == size2 {
            guard proof.isEmpty else { throw error("sizes are equal but the proof is not empty") }
            guard root1 == root2 else { throw error("sizes are equal but the roots differ") }
            return
        }
        guard !proof.isEmpty else { throw error("consistency proof is empty") }
        guard let first = TreeHash(bytes: root1), let second = TreeHash(bytes: root2) else {
            throw error("root is not 32 bytes")
        }
        var path = try hashes(proof)
        if size1 & (size1 - 1) == 0 { path.insert(first, at: 0) }
        var fn = size1 - 1
        var sn = size2 - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            guard sn != 0 else { throw error("consistency proof is too long") }
            if fn & 1 == 1 || fn == sn {
                fr = TreeHash.node(c, fr)
                sr = TreeHash.node(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = TreeHash.node(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw error("consistency proof is too short") }
        guard fr == first, sr == second else { throw error("consistency proof does not match the roots") }
    }

    private static func hashes(_ proof: [[UInt8]]) throws -> [TreeHash] {
        try proof.map { bytes in
            guard let hash = TreeHash(bytes: bytes) else { throw error("proof hash is not 32 bytes") }
            return hash
        }
    }
}
