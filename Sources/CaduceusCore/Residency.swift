/// A data residency, such as `US` or `EU`: where data may be stored and processed.
///
/// Regions have one; datasets may require one, and jobs inherit the requirement of the datasets they read.
public struct Residency: RawRepresentable, Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// Accepts 2–16 upper-case ASCII letters, digits or dashes, starting with a letter (`US`, `EU`, `CA-QC`).
    public init?(rawValue: String) {
        let bytes = Array(rawValue.utf8)
        guard (2...16).contains(bytes.count), (65...90).contains(bytes[0]),
            bytes.allSatisfy({ (65...90).contains($0) || (48...57).contains($0) || $0 == 45 })
        else { return nil }
        self.rawValue = rawValue
    }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let residency = Residency(rawValue: raw) else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "not a residency (2–16 upper-case letters, digits or dashes): \(raw.prefix(40))"))
        }
        self = residency
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }

    public static func < (lhs: Residency, rhs: Residency) -> Bool { lhs.rawValue < rhs.rawValue }
}
