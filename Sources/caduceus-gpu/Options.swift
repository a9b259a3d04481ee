import CaduceusCore
import NodeAgent

/// What the command line asked for.
struct Options {
    enum Command { case probe, scrub, help }

    var command: Command = .help
    var fakeGPUs: Int?
    var fakeMemoryBytes = 64 << 20
    var all = false
    var selected: [String] = []
    var reference = true
    var node = NodeID(unchecked: "node-local")
    var scrub = GPUScrubOptions()

    static let usage = """
        usage: caduceus-gpu probe [--fake-gpus N]
               caduceus-gpu scrub (--all | --gpu INDEX|UUID ...) [--passes N] [--samples N] [--no-reference]
                                  [--node NODE_ID] [--fake-gpus N] [--fake-memory-mib M]

        probe   prints the driver version and each GPU: name, UUID, memory, MIG, compute and ECC modes, and
                whether it may be offered to work, as JSON. Exits 0 even when there is no GPU.
        scrub   overwrites the free memory of each GPU, reads samples back, frees it and checks that no
                process is left on the GPU; prints bytes, seconds and GB/s per GPU as JSON, with the rate of
                one plain device-wide fill as the reference. Exits 1 if any scrub failed.

        --fake-gpus N       use N host-memory stand-ins instead of real GPUs (marked fake in the output)
        --fake-memory-mib M memory of each fake GPU (default 64)
        --passes N          overwrite each block N times (default 1)
        --samples N         windows read back at random offsets per block, besides the first and last (default 8)
        --no-reference      skip the reference fill
        --node NODE_ID      the node named in the scrub records (default node-local)
        """

    /// Parses the arguments after the program name; throws a message for the person at the terminal.
    init(_ arguments: [String]) throws(CaduceusError) {
        var rest = arguments[...]
        switch rest.popFirst() {
        case "probe": command = .probe
        case "scrub": command = .scrub
        case nil, "help", "-h", "--help": return
        case let other?: throw Self.bad("unknown command \(other)")
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--all": all = true
            case "--no-reference": reference = false
            case "--gpu": selected.append(try Self.value(of: argument, from: &rest))
            case "--fake-gpus": fakeGPUs = try Self.number(of: argument, from: &rest, in: 0...64)
            case "--fake-memory-mib":
                fakeMemoryBytes = try Self.number(of: argument, from: &rest, in: 4...65536) << 20
            case "--passes": scrub.passes = try Self.number(of: argument, from: &rest, in: 1...8)
            case "--samples": scrub.randomSamplesPerBlock = try Self.number(of: argument, from: &rest, in: 0...4096)
            case "--node":
                let text = try Self.value(of: argument, from: &rest)
                guard let id = NodeID(rawValue: text) else { throw Self.bad("\(text) is not a node ID (node-…)") }
                node = id
            case "-h", "--help": command = .help
            default: throw Self.bad("unknown option \(argument)")
            }
        }
        if command == .scrub && !all && selected.isEmpty { throw Self.bad("scrub needs --all or --gpu") }
    }

    private static func value(of option: String, from rest: inout ArraySlice<String>) throws(CaduceusError) -> String {
        guard let value = rest.popFirst() else { throw bad("\(option) needs a value") }
        return value
    }

    private static func number(
        of option: String, from rest: inout ArraySlice<String>, in range: ClosedRange<Int>
    )
        throws(CaduceusError) -> Int
    {
        let text = try value(of: option, from: &rest)
        guard let number = Int(text), range.contains(number) else {
            throw bad("\(option) takes a number from \(range.lowerBound) to \(range.upperBound), not \(text)")
        }
        return number
    }

    private static func bad(_ message: String) -> CaduceusError {
        CaduceusError(code: "usage", message: message)
    }
}
