import CaduceusCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Verifies a log directory offline, trusting nothing but a verifier key (and optionally an earlier
/// checkpoint).
///
/// It checks the checkpoint's signature, recomputes every leaf from the entry bundles and every stored
/// hash of every tile, level by level, compares them with the files, and checks the root. Bundles are
/// hashed on all cores. The first discrepancy is reported with the entry index or file it concerns.
public struct LogVerifier: Sendable {
    /// What a successful verification established.
    public struct Report: Sendable, Equatable {
        /// The verified checkpoint.
        public var checkpoint: Checkpoint
        /// Entries recomputed from the bundles.
        public var entries: UInt64
        /// SHA-256 computations made (leaves and interior nodes).
        public var hashes: UInt64
    }

    /// The log directory.
    public let directory: String
    /// The key that must have signed the checkpoint.
    public let key: NoteVerifierKey
    /// Threads used to hash bundles.
    public var parallelism: Int

    /// Creates a verifier of the log in `directory` signed by `key`.
    public init(directory: String, key: NoteVerifierKey, parallelism: Int? = nil) {
        self.directory = directory
        self.key = key
        self.parallelism = parallelism ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    static func failure(_ message: String) -> CaduceusError {
        CaduceusError(code: "audit.verify.failed", message: message)
    }

    /// Verifies the log; with `trusted`, also that the log extends that earlier checkpoint.
    public func verify(trusted trustedNote: [UInt8]? = nil) async throws -> Report {
        guard FileSystem.isDirectory(directory) else {
            throw CaduceusError(code: "audit.notFound", message: "no audit log directory at \(directory)")
        }
        guard let note = try FileSystem.readIfPresent(directory + "/checkpoint") else {
            throw Self.failure("\(directory)/checkpoint is missing")
        }
        let checkpoint: Checkpoint
        do {
            checkpoint = try Checkpoint.open(note, key: key)
        } catch let error as CaduceusError {
            throw Self.failure("checkpoint: \(error.message)")
        }
        let trusted = try trustedNote.map { try Checkpoint.open($0, key: key) }
        if let trusted {
            guard trusted.origin == checkpoint.origin else {
                throw Self.failure("the trusted checkpoint is for log '\(trusted.origin)', not '\(checkpoint.origin)'")
            }
            guard trusted.size <= checkpoint.size else {
                throw Self.failure(
                    "checkpoint: size \(checkpoint.size) is older than the trusted checkpoint's \(trusted.size)")
            }
        }
        let size = checkpoint.size
        let bundles = (size + TileLayout.width - 1) / TileLayout.width
        let roots = try await bundleRoots(size: size, bundles: bundles)

        // Upper levels: fold the roots of full bundles, comparing every stored hash with its tile.
        var hashes = size + roots.reduce(0) { $0 + $1.hashes }
        let reader = TileReader(directory: directory, size: size, cacheLimit: 8)
        var frontier = MerkleFrontier()
        var pending: [[UInt8]] = []
        func record(_ height: Int, _ index: UInt64, _ hash: TreeHash) throws {
            guard height > 0, height % TileLayout.height == 0 else { return }
            let level = height / TileLayout.height
            while pending.count <= level { pending.append([]) }
            withUnsafeBytes(of: hash.value) { pending[level].append(contentsOf: $0) }
            if pending[level].count == Int(TileLayout.width) * 32 {
                try compare(pending[level], reader: reader, level: level, index: index / TileLayout.width)
                pending[level].removeAll(keepingCapacity: true)
            }
        }
        var failure: (any Error)?
        for root in roots {
            let before = frontier.size
            if let subtree = root.fullRoot {
                frontier.append(subtree, height: TileLayout.height) { height, index, hash in
                    if height > TileLayout.height { hashes += 1 }
                    if failure == nil { do { try record(height, index, hash) } catch { failure = error } }
                }
            } else {
                for leaf in root.leaves {
                    frontier.append(leaf) { height, index, hash in
                        if height > 0 { hashes += 1 }
                        if failure == nil { do { try record(height, index, hash) } catch { failure = error } }
                    }
                }
            }
            if let failure { throw failure }
            precondition(frontier.size > before)
        }
        for (level, hashesAtLevel) in pending.enumerated() where level > 0 && !hashesAtLevel.isEmpty {
            let count = TileLayout.hashCount(level: level, size: size)
            try compare(hashesAtLevel, reader: reader, level: level, index: count / TileLayout.width)
        }
        guard frontier.root == checkpoint.root else {
            throw Self.failure("checkpoint: the root recomputed from the entries does not match the signed root")
        }
        if let trusted {
            let root = trusted.size == 0 ? .emptyTree : try MerkleProof.subtreeRoot(0, trusted.size, reader)
            guard root == trusted.root else {
                throw Self.failure("the log is not consistent with the trusted checkpoint of size \(trusted.size)")
            }
        }
        return Report(checkpoint: checkpoint, entries: size, hashes: hashes)
    }

    private func compare(_ expected: [UInt8], reader: TileReader, level: Int, index: UInt64) throws {
        let width = UInt64(expected.count / 32)
        let name = TileLayout.tilePath(level: level, index: index, width: width)
        let stored: [UInt8]
        do {
            stored = try reader.tile(level: level, index: index)
        } catch let error as CaduceusError {
            throw Self.failure(error.message)
        }
        guard stored == expected else {
            let position = Self.firstDifference(stored, expected)
            let first = (index * TileLayout.width + UInt64(position)) << UInt64(level * TileLayout.height)
            throw Self.failure("\(name): hash \(position) (from entry \(first)) does not match the entries")
        }
    }

    /// The index of the first 32-byte hash that differs between two tiles.
    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
        var i = 0
        while i < min(a.count, b.count) && a[i] == b[i] { i += 1 }
        return i / 32
    }

    /// What hashing one bundle yields: the root of its 256 leaves, or the leaves of a partial bundle.
    struct BundleResult: Sendable {
        var fullRoot: TreeHash?
        var leaves: [TreeHash]
        var hashes: UInt64
    }

    private func bundleRoots(size: UInt64, bundles: UInt64) async throws -> [BundleResult] {
        let workers = UInt64(max(1, min(parallelism, Int(bundles))))
        let per = bundles == 0 ? 0 : (bundles + workers - 1) / workers
        return try await withThrowingTaskGroup(of: (UInt64, [BundleResult]).self) { group in
            for worker in 0..<workers {
                let start = worker * per
                let end = min(bundles, start + per)
                guard start < end else { continue }
                group.addTask { [directory] in
                    (start, try Self.hashBundles(directory: directory, size: size, range: start..<end))
                }
            }
            var parts: [(UInt64, [BundleResult])] = []
            for try await part in group { parts.append(part) }
            return parts.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
    }

    private static func hashBundles(directory: String, size: UInt64, range: Range<UInt64>) throws -> [BundleResult] {
        let reader = TileReader(directory: directory, size: size, cacheLimit: 2)
        var results: [BundleResult] = []
        results.reserveCapacity(range.count)
        for index in range {
            let width = TileLayout.width(index: index, count: size)
            let entries: [ArraySlice<UInt8>]
            do {
                entries = try reader.entries(bundle: index)
            } catch let error as CaduceusError {
                throw failure(error.message)
            }
            guard entries.count == Int(width) else {
                throw failure(
                    "\(TileLayout.bundlePath(index: index, width: width)) holds \(entries.count) entries, not \(width)")
            }
            var leaves: [UInt8] = []
            leaves.reserveCapacity(entries.count * 32)
            var leafHashes: [TreeHash] = []
            leafHashes.reserveCapacity(entries.count)
            for entry in entries {
                let leaf = TreeHash.leaf(entry)
                leafHashes.append(leaf)
                withUnsafeBytes(of: leaf.value) { leaves.append(contentsOf: $0) }
            }
            let stored: [UInt8]
            do {
                stored = try reader.tile(level: 0, index: index)
            } catch let error as CaduceusError {
                throw failure(error.message)
            }
            if stored != leaves {
                let position = firstDifference(stored, leaves)
                throw failure(
                    "entry \(index * TileLayout.width + UInt64(position)): its leaf hash in "
                        + "\(TileLayout.tilePath(level: 0, index: index, width: width)) does not match "
                        + TileLayout.bundlePath(index: index, width: width))
            }
            if width == TileLayout.width {
                var layer = leafHashes
                while layer.count > 1 {
                    layer = stride(from: 0, to: layer.count, by: 2).map { TreeHash.node(layer[$0], layer[$0 + 1]) }
                }
                results.append(BundleResult(fullRoot: layer[0], leaves: [], hashes: 255))
            } else {
                results.append(BundleResult(fullRoot: nil, leaves: leafHashes, hashes: 0))
            }
        }
        return results
    }
}
