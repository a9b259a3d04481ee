import CaduceusCore
import Crypto
import _CryptoExtras

/// Hashes and checks passwords with scrypt at OWASP's parameters (N = 2^17, r = 8, p = 1).
///
/// Each hash takes about 128 MiB and a noticeable fraction of a second, so at most `concurrency` run at
/// once: a flood of log-ins queues instead of exhausting memory. The encoded form is
/// `$scrypt$ln=17,r=8,p=1$<salt base64>$<hash base64>`; hashes with other parameters still verify.
public actor PasswordHasher {
    /// log₂ N for new hashes.
    public let logN: Int
    /// The block size r.
    public let blockSize: Int
    /// The parallelism p.
    public let parallelism: Int
    private let concurrency: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// OWASP's parameters; tests may lower `logN` to stay fast.
    public init(logN: Int = 17, blockSize: Int = 8, parallelism: Int = 1, concurrency: Int = 2) {
        self.logN = logN
        self.blockSize = blockSize
        self.parallelism = parallelism
        self.concurrency = concurrency
    }

    /// Hashes `password` with a fresh 16-byte salt.
    public func hash(_ password: String) async throws -> String {
        let salt = Array(SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) })
        let derived = try await derive(password, salt: salt, logN: logN, r: blockSize, p: parallelism)
        return "$scrypt$ln=\(logN),r=\(blockSize),p=\(parallelism)$\(Self.base64(salt))$\(Self.base64(derived))"
    }

    /// Whether `password` matches `encoded`, compared in constant time.
    public func verify(_ password: String, against encoded: String) async throws -> Bool {
        guard let parsed = Self.parse(encoded) else {
            throw CaduceusError(code: "identity.passwordHash", message: "stored password hash is malformed")
        }
        let derived = try await derive(password, salt: parsed.salt, logN: parsed.logN, r: parsed.r, p: parsed.p)
        return ConstantTime.equal(derived, parsed.hash)
    }

    /// Spends the same work as a real check, for user names that do not exist (no timing oracle).
    public func burn(_ password: String) async {
        _ = try? await derive(
            password, salt: [UInt8](repeating: 0, count: 16), logN: logN, r: blockSize, p: parallelism)
    }

    private func derive(_ password: String, salt: [UInt8], logN: Int, r: Int, p: Int) async throws -> [UInt8] {
        await acquire()
        defer { release() }
        let key = try await DedicatedThread.run {
            try KDF.Scrypt.deriveKey(
                from: Array(password.utf8), salt: salt, outputByteCount: 32, rounds: 1 << logN, blockSize: r,
                parallelism: p, maxMemory: 256 << 20)
        }
        return key.withUnsafeBytes { Array($0) }
    }

    private func acquire() async {
        if running < concurrency {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }

    struct Parsed {
        var logN: Int
        var r: Int
        var p: Int
        var salt: [UInt8]
        var hash: [UInt8]
    }

    static func parse(_ encoded: String) -> Parsed? {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "scrypt" else { return nil }
        var values: [String: Int] = [:]
        for field in parts[2].split(separator: ",") {
            let pair = field.split(separator: "=")
            guard pair.count == 2, let value = Int(pair[1]) else { return nil }
            values[String(pair[0])] = value
        }
        guard let logN = values["ln"], let r = values["r"], let p = values["p"], (10...20).contains(logN),
            (1...32).contains(r), (1...16).contains(p), let salt = Base64URL.decode(String(parts[3])),
            let hash = Base64URL.decode(String(parts[4])), hash.count == 32
        else { return nil }
        return Parsed(logN: logN, r: r, p: p, salt: salt, hash: hash)
    }

    static func base64(_ bytes: [UInt8]) -> String { Base64URL.encode(bytes) }
}
