/// A JSON value, written by hand so that the static binary needs no Foundation.
enum JSONText {
    case string(String)
    case integer(Int64)
    case unsigned(UInt64)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSONText])
    case object([(String, JSONText)])

    /// A string, or null when there is none.
    static func string(_ value: String?) -> JSONText { value.map { .string($0) } ?? .null }

    /// Seconds from microseconds, to the microsecond.
    static func seconds(microseconds: Int64) -> JSONText { .number(Double(microseconds) / 1_000_000) }

    /// The value on one line, with no insignificant white space.
    var compact: String {
        var out = ""
        write(to: &out)
        return out
    }

    /// An object with one member per line and each element of an array member on a line of its own.
    var document: String {
        guard case .object(let members) = self else { return compact }
        let lines = members.map { key, value -> String in
            let name = JSONText.string(key).compact
            guard case .array(let elements) = value, !elements.isEmpty else { return "  \(name): \(value.compact)" }
            return "  \(name): [\n" + elements.map { "    " + $0.compact }.joined(separator: ",\n") + "\n  ]"
        }
        return "{\n" + lines.joined(separator: ",\n") + "\n}"
    }

    private func write(to out: inout String) {
        switch self {
        case .string(let text): Self.quote(text, into: &out)
        case .integer(let value): out += String(value)
        case .unsigned(let value): out += String(value)
        case .number(let value): out += value.isFinite ? String((value * 1_000_000).rounded() / 1_000_000) : "null"
        case .bool(let value): out += value ? "true" : "false"
        case .null: out += "null"
        case .array(let elements):
            out += "["
            for (position, element) in elements.enumerated() {
                if position > 0 { out += "," }
                element.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (position, (key, value)) in members.enumerated() {
                if position > 0 { out += "," }
                Self.quote(key, into: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }

    private static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let digits = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
