import ArgumentParser
import CaduceusCore
import Foundation
import Scheduling

/// `caduceus bench scheduler`: decision rate and latency of the scheduler against a naive reference.
struct BenchScheduler: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Scheduling decisions per second and decision latency, against a naive first-fit reference.",
        discussion: """
            Three scenarios, each run with the product's indexed search and, on the same inputs, with the \
            naive reference (first fit by scanning every node, same policies): (a) the Alibaba trace replayed \
            with --tenants tenants; (b) a synthetic cluster of --nodes nodes × 8 GPUs in 4 tenants with --jobs \
            queued jobs of mixed classes and gang sizes, one pass and --churn-passes more after a tenth of the \
            running jobs end; (c) --preemption-trials inference jobs, one at a time, on a full tenant of \
            --preemption-nodes nodes holding 4 jobs each, each timed from its pass's start to its placement.
            """
    )

    @Option(help: "Folder with openb_node_list_gpu_node.csv and openb_pod_list_default.csv.")
    var trace = "../shared/testdata/alibaba-gpu-2023"

    @Option(help: "Tenants for the trace.")
    var tenants = 4

    @Option(help: "Nodes of the synthetic cluster.")
    var nodes = 10_000

    @Option(help: "Queued jobs on the synthetic cluster.")
    var jobs = 100_000

    @Option(help: "Passes after the first on the synthetic cluster.")
    var churnPasses = 5

    @Option(help: "Nodes of the preemption scenario (4 running jobs each).")
    var preemptionNodes = 2_500

    @Option(help: "Inference jobs to time in the preemption scenario.")
    var preemptionTrials = 1_000

    struct Report: Encodable {
        struct Pair<T: Encodable>: Encodable {
            var indexed: T
            var naive: T
            var speedup: Double
        }
        var trace: Pair<SimulationReport>
        var largeQueue: Pair<SchedulerBenchmark.Result>
        var preemption: Pair<SchedulerBenchmark.Result>
        var targets: [String: Bool]
    }

    func run() throws {
        let loaded = try SimCommand.load(
            nodes: trace + "/openb_node_list_gpu_node.csv", pods: trace + "/openb_pod_list_default.csv")
        func replay(_ search: PlacementSearch) throws -> SimulationReport {
            try Simulator(
                trace: loaded, tenants: tenants, policy: SchedulingPolicy(search: search),
                clock: monotonicNanoseconds
            ).run()
        }
        let bench = SchedulerBenchmark(clock: monotonicNanoseconds)
        let traceIndexed = try replay(.indexed)
        let traceNaive = try replay(.firstFitScan)
        let largeIndexed = try bench.largeQueue(nodes: nodes, jobs: jobs, churnPasses: churnPasses, search: .indexed)
        let largeNaive = try bench.largeQueue(
            nodes: nodes, jobs: jobs, churnPasses: churnPasses, search: .firstFitScan)
        let preemptIndexed = try bench.preemption(
            nodes: preemptionNodes, trials: preemptionTrials, search: .indexed)
        let preemptNaive = try bench.preemption(
            nodes: preemptionNodes, trials: preemptionTrials, search: .firstFitScan)
        let report = Report(
            trace: .init(
                indexed: traceIndexed, naive: traceNaive,
                speedup: traceIndexed.decisionsPerSecond / max(1, traceNaive.decisionsPerSecond)),
            largeQueue: .init(
                indexed: largeIndexed, naive: largeNaive,
                speedup: largeIndexed.decisionsPerSecond / max(1, largeNaive.decisionsPerSecond)),
            preemption: .init(
                indexed: preemptIndexed, naive: preemptNaive,
                speedup: preemptNaive.decisionLatencyMicroseconds.p99
                    / max(0.001, preemptIndexed.decisionLatencyMicroseconds.p99)),
            targets: [
                "trace: >= 100000 decisions/s": traceIndexed.decisionsPerSecond >= 100_000,
                "trace: p99 < 100 us": traceIndexed.decisionLatencyMicroseconds.p99 < 100,
                "large queue: >= 20000 decisions/s": largeIndexed.decisionsPerSecond >= 20_000,
                "preemption with \(preemptIndexed.jobs) running jobs: p99 < 1 ms":
                    preemptIndexed.decisionLatencyMicroseconds.p99 < 1000,
            ])
        try ReportFormat.json.print(report)
    }
}
