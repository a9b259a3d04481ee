import Crypto
import Testing

@testable import AuditLog

struct MerkleTreeTests {
    @Test("leaf and node hashes follow RFC 9162 §2.1.1")
    func hashing() {
        let entry: [UInt8] = Array("hello".utf8)
        #expect(TreeHash.leaf(entry).bytes == Array(SHA256.hash(data: [0x00] + entry)))
        let a = TreeHash.leaf([1])
        let b = TreeHash.leaf([2])
        #expect(TreeHash.node(a, b).bytes == Array(SHA256.hash(data: [0x01] + a.bytes + b.bytes)))
        #expect(TreeHash.emptyTree.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("the incremental frontier gives the recursive definition's root at every size")
    func frontierMatchesDefinition() {
        let tree = MemoryTree(size: 600)
        var frontier = MerkleFrontier()
        #expect(frontier.root == .emptyTree)
        for size in 1...600 {
            frontier.append(tree.leaves[size - 1])
            #expect(frontier.root == tree.root(size: size), "size \(size)")
        }
    }

    @Test("completed subtrees are reported once each, with their coordinates")
    func completedSubtrees() throws {
        let tree = MemoryTree(size: 300)
        var frontier = MerkleFrontier()
        var seen = Set<String>()
        for leaf in tree.leaves {
            frontier.append(leaf) { height, index, hash in
                #expect(seen.insert("\(height)/\(index)").inserted)
                #expect(hash == (try? tree.hash(height: height, index: index)))
            }
        }
        // A tree of n leaves has n − popcount(n) + n perfect subtrees of height ≥ 0 … counted directly:
        var expected = 0
        for height in 0..<10 { expected += 300 >> height }
        #expect(seen.count == expected)
    }

    @Test("appending whole subtrees gives the same tree as appending their leaves")
    func subtreeAppend() {
        let tree = MemoryTree(size: 1024 + 300)
        var frontier = MerkleFrontier()
        for i in 0..<4 { frontier.append(MemoryTree.root(tree.leaves[(i * 256)..<((i + 1) * 256)]), height: 8) }
        for leaf in tree.leaves[1024...] { frontier.append(leaf) }
        #expect(frontier.root == tree.root(size: 1324))
    }

    @Test("a frontier rebuilt from stored subtrees continues like the original")
    func frontierRestore() throws {
        let tree = MemoryTree(size: 200)
        let coordinates = MerkleFrontier.subtreeCoordinates(size: 137)
        let hashes = try coordinates.map { try tree.hash(height: $0.height, index: $0.index) }
        var frontier = try #require(MerkleFrontier(size: 137, subtrees: hashes))
        #expect(frontier.root == tree.root(size: 137))
        for leaf in tree.leaves[137...] { frontier.append(leaf) }
        #expect(frontier.root == tree.root(size: 200))
        #expect(MerkleFrontier(size: 137, subtrees: Array(hashes.dropLast())) == nil)
    }

    @Test("generated inclusion proofs verify, and any change to them fails")
    func inclusionProofs() throws {
        let tree = MemoryTree(size: 70)
        for size in 1...70 {
            let root = tree.root(size: size).bytes
            for index in 0..<size {
                let path = try MerkleProof.inclusionPath(index: UInt64(index), size: UInt64(size), reader: tree)
                let proof = path.map(\.bytes)
                let leaf = tree.leaves[index].bytes
                try MerkleProof.verifyInclusion(
                    leafHash: leaf, index: UInt64(index), size: UInt64(size), proof: proof, root: root)
                #expect(throws: (any Error).self) {
                    try MerkleProof.verifyInclusion(
                        leafHash: leaf, index: UInt64(index), size: UInt64(size), proof: proof + [leaf], root: root)
                }
                if !proof.isEmpty {
                    var flipped = proof
                    flipped[index % proof.count][index % 32] ^= 0x01
                    #expect(throws: (any Error).self) {
                        try MerkleProof.verifyInclusion(
                            leafHash: leaf, index: UInt64(index), size: UInt64(size), proof: flipped, root: root)
                    }
                    #expect(throws: (any Error).self) {
                        try MerkleProof.verifyInclusion(
                            leafHash: leaf, index: UInt64(index), size: UInt64(size), proof: Array(proof.dropLast()),
                            root: root)
                    }
                }
            }
        }
    }

    @Test("generated consistency proofs verify, and any change to them fails")
    func consistencyProofs() throws {
        let tree = MemoryTree(size: 50)
        for newSize in 1...50 {
            for oldSize in 1...newSize {
                let path = try MerkleProof.consistencyPath(
                    oldSize: UInt64(oldSize), newSize: UInt64(newSize), reader: tree)
                let proof = path.map(\.bytes)
                let old = tree.root(size: oldSize).bytes
                let new = tree.root(size: newSize).bytes
                try MerkleProof.verifyConsistency(
                    size1: UInt64(oldSize), size2: UInt64(newSize), proof: proof, root1: old, root2: new)
                if oldSize < newSize {
                    var flipped = proof
                    flipped[0][0] ^= 0x80
                    #expect(throws: (any Error).self) {
                        try MerkleProof.verifyConsistency(
                            size1: UInt64(oldSize), size2: UInt64(newSize), proof: flipped, root1: old, root2: new)
                    }
                    #expect(throws: (any Error).self) {
                        try MerkleProof.verifyConsistency(
                            size1: UInt64(oldSize), size2: UInt64(newSize), proof: proof, root1: new, root2: new)
                    }
                }
            }
        }
        #expect(throws: (any Error).self) { try MerkleProof.consistencyPath(oldSize: 0, newSize: 5, reader: tree) }
    }

    @Test("strict rules: index beyond size, short hashes, empty proofs")
    func strictRules() throws {
        let tree = MemoryTree(size: 8)
        let leaf = tree.leaves[3].bytes
        let root = tree.root(size: 8).bytes
        let proof = try MerkleProof.inclusionPath(index: 3, size: 8, reader: tree).map(\.bytes)
        #expect(throws: (any Error).self) {
            try MerkleProof.verifyInclusion(leafHash: leaf, index: 8, size: 8, proof: proof, root: root)
        }
        #expect(throws: (any Error).self) {
            try MerkleProof.verifyInclusion(
                leafHash: Array(leaf.dropLast()), index: 3, size: 8, proof: proof, root: root)
        }
        #expect(throws: (any Error).self) {
            try MerkleProof.verifyInclusion(
                leafHash: leaf, index: 3, size: 8, proof: [Array(proof[0].dropLast())] + proof.dropFirst(), root: root)
        }
        #expect(throws: (any Error).self) {
            try MerkleProof.verifyConsistency(
                size1: 3, size2: 8, proof: [], root1: tree.root(size: 3).bytes, root2: root)
        }
        #expect(throws: (any Error).self) {
            try MerkleProof.verifyConsistency(
                size1: 0, size2: 8, proof: [], root1: TreeHash.emptyTree.bytes, root2: root)
        }
    }
}
