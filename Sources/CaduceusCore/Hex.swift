/// Lower-case hexadecimal.
public enum Hex {
    @usableFromInline static let digits = Array("0123456789abcdef".utf8)

    /// Encodes bytes as lower-case hexadecimal (inlinable, so that each caller's sequence type is specialised:
    /// a token's digest is encoded on every authenticated request).
    @inlinable
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes hexadecimal of either case; nil for odd length or other characters.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(input.count / 2)
        var i = 0
        while i < input.count {
            guard let hi = nibble(input[i]), let lo = nibble(input[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
