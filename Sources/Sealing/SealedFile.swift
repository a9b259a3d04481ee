import CaduceusCore
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Sealed objects as files: sealing a file into another (written under a temporary name and renamed, so a
/// cut-off seal leaves nothing), and reading any plaintext range back, one chunk in memory at a time.
public enum SealedFile {
    /// What sealing a file produced.
    public struct Sealed: Sendable, Equatable {
        public var header: SealHeader
        /// SHA-256 of the plaintext, lower-case hex.
        public var plaintextSHA256: String
        public var objectSize: Int
    }

    /// Seals the file at `input` into `output` (mode 0600).
    public static func seal(
        input: String, output: String, dataKey: SymmetricKey, keyID: [UInt8], keyVersion: UInt32,
        chunkSize: Int = SealHeader.defaultChunkSize, context: String
    ) throws(CaduceusError) -> Sealed {
        let source = try File(path: input, write: false)
        defer { source.close() }
        var sealer = try Sealer(
            dataKey: dataKey, keyID: keyID, keyVersion: keyVersion, plaintextLength: UInt64(try source.size()),
            chunkSize: chunkSize, context: context)
        let temporary = output + ".partial"
        let target = try File(path: temporary, write: true)
        var digest = SHA256()
        do {
            try target.write(sealer.headerBytes)
            let step = sealer.header.plaintextPerChunk
            var offset = 0
            while true {
                let bytes = try source.readData(at: offset, count: step)
                if bytes.isEmpty { break }
                digest.update(data: bytes)
                for chunk in try sealer.append(bytes) { try target.write(chunk) }
                offset += bytes.count
            }
            for chunk in try sealer.finish() { try target.write(chunk) }
            try target.sync()
            target.close()
        } catch {
            target.close()
            unlink(temporary)
            throw error
        }
        guard rename(temporary, output) == 0 else {
            unlink(temporary)
            throw SealError.invalid("cannot write \(output)")
        }
        return Sealed(
            header: sealer.header, plaintextSHA256: Hex.encode(digest.finalize()), objectSize: sealer.header.objectSize)
    }

    /// Opens the sealed file at `path` and hands `range` of its plaintext (all of it when nil) to `sink`, in
    /// order, a chunk at a time; every chunk read is verified before any of its bytes reach the sink. The
    /// bytes are valid only during the call (one buffer serves every chunk).
    public static func open(
        path: String, dataKey: SymmetricKey, range: Range<UInt64>? = nil,
        sink: (UnsafeRawBufferPointer) throws(CaduceusError) -> Void
    ) throws(CaduceusError) {
        let file = try File(path: path, write: false)
        defer { file.close() }
        let opener = try Opener(headerBytes: try file.read(at: 0, count: SealHeader.size), dataKey: dataKey)
        try opener.check(objectSize: try file.size())
        let length = opener.header.plaintextLength
        let wanted = range ?? 0..<length
        guard wanted.upperBound <= length else {
            throw SealError.invalid("the range \(wanted) is past the object's \(length) bytes")
        }
        let per = opener.header.plaintextPerChunk
        let sealed = UnsafeMutableRawBufferPointer.allocate(byteCount: opener.header.chunkSize, alignment: 64)
        let plaintext = UnsafeMutableRawBufferPointer.allocate(byteCount: per, alignment: 64)
        defer {
            // Plaintext does not outlive its use.
            plaintext.initializeMemory(as: UInt8.self, repeating: 0)
            sealed.deallocate()
            plaintext.deallocate()
        }
        for index in opener.chunks(covering: wanted) {
            let (offset, size) = opener.header.location(ofChunk: index)
            let into = UnsafeMutableRawBufferPointer(rebasing: sealed[0..<size])
            guard try file.read(at: offset, into: into) == size else {
                throw SealError.integrity("the object ends inside chunk \(index)")
            }
            let count = size - SealHeader.chunkOverhead
            try opener.open(
                chunk: index, UnsafeRawBufferPointer(into),
                into: UnsafeMutableRawBufferPointer(rebasing: plaintext[0..<count]))
            let start = UInt64(index) * UInt64(per)
            let from = Int(max(wanted.lowerBound, start) - start)
            let to = Int(min(wanted.upperBound, start + UInt64(count)) - start)
            if from < to { try sink(UnsafeRawBufferPointer(rebasing: plaintext[from..<to])) }
        }
    }

    /// Opens the sealed file at `input` into `output` (mode 0600): written under a temporary name and renamed
    /// once every chunk verified, so a failure leaves no plaintext behind. Returns the bytes written.
    @discardableResult
    public static func open(
        input: String, output: String, dataKey: SymmetricKey, range: Range<UInt64>? = nil
    ) throws(CaduceusError) -> Int {
        let temporary = output + ".partial"
        let target = try File(path: temporary, write: true)
        var written = 0
        do {
            try open(path: input, dataKey: dataKey, range: range) { (bytes) throws(CaduceusError) in
                try target.write(bytes)
                written += bytes.count
            }
            try target.sync()
            target.close()
        } catch {
            target.close()
            unlink(temporary)
            throw error
        }
        guard rename(temporary, output) == 0 else {
            unlink(temporary)
            throw CaduceusError(code: "seal.io", message: "cannot write \(output)")
        }
        return written
    }

    /// The plaintext length a sealed file declares (its header is verified first).
    public static func plaintextLength(path: String, dataKey: SymmetricKey) throws(CaduceusError) -> UInt64 {
        let file = try File(path: path, write: false)
        defer { file.close() }
        return try Opener(headerBytes: try file.read(at: 0, count: SealHeader.size), dataKey: dataKey).header
            .plaintextLength
    }

}

/// A file descriptor with positioned reads and whole writes.
final class File: Sendable {
    let fd: Int32
    let path: String

    init(path: String, write: Bool) throws(CaduceusError) {
        fd = write ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CaduceusError(code: "seal.io", message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        self.path = path
    }

    func close() { _ = Glibc.close(fd) }

    func size() throws(CaduceusError) -> Int {
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw CaduceusError(code: "seal.io", message: "cannot stat \(path)") }
        return Int(status.st_size)
    }

    /// Up to `count` bytes from `offset` (fewer only at the end of the file).
    func read(at offset: Int, count: Int) throws(CaduceusError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let done = try bytes.withUnsafeMutableBytes { raw in
            Result { () throws(CaduceusError) in try read(at: offset, into: raw) }
        }.get()
        bytes.removeLast(count - done)
        return bytes
    }

    /// Reads into `buffer` from `offset`; returns the bytes read (fewer only at the end of the file).
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(CaduceusError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw CaduceusError(code: "seal.io", message: "cannot read \(path)") }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Like `read`, into `Data`.
    func readData(at offset: Int, count: Int) throws(CaduceusError) -> Data {
        var data = Data(count: count)
        let done = try data.withUnsafeMutableBytes { raw in
            Result { () throws(CaduceusError) in try read(at: offset, into: raw) }
        }.get()
        data.removeLast(count - done)
        return data
    }

    func write(_ bytes: some ContiguousBytes) throws(CaduceusError) {
        let count = bytes.withUnsafeBytes { $0.count }
        var done = 0
        while done < count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CaduceusError(code: "seal.io", message: "cannot write \(path)") }
            done += n
        }
    }

    func sync() throws(CaduceusError) {
        guard fsync(fd) == 0 else { throw CaduceusError(code: "seal.io", message: "cannot sync \(path)") }
    }
}
