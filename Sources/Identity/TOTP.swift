import CaduceusCore
import Crypto

/// Time-based one-time passwords (RFC 6238): HMAC-SHA1, 30-second steps, 6 digits, one step of drift
/// either way.
public struct TOTP: Sendable {
    /// The shared secret (20 random bytes for new enrolments).
    public let secret: [UInt8]
    /// Seconds per step.
    public static let period: Int64 = 30
    /// Digits per code.
    public static let digits = 6

    /// Creates a generator for `secret`.
    public init(secret: [UInt8]) {
        self.secret = secret
    }

    /// A new random 160-bit secret.
    public static func generateSecret() -> [UInt8] {
        SymmetricKey(size: .init(bitCount: 160)).withUnsafeBytes { Array($0) }
    }

    /// The step that contains `time`.
    public static func step(at time: Timestamp) -> Int64 {
        time.millisecondsSinceEpoch / 1000 / period
    }

    /// The code for a step, zero-padded to `digits` digits (or `digits` given).
    public func code(step: Int64, digits: Int = TOTP.digits) -> String {
        var counter = UInt64(step).bigEndian
        let mac = withUnsafeBytes(of: &counter) { counterBytes in
            Array(HMAC<Insecure.SHA1>.authenticationCode(for: Array(counterBytes), using: SymmetricKey(data: secret)))
        }
        let offset = Int(mac[mac.count - 1] & 0x0F)
        let binary =
            (UInt32(mac[offset]) & 0x7F) << 24 | UInt32(mac[offset + 1]) << 16 | UInt32(mac[offset + 2]) << 8
            | UInt32(mac[offset + 3])
        var modulus: UInt32 = 1
        for _ in 0..<digits { modulus *= 10 }
        let value = String(binary % modulus)
        return String(repeating: "0", count: digits - value.count) + value
    }

    /// The step a code was made for, if it matches the current step or one either side and is later
    /// than `lastUsedStep` (so a code is never accepted twice).
    public func verify(_ code: String, at time: Timestamp, lastUsedStep: Int64?) -> Int64? {
        guard code.utf8.count == Self.digits, code.utf8.allSatisfy({ (48...57).contains($0) }) else { return nil }
        let now = Self.step(at: time)
        var matched: Int64?
        for step in (now - 1)...(now + 1) where ConstantTime.equal(Array(self.code(step: step).utf8), Array(code.utf8))
        {
            matched = step
        }
        guard let matched, matched > (lastUsedStep ?? Int64.min) else { return nil }
        return matched
    }

    /// The `otpauth://` URI authenticator apps enrol from.
    public func provisioningURI(issuer: String, account: String) -> String {
        let label = Self.percentEncode(issuer) + ":" + Self.percentEncode(account)
        return "otpauth://totp/\(label)?secret=\(Base32.encode(secret))&issuer=\(Self.percentEncode(issuer))"
            + "&algorithm=SHA1&digits=\(Self.digits)&period=\(Self.period)"
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case 48...57, 65...90, 97...122, UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}
