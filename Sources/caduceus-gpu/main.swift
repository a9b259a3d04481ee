import CaduceusCore
import NodeAgent

#if canImport(Glibc)
import Glibc
#endif

// caduceus-gpu: GPU discovery and memory scrubbing, alone, for GPU machines without a Swift toolchain.

let options: Options
do {
    options = try Options(Array(CommandLine.arguments.dropFirst()))
} catch {
    writeError("caduceus-gpu: \(error.message)\n\n\(Options.usage)\n")
    exit(2)
}

if options.command == .help {
    print(Options.usage)
    exit(0)
}

if let count = options.fakeGPUs {
    exit(run(FakeGPUBackend(count: count, memoryBytes: options.fakeMemoryBytes), options))
} else {
    exit(run(NVIDIABackend(), options))
}

/// Runs the command over `backend` and returns the exit status.
func run(_ backend: some GPUBackend, _ options: Options) -> Int32 {
    let inventory = backend.discover()
    switch options.command {
    case .probe:
        print(Report.probe(inventory).document)
        return 0
    case .scrub:
        return Report.scrub(backend, inventory: inventory, options: options)
    case .help:
        return 0
    }
}

func writeError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
