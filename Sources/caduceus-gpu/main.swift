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
    writeOutput(Options.usage)
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
        writeOutput(Report.probe(inventory).document)
        return 0
    case .scrub:
        return Report.scrub(backend, inventory: inventory, options: options)
    case .help:
        return 0
    }
}

func writeError(_ text: String) { writeAll(2, text) }

/// Writes a line of the tool's own output to standard output.
func writeOutput(_ line: String) { writeAll(1, line + "\n") }

/// Writes all of `text` to `descriptor`, however many writes it takes.
func writeAll(_ descriptor: Int32, _ text: String) {
    var text = text
    text.withUTF8 { bytes in
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, base + offset, bytes.count - offset)
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }
}
