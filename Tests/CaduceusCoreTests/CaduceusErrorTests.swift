import CaduceusCore
import Testing

struct CaduceusErrorTests {
    struct Cause: Error, CustomStringConvertible {
        var description: String { "disk full" }
    }

    @Test("an error reads as one line, with its cause")
    func description() {
        let plain = CaduceusError(code: "audit.io", message: "cannot write tile")
        #expect("\(plain)" == "cannot write tile")
        let caused = CaduceusError(code: "audit.io", message: "cannot write tile", underlying: Cause())
        #expect("\(caused)" == "cannot write tile (disk full)")
        #expect(caused.code == "audit.io")
    }
}
