import CaduceusCore
import Testing

@Suite("Typed IDs")
struct IdentifierTests {
    @Test("new IDs are the prefix, a dash and 32 hex digits, parse back, and never repeat")
    func generated() {
        var seen = Set<String>()
        for _ in 0..<20_000 {
            let id = UserID.generate()
            #expect(id.rawValue.hasPrefix("usr-"))
            #expect(id.rawValue.utf8.count == 36)
            #expect(id.rawValue.utf8.dropFirst(4).allSatisfy { (48...57).contains($0) || (97...102).contains($0) })
            #expect(UserID(rawValue: id.rawValue) == id)
            seen.insert(id.rawValue)
        }
        #expect(seen.count == 20_000)
        // Every hex digit position takes many values: the bits are random, not a counter or a constant.
        for position in 4..<36 {
            let digits = Set(seen.prefix(2_000).map { Array($0.utf8)[position] })
            #expect(digits.count >= 12, "position \(position) took only \(digits.count) values")
        }
    }
}
