/// A typed identifier: an opaque string such as `usr-3f2a…`, distinct per kind of thing it names.
///
/// IDs are unique, immutable and never reused; they are the only way a person, tenant or resource is
/// named in the audit trail (they carry no PHI).
public protocol TypedID: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible, Comparable
where RawValue == String {
    /// The prefix every ID of this kind starts with, e.g. `usr`.
    static var prefix: String { get }
    /// Wraps a raw value without checking it.
    init(unchecked rawValue: String)
}

extension TypedID {
    /// A new random ID: the prefix, a dash and 128 random bits in hexadecimal.
    public static func generate() -> Self {
        let (high, low) = IDEntropy.next()
        let prefix = Self.prefix.utf8
        let text = String(unsafeUninitializedCapacity: prefix.count + 33) { buffer in
            var end = 0
            for byte in prefix {
                buffer[end] = byte
                end += 1
            }
            buffer[end] = UInt8(ascii: "-")
            end += 1
            for word in [high, low] {
                for shift in stride(from: 60, through: 0, by: -4) {
                    buffer[end] = Hex.digits[Int(truncatingIfNeeded: (word >> UInt64(shift)) & 0xF)]
                    end += 1
                }
            }
            return end
        }
        return Self(unchecked: text)
    }

    /// Accepts only IDs of this kind: the prefix, a dash and 1–64 lower-case letters or digits.
    public init?(rawValue: String) {
        let body = rawValue.utf8.dropFirst(Self.prefix.utf8.count + 1)
        guard rawValue.hasPrefix(Self.prefix + "-"), (1...64).contains(body.count),
            body.allSatisfy({ (48...57).contains($0) || (97...122).contains($0) })
        else { return nil }
        self.init(unchecked: rawValue)
    }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let id = Self(rawValue: raw) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not a \(Self.prefix) ID: \(raw.prefix(80))"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A person's account.
public struct UserID: TypedID {
    public static let prefix = "usr"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A tenant: a hospital or institute whose data and nodes never mix with another's.
public struct TenantID: TypedID {
    public static let prefix = "tnt"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A project within a tenant.
public struct ProjectID: TypedID {
    public static let prefix = "prj"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A log-in session.
public struct SessionID: TypedID {
    public static let prefix = "ses"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A service account's API token.
public struct TokenID: TypedID {
    public static let prefix = "tok"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A role granted to an account in a scope.
public struct RoleBindingID: TypedID {
    public static let prefix = "rb"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// An emergency-access (break-glass) grant.
public struct BreakGlassID: TypedID {
    public static let prefix = "bg"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// One API request, as it appears in logs and the audit trail.
public struct RequestID: TypedID {
    public static let prefix = "req"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A region: where nodes and storage sit, with one data residency.
public struct RegionID: TypedID {
    public static let prefix = "reg"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A site (a data centre or machine room) within a region.
public struct SiteID: TypedID {
    public static let prefix = "site"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A fabric: an NVLink or InfiniBand domain within a site, where a gang runs fastest.
public struct FabricID: TypedID {
    public static let prefix = "fab"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A GPU node.
public struct NodeID: TypedID {
    public static let prefix = "node"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A job: training, inference, interactive or batch work on GPUs.
public struct JobID: TypedID {
    public static let prefix = "job"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A record that a node was sanitised (GPU memory scrubbed, local scratch crypto-erased).
public struct SanitizationID: TypedID {
    public static let prefix = "san"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A dataset: sealed objects of one project, under one data key.
public struct DatasetID: TypedID {
    public static let prefix = "dst"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A sealed object of a dataset (its hex body is the object id in the sealed header).
public struct ObjectID: TypedID {
    public static let prefix = "obj"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A dataset's data key (its hex body is the key id in the sealed header).
public struct DataKeyID: TypedID {
    public static let prefix = "dk"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A project's grant to read a dataset, for a purpose of use.
public struct DatasetGrantID: TypedID {
    public static let prefix = "dgr"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}
