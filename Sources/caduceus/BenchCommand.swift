import ArgumentParser

/// `caduceus bench <area>`: benchmarks that print JSON figures with references measured in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Caduceus on this machine; prints JSON.",
        subcommands: [
            BenchAudit.self, BenchAPI.self, BenchScheduler.self, BenchExecutor.self, BenchSeal.self, BenchScale.self,
            BenchJSON.self,
        ]
    )
}
