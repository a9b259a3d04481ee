import CaduceusCore
import Testing

struct RFC3339Tests {
    @Test(
        "times format as RFC 3339 UTC with milliseconds",
        arguments: [
            (Int64(0), "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_795_000_000_123, "2026-11-18T11:06:40.123Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ])
    func format(milliseconds: Int64, text: String) {
        let time = Timestamp(millisecondsSinceEpoch: milliseconds)
        #expect(RFC3339.format(time) == text)
        #expect(RFC3339.parse(text) == time)
    }

    @Test("a year past 9999 is written in full")
    func farFuture() {
        #expect(RFC3339.format(Timestamp(millisecondsSinceEpoch: 253_402_300_800_000)) == "10000-01-01T00:00:00.000Z")
    }

    @Test("any time from year 0 to 9999 formats to 24 bytes and parses back to itself")
    func roundTrip() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let time = Timestamp(
                millisecondsSinceEpoch: Int64.random(in: -62_167_219_200_000...253_402_300_799_999, using: &generator))
            let text = RFC3339.format(time)
            #expect(text.utf8.count == 24)
            #expect(RFC3339.parse(text) == time, "\(text)")
        }
    }

    @Test("parsing accepts other fraction lengths and refuses anything else")
    func parse() {
        #expect(RFC3339.parse("2026-11-18T11:06:40Z")?.millisecondsSinceEpoch == 1_795_000_000_000)
        #expect(RFC3339.parse("2026-11-18T11:06:40.5Z")?.millisecondsSinceEpoch == 1_795_000_000_500)
        #expect(RFC3339.parse("2026-11-18T11:06:40.123456Z")?.millisecondsSinceEpoch == 1_795_000_000_123)
        for bad in [
            "", "yesterday", "2026-11-18 09:46:40Z", "2026-13-18T09:46:40Z", "2026-11-18T11:06:40+01:00",
            "2026-11-18T11:06:40.Z", "2026-11-18T24:00:00Z",
        ] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("the system clock is after this code was written")
    func systemClock() {
        #expect(SystemWallClock().now().millisecondsSinceEpoch > 1_790_000_000_000)
    }
}
