import CaduceusCore
import Crypto

/// A bearer credential: 256 random bits behind a prefix that says what kind it is.
///
/// Only the SHA-256 of a token is stored; the token itself is shown once. Looking a token up by its hash
/// is safe because the token has 256 bits of entropy.
public struct OpaqueToken: Sendable, Equatable {
    /// The kinds of token.
    public enum Kind: String, Sendable, CaseIterable {
        /// A log-in session.
        case session = "cds"
        /// A service account's API token.
        case api = "cdt"
        /// A node's one-time join token (enrols its agent).
        case join = "cdj"
    }

    /// The text the holder presents, e.g. `cds_…`.
    public let text: String
    /// What it is.
    public let kind: Kind

    /// A new random token of `kind`.
    public static func generate(_ kind: Kind) -> OpaqueToken {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        return OpaqueToken(text: kind.rawValue + "_" + Base64URL.encode(bytes), kind: kind)
    }

    /// Parses a presented token; nil unless it has a known prefix and exactly 256 bits.
    public init?(text: String) {
        // `<kind>_` and 43 base64url characters (256 bits), checked where they lie: every request presents one.
        let utf8 = text.utf8
        guard utf8.count == 47, let separator = utf8.firstIndex(of: UInt8(ascii: "_")),
            utf8.distance(from: utf8.startIndex, to: separator) == 3,
            let kind = Kind(rawValue: String(text[..<separator])),
            Base64URL.isAlphabet(text[text.index(after: separator)...].utf8)
        else { return nil }
        self.init(text: text, kind: kind)
    }

    private init(text: String, kind: Kind) {
        self.text = text
        self.kind = kind
    }

    /// The stored form: lower-case hex of SHA-256 of the text.
    public var digest: String {
        var text = text
        return text.withUTF8 { Hex.encode(SHA256.hash(data: UnsafeRawBufferPointer($0))) }
    }
}
