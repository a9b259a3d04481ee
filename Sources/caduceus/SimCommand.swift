import ArgumentParser
import CaduceusCore
import Foundation
import Scheduling

/// `caduceus sim`: replays a GPU-cluster trace through the scheduler in simulated time.
struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Replay a GPU-cluster trace (Alibaba cluster-trace-gpu-v2023 format) through the scheduler.",
        discussion: """
            Nodes are dealt to --tenants tenants in turn; each pod goes to a tenant by a stable hash of its \
            name. LS pods run as inference, Burstable as interactive, BE as preemptible training; pods that \
            need no GPU are skipped, a share of one GPU takes a whole GPU, gpu_spec lists the allowed models, \
            and a pod runs for deletion − creation seconds once placed. Pods that can never run on their \
            tenant's nodes are refused on arrival, as the API would refuse them.
            """
    )

    @Option(help: "The node list: sn,cpu_milli,memory_mib,gpu,model.")
    var nodes: String

    @Option(help: "The pod list: name,…,num_gpu,gpu_milli,gpu_spec,qos,…,creation_time,deletion_time,….")
    var pods: String

    @Option(help: "Tenants to split the nodes across (1–1000).")
    var tenants = 4

    @Option(help: "Multiply arrival times by this (e.g. 0.01 for arrivals 100 times denser; run times unchanged).")
    var arrivalScale = 1.0

    @Option(help: "Node search: indexed (the product) or first-fit-scan (the naive reference).")
    var search: PlacementSearch = .indexed

    @Option(help: "Half-life of past usage in fair share, in hours.")
    var usageHalfLifeHours = 24.0

    @Option(help: "table or json.")
    var output: ReportFormat = .table

    func run() throws {
        let trace = try Self.load(nodes: nodes, pods: pods)
        let policy = SchedulingPolicy(
            usageHalfLifeMilliseconds: Int64(usageHalfLifeHours * 3_600_000), search: search)
        let report = try Simulator(
            trace: trace, tenants: tenants, policy: policy, arrivalScale: arrivalScale, clock: monotonicNanoseconds
        ).run()
        try output.print(report)
    }

    /// Reads and parses both files; errors name the file, line and field.
    static func load(nodes: String, pods: String) throws -> AlibabaTrace {
        func read(_ path: String) throws -> String {
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw CLIError("cannot read \(path): \(error.localizedDescription)")
            }
        }
        do {
            return try AlibabaTrace(
                nodesCSV: read(nodes), podsCSV: read(pods), nodesName: (nodes as NSString).lastPathComponent,
                podsName: (pods as NSString).lastPathComponent)
        } catch let error as CaduceusError {
            throw CLIError(error.message)
        }
    }
}

/// Monotonic nanoseconds for timing decisions.
func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// How a report is printed.
enum ReportFormat: String, ExpressibleByArgument {
    case table, json

    func print<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        switch self {
        case .json:
            Swift.print(String(decoding: data, as: UTF8.self))
        case .table:
            let object = try JSONSerialization.jsonObject(with: data)
            for line in Self.lines(object, prefix: "") { Swift.print(line) }
        }
    }

    /// `key.path: value` lines, sorted, for people.
    private static func lines(_ value: Any, prefix: String) -> [String] {
        if let object = value as? [String: Any] {
            return object.keys.sorted().flatMap { lines(object[$0]!, prefix: prefix.isEmpty ? $0 : prefix + "." + $0) }
        }
        if let number = value as? NSNumber, number.doubleValue != number.doubleValue.rounded() {
            let magnitude = abs(number.doubleValue)
            return ["\(prefix): \(String(format: magnitude >= 1000 ? "%.0f" : "%.4g", number.doubleValue))"]
        }
        return ["\(prefix): \(value)"]
    }
}

extension PlacementSearch: ExpressibleByArgument {}
