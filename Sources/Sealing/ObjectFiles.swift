import CaduceusCore
import Crypto
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where sealed objects are kept: `<root>/<tier>/<dataset>/<object>` (each tier may be its own directory,
/// e.g. a fast NVMe path and a capacity path). A file appears under its name only once whole and synced;
/// until then it is `<name>.partial`, which a start-up sweep removes.
public struct ObjectFiles: Sendable {
    /// The directory of each tier.
    public var tiers: [StorageTier: String]

    /// Tiers under one root: `<root>/hot`, `<root>/warm`, …
    public init(root: String) {
        tiers = Dictionary(uniqueKeysWithValues: StorageTier.allCases.map { ($0, root + "/" + $0.rawValue) })
    }

    public init(tiers: [StorageTier: String]) { self.tiers = tiers }

    /// The path of an object in a tier.
    public func path(_ object: ObjectID, of dataset: DatasetID, in tier: StorageTier) -> String {
        (tiers[tier] ?? tiers[.hot] ?? ".") + "/" + dataset.rawValue + "/" + object.rawValue
    }

    /// Starts writing a sealed object into `tier`.
    public func writer(
        _ object: ObjectID, of dataset: DatasetID, in tier: StorageTier, sealer: Sealer
    ) throws(CaduceusError) -> ObjectWriter {
        let path = path(object, of: dataset, in: tier)
        let folder = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CaduceusError(code: "seal.io", message: "cannot create \(folder)")
        }
        return try ObjectWriter(path: path, sealer: sealer)
    }

    /// Moves an object's sealed file to another tier: copies it to `<target>.partial`, syncs it, checks that
    /// the copy's SHA-256 is the source's, renames it into place, and only then removes the source. A crash at
    /// any point leaves a whole object where the metadata says it is (see `sweepMisplaced`).
    public func move(
        _ object: ObjectID, of dataset: DatasetID, from source: StorageTier, to target: StorageTier
    ) throws(CaduceusError) {
        let from = path(object, of: dataset, in: source)
        let to = path(object, of: dataset, in: target)
        let folder = String(to[..<(to.lastIndex(of: "/") ?? to.endIndex)])
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CaduceusError(code: "seal.io", message: "cannot create \(folder)")
        }
        let input = try File(path: from, write: false)
        defer { input.close() }
        let output = try File(path: to + ".partial", write: true)
        var copied = SHA256()
        do throws(CaduceusError) {
            var offset = 0
            while true {
                let piece = try input.readData(at: offset, count: 8 << 20)
                if piece.isEmpty { break }
                copied.update(data: piece)
                try output.write(piece)
                offset += piece.count
            }
            try output.sync()
            output.close()
            guard try Self.sha256(of: to + ".partial") == Array(copied.finalize()) else {
                throw CaduceusError(code: "seal.io", message: "the copy of \(object) does not match its source")
            }
            guard rename(to + ".partial", to) == 0 else {
                throw CaduceusError(code: "seal.io", message: "cannot move \(object) into \(target.rawValue)")
            }
        } catch {
            output.close()
            unlink(to + ".partial")
            throw error
        }
    }

    /// Removes the copy an object left in a tier it no longer lives in.
    public func removeCopy(_ object: ObjectID, of dataset: DatasetID, in tier: StorageTier) {
        unlink(path(object, of: dataset, in: tier))
    }

    static func sha256(of path: String) throws(CaduceusError) -> [UInt8] {
        let file = try File(path: path, write: false)
        defer { file.close() }
        var digest = SHA256()
        var offset = 0
        while true {
            let piece = try file.readData(at: offset, count: 8 << 20)
            if piece.isEmpty { break }
            digest.update(data: piece)
            offset += piece.count
        }
        return Array(digest.finalize())
    }

    /// Removes every file of a dataset, in every tier.
    public func removeAll(of dataset: DatasetID) {
        for directory in Set(tiers.values) {
            try? FileManager.default.removeItem(atPath: directory + "/" + dataset.rawValue)
        }
    }

    /// Removes the `.partial` files an interrupted upload or move left; returns how many.
    public func sweepPartials() -> Int {
        var removed = 0
        for directory in Set(tiers.values) {
            guard let enumerator = FileManager.default.enumerator(atPath: directory) else { continue }
            for case let name as String in enumerator where name.hasSuffix(".partial") {
                if unlink(directory + "/" + name) == 0 { removed += 1 }
            }
        }
        return removed
    }
}

/// Seals an object's plaintext as it arrives into `<path>.partial`, hashing it, and renames it into place only
/// when the whole declared length arrived and the digest matches.
public final class ObjectWriter: @unchecked Sendable {
    // One upload task owns a writer; it is never shared. Sealed chunks are written on a queue of their own, at
    // most four ahead, so that the disk write of one chunk overlaps the receiving and sealing of the next; a
    // write error is reported at the next call.
    private var sealer: Sealer
    private var digest = SHA256()
    private let file: File
    private let path: String
    private var done = false
    private let queue = DispatchQueue(label: "caduceus.object-writer")
    private let slots = DispatchSemaphore(value: 4)
    private let failure = WriteFailure()

    private final class WriteFailure: Sendable {
        let first = Mutex<CaduceusError?>(nil)
    }

    init(path: String, sealer: Sealer) throws(CaduceusError) {
        self.path = path
        self.sealer = sealer
        file = try File(path: path + ".partial", write: true)
        do {
            try file.write(sealer.headerBytes)
        } catch {
            abort()
            throw error
        }
    }

    /// The object's header (its sizes and ids).
    public var header: SealHeader { sealer.header }

    /// Seals and writes the next plaintext bytes.
    public func write(_ bytes: some DataProtocol & RandomAccessCollection<UInt8>) throws(CaduceusError) {
        if let error = failure.first.withLock({ $0 }) { throw error }
        digest.update(data: bytes)
        for chunk in try sealer.append(bytes) { enqueue(chunk) }
    }

    private func enqueue(_ chunk: Data) {
        slots.wait()
        queue.async { [file, slots, failure] in
            defer { slots.signal() }
            guard failure.first.withLock({ $0 }) == nil else { return }
            do throws(CaduceusError) {
                try file.write(chunk)
            } catch {
                failure.first.withLock { $0 = error }
            }
        }
    }

    /// Waits until every queued chunk is written; throws the first write error.
    private func drain() throws(CaduceusError) {
        queue.sync {}
        if let error = failure.first.withLock({ $0 }) { throw error }
    }

    /// Finishes the object: checks the length (and the SHA-256 when one was declared), syncs, and renames it
    /// into place. Returns the plaintext's SHA-256 (hex). On any failure nothing is left behind.
    public func commit(expectedSHA256: String?) throws(CaduceusError) -> String {
        do throws(CaduceusError) {
            for chunk in try sealer.finish() { enqueue(chunk) }
            try drain()
            let sha = Hex.encode(digest.finalize())
            if let expectedSHA256, expectedSHA256.lowercased() != sha {
                throw CaduceusError(
                    code: "input.digestMismatch",
                    message: "the object's SHA-256 is \(sha), not the \(expectedSHA256) declared; nothing was stored")
            }
            try file.sync()
            file.close()
            guard rename(path + ".partial", path) == 0 else {
                throw CaduceusError(code: "seal.io", message: "cannot move the object into place")
            }
            done = true
            return sha
        } catch {
            abort()
            throw error
        }
    }

    /// Drops a partial object.
    public func abort() {
        guard !done else { return }
        done = true
        queue.sync {}
        file.close()
        unlink(path + ".partial")
    }
}

/// Reads a sealed object's chunks: the header is checked on opening, the size against it, and every chunk
/// before its plaintext is handed out.
public final class ObjectReader: @unchecked Sendable {
    // One download task owns a reader; it is never shared.
    public let header: SealHeader
    private let opener: Opener
    private let file: File
    private let sealed: UnsafeMutableRawBufferPointer

    /// Opens the object at `path` under its data key.
    public init(path: String, dataKey: SymmetricKey) throws(CaduceusError) {
        file = try File(path: path, write: false)
        do {
            opener = try Opener(headerBytes: try file.read(at: 0, count: SealHeader.size), dataKey: dataKey)
            try opener.check(objectSize: try file.size())
        } catch {
            file.close()
            throw error
        }
        header = opener.header
        sealed = UnsafeMutableRawBufferPointer.allocate(byteCount: header.chunkSize, alignment: 64)
    }

    deinit {
        sealed.deallocate()
        file.close()
    }

    /// Opens chunk `index` into `plaintext` (exactly the chunk's plaintext size).
    public func read(chunk index: Int, into plaintext: UnsafeMutableRawBufferPointer) throws(CaduceusError) {
        let (offset, size) = header.location(ofChunk: index)
        let into = UnsafeMutableRawBufferPointer(rebasing: sealed[0..<size])
        guard try file.read(at: offset, into: into) == size else {
            throw SealError.integrity("the object ends inside chunk \(index)")
        }
        try opener.open(chunk: index, UnsafeRawBufferPointer(into), into: plaintext)
    }

    /// The chunks holding plaintext bytes `range`.
    public func chunks(covering range: Range<UInt64>) -> ClosedRange<Int> { opener.chunks(covering: range) }
}
