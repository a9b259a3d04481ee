import CaduceusCore
import Crypto

/// An Ed25519 key that signs C2SP signed notes (signature type 0x01).
///
/// Its text form is the one Go's `golang.org/x/mod/sumdb/note` reads:
/// `PRIVATE+KEY+<name>+<key hash, 8 hex digits>+<base64(0x01 ‖ seed)>`.
public struct NoteSigner: Sendable {
    /// The key's name, usually the log's origin.
    public let name: String
    /// The first four bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), big-endian.
    public let keyHash: UInt32
    let privateKey: Curve25519.Signing.PrivateKey

    /// Creates a new random key for `name`.
    public static func generate(name: String) throws -> NoteSigner {
        try NoteVerifierKey.checkName(name)
        return NoteSigner(name: name, privateKey: Curve25519.Signing.PrivateKey())
    }

    init(name: String, privateKey: Curve25519.Signing.PrivateKey) {
        self.name = name
        self.privateKey = privateKey
        self.keyHash = NoteVerifierKey.keyHash(name: name, publicKey: privateKey.publicKey)
    }

    /// Parses the private-key text form.
    public init(privateKeyText text: String) throws {
        let parts = text.trimmingSuffix(while: { $0 == "\n" || $0 == " " }).split(
            separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY", let key = Base64.decode(parts[4]),
            key.count == 33, key[0] == 0x01,
            let privateKey = try? Curve25519.Signing.PrivateKey(rawRepresentation: key[1...])
        else {
            throw CaduceusError(code: "audit.key.malformed", message: "the signing key file is not a note private key")
        }
        self.init(name: String(parts[2]), privateKey: privateKey)
        guard Hex.encode(withUnsafeBytes(of: keyHash.bigEndian) { Array($0) }) == parts[3] else {
            throw CaduceusError(code: "audit.key.malformed", message: "the signing key's hash does not match its key")
        }
    }

    /// The private-key text form; keep it in a file of mode 0600.
    public var privateKeyText: String {
        let hash = Hex.encode(withUnsafeBytes(of: keyHash.bigEndian) { Array($0) })
        return "PRIVATE+KEY+\(name)+\(hash)+\(Base64.encode([0x01] + privateKey.rawRepresentation))"
    }

    /// The matching verifier key.
    public var verifierKey: NoteVerifierKey {
        NoteVerifierKey(name: name, publicKey: privateKey.publicKey)
    }

    /// Signs `text` (which must end in a newline) and returns the whole signed note.
    public func sign(_ text: String) throws -> String {
        guard text.hasSuffix("\n") else {
            throw CaduceusError(code: "audit.note.malformed", message: "a note's text must end with a newline")
        }
        let signature = try privateKey.signature(for: Array(text.utf8))
        let blob = withUnsafeBytes(of: keyHash.bigEndian) { Array($0) } + Array(signature)
        return text + "\n— \(name) \(Base64.encode(blob))\n"
    }
}

/// An Ed25519 note verifier key in the `vkey` text form: `<name>+<key hash hex>+<base64(0x01 ‖ public key)>`.
public struct NoteVerifierKey: Sendable, Equatable {
    /// The key's name.
    public let name: String
    /// The key hash that prefixes each signature made with this key.
    public let keyHash: UInt32
    let publicKey: Curve25519.Signing.PublicKey

    init(name: String, publicKey: Curve25519.Signing.PublicKey) {
        self.name = name
        self.publicKey = publicKey
        self.keyHash = Self.keyHash(name: name, publicKey: publicKey)
    }

    public static func == (lhs: NoteVerifierKey, rhs: NoteVerifierKey) -> Bool {
        lhs.name == rhs.name && lhs.publicKey.rawRepresentation == rhs.publicKey.rawRepresentation
    }

    /// Parses a `vkey` line.
    public init(vkey text: String) throws {
        let line = text.trimmingSuffix(while: { $0 == "\n" || $0 == " " || $0 == "\r" })
        let parts = line.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let key = Base64.decode(parts[2]), key.count == 33, key[0] == 0x01,
            let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key[1...])
        else {
            throw CaduceusError(code: "audit.vkey.malformed", message: "not an Ed25519 note verifier key (vkey)")
        }
        try Self.checkName(String(parts[0]))
        self.init(name: String(parts[0]), publicKey: publicKey)
        guard Hex.encode(withUnsafeBytes(of: keyHash.bigEndian) { Array($0) }) == parts[1].lowercased() else {
            throw CaduceusError(code: "audit.vkey.malformed", message: "the vkey's hash does not match its key")
        }
    }

    /// The `vkey` text form.
    public var vkey: String {
        let hash = Hex.encode(withUnsafeBytes(of: keyHash.bigEndian) { Array($0) })
        return "\(name)+\(hash)+\(Base64.encode([0x01] + publicKey.rawRepresentation))"
    }

    static func keyHash(name: String, publicKey: Curve25519.Signing.PublicKey) -> UInt32 {
        let digest = SHA256.hash(data: Array(name.utf8) + [0x0A, 0x01] + Array(publicKey.rawRepresentation))
        return digest.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self).bigEndian }
    }

    static func checkName(_ name: String) throws {
        guard !name.isEmpty, !name.contains("+"), !name.unicodeScalars.contains(where: { $0.properties.isWhitespace })
        else {
            throw CaduceusError(code: "audit.key.name", message: "a key name must be non-empty, without spaces or '+'")
        }
    }

    /// Checks a signed note and returns its text if it carries a valid signature by this key.
    ///
    /// Signatures by other keys are ignored, as C2SP signed-note allows; a note with none by this key fails.
    public func open(_ note: [UInt8]) throws -> String {
        guard String(validating: note, as: UTF8.self) != nil else { throw Self.failure("the note is not UTF-8") }
        // The signature block follows the last blank line (as Go's note.Open reads it).
        var split = note.count - 2
        while split >= 0 && !(note[split] == 0x0A && note[split + 1] == 0x0A) { split -= 1 }
        guard split >= 0 else { throw Self.failure("the note has no signature block") }
        let body = String(decoding: note[...split], as: UTF8.self)
        let signatures = String(decoding: note[(split + 2)...], as: UTF8.self)
        guard signatures.hasSuffix("\n") else { throw Self.failure("the note's signature block is not terminated") }
        guard body.unicodeScalars.allSatisfy({ $0 == "\n" || $0.value >= 0x20 }) else {
            throw Self.failure("the note's text holds control characters")
        }
        var found = false
        for line in signatures.dropLast().split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("— ") else { throw Self.failure("malformed signature line") }
            let fields = line.dropFirst(2).split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 2, let blob = Base64.decode(fields[1]), blob.count >= 5 else {
                throw Self.failure("malformed signature line")
            }
            let hash = blob[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard fields[0] == name, hash == keyHash else { continue }
            guard blob.count == 68, publicKey.isValidSignature(blob[4...], for: Array(body.utf8)) else {
                throw Self.failure("the signature by \(name) does not verify")
            }
            found = true
        }
        guard found else { throw Self.failure("the note is not signed by \(name)+\(String(keyHash, radix: 16))") }
        return body
    }

    private static func failure(_ message: String) -> CaduceusError {
        CaduceusError(code: "audit.note.invalid", message: message)
    }
}

extension StringProtocol {
    func trimmingSuffix(while predicate: (Character) -> Bool) -> SubSequence {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[startIndex..<end]
    }
}
