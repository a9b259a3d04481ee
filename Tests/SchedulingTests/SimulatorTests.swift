import CaduceusCore
import Foundation
import Scheduling
import Testing

@Suite struct SimulatorTests {
    static let nodes = """
        sn,cpu_milli,memory_mib,gpu,model
        n0,64000,262144,8,V100M32
        n1,64000,262144,8,V100M32
        n2,64000,262144,2,T4
        n3,64000,262144,0,CPU
        """
    static let pods = """
        name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
        p0,1000,1024,8,1000,V100M32,BE,Running,0,100,0
        p1,1000,1024,8,1000,,BE,Running,0,100,0
        p2,1000,1024,1,460,T4,LS,Running,10,50,10
        p3,1000,1024,0,0,,LS,Running,10,50,10
        p4,1000,1024,4,1000,,Burstable,Pending,20,30,
        """

    @Test func parsesTheFormatWhateverTheColumnOrder() throws {
        let trace = try AlibabaTrace(nodesCSV: Self.nodes, podsCSV: Self.pods)
        #expect(trace.nodes.map(\.name) == ["n0", "n1", "n2"], "nodes without GPUs are left out")
        #expect(trace.pods.count == 4 && trace.podsWithoutGPUs == 1)
        #expect(
            trace.pods[2].gpus == 1 && trace.pods[2].jobClass == .inference && trace.pods[2].allowedModels == ["T4"])
        #expect(trace.pods[3].jobClass == .interactive && trace.pods[3].runtime == 10)
        // Columns in another order, an extra column, Windows line ends: the same trace.
        let reordered = """
            qos,name,extra,num_gpu,gpu_milli,gpu_spec,creation_time,deletion_time\r
            BE,p0,x,8,1000,V100M32,0,100\r
            BE,p1,x,8,1000,,0,100\r
            LS,p2,x,1,460,T4,10,50\r
            LS,p3,x,0,0,,10,50\r
            Burstable,p4,x,4,1000,,20,30\r

            """
        #expect(try AlibabaTrace(nodesCSV: Self.nodes, podsCSV: reordered).pods == trace.pods)
    }

    @Test(arguments: [
        ("p0,1000,1024,x,1000,,BE,Running,0,100,0", "line 2, num_gpu: 'x' is not a whole number"),
        ("p0,1000,1024,-1,1000,,BE,Running,0,100,0", "line 2, num_gpu: -1 is outside"),
        ("p0,1000,1024,900,1000,,BE,Running,0,100,0", "line 2, num_gpu: 900 is outside"),
        ("p0,1000,1024,1,1000,A100,BE,Running,0,100,0", "line 2, gpu_spec: unknown GPU model 'A100'"),
        ("p0,1000,1024,1,1000,,XX,Running,0,100,0", "line 2, qos: 'XX' is not"),
        ("p0,1000,1024,1,1000,,BE,Running,100,0,0", "line 2, deletion_time: is before creation_time"),
        ("p0,1000,1024,1,1000,,BE,Running,0,100", "line 2: 10 fields where the header has 11"),
        ("p0,1000,1024,1,2000,,BE,Running,0,100,0", "line 2, gpu_milli: 2000 is outside"),
    ])
    func badRowsAreNamed(row: String, message: String) {
        let header =
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,"
            + "scheduled_time\n"
        #expect {
            _ = try AlibabaTrace(nodesCSV: Self.nodes, podsCSV: header + row + "\n")
        } throws: { error in
            (error as? CaduceusError).map { $0.code == "trace.invalid" && $0.message.contains(message) } ?? false
        }
    }

    @Test func missingColumnsAndBadNodesAreNamed() {
        #expect(throws: CaduceusError.self) { try AlibabaTrace(nodesCSV: "sn,gpu\nn0,8\n", podsCSV: Self.pods) }
        #expect(throws: CaduceusError.self) {
            try AlibabaTrace(nodesCSV: "sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,99,T4\n", podsCSV: Self.pods)
        }
        #expect(throws: CaduceusError.self) { try AlibabaTrace(nodesCSV: "", podsCSV: Self.pods) }
    }

    @Test func simulationPlacesPreemptsAndCounts() throws {
        let trace = try AlibabaTrace(nodesCSV: Self.nodes, podsCSV: Self.pods)
        var tick: UInt64 = 0
        let simulator = try Simulator(trace: trace, tenants: 1, policy: SchedulingPolicy()) {
            tick += 1000
            return tick
        }
        let report = try simulator.run()
        #expect(report.pods == 4 && report.podsWithoutGPUs == 1 && report.gpus == 18)
        // p0 and p1 fill both V100 nodes; the interactive p4 preempts one training pod, which waits and reruns.
        #expect(report.podsPlaced == 4 && report.podsNeverPlaced == 0)
        #expect(report.preemptions == 1)
        #expect(report.meanQueueingDelaySeconds["training"] != nil)
        #expect(report.meanGPUAllocationRatio > 0 && report.meanGPUAllocationRatio <= 1)
        #expect(report.decisions >= 5 && report.decisionLatencyMicroseconds.p50 > 0)
    }

    @Test func podsThatCanNeverRunOnTheirTenantAreRefused() throws {
        let pods = """
            name,num_gpu,gpu_milli,gpu_spec,qos,creation_time,deletion_time
            wide,16,1000,,BE,0,10
            fits,2,1000,,BE,0,10
            """
        let trace = try AlibabaTrace(nodesCSV: Self.nodes, podsCSV: pods)
        let report = try Simulator(trace: trace, tenants: 1, policy: SchedulingPolicy()) { 0 }.run()
        #expect(report.podsRefused == 1 && report.podsNeverPlaced == 1 && report.podsPlaced == 1)
    }

    @Test func tenantOfAPodIsStable() {
        #expect(
            Simulator.tenant(ofPod: "openb-pod-0000", tenants: 4)
                == Simulator.tenant(ofPod: "openb-pod-0000", tenants: 4))
        let spread = Set((0..<100).map { Simulator.tenant(ofPod: "pod-\($0)", tenants: 4) })
        #expect(spread == [0, 1, 2, 3])
    }

    /// The trace in `../shared/testdata/alibaba-gpu-2023`, beside the checkout.
    static let sharedTrace: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/testdata/alibaba-gpu-2023").path

    @Test(
        .enabled(
            if: FileManager.default.fileExists(atPath: sharedTrace + "/openb_pod_list_default.csv"),
            "skipped: ../shared/testdata/alibaba-gpu-2023 is absent"))
    func theSharedTraceReplays() throws {
        let nodes = try String(contentsOfFile: Self.sharedTrace + "/openb_node_list_gpu_node.csv", encoding: .utf8)
        let pods = try String(contentsOfFile: Self.sharedTrace + "/openb_pod_list_default.csv", encoding: .utf8)
        let trace = try AlibabaTrace(nodesCSV: nodes, podsCSV: pods)
        #expect(trace.nodes.count == 1213 && trace.pods.count + trace.podsWithoutGPUs == 8152)
        let report = try Simulator(trace: trace, tenants: 4, policy: SchedulingPolicy()) { 0 }.run()
        #expect(report.podsPlaced + report.podsNeverPlaced == report.pods)
        #expect(report.podsPlaced > 7000)
    }

    @Test func histogramPercentiles() {
        var histogram = LatencyHistogram()
        for value in 1...10_000 { histogram.record(UInt64(value) * 1000) }
        let p50 = Double(histogram.percentile(0.5))
        let p99 = Double(histogram.percentile(0.99))
        #expect(abs(p50 - 5_000_000) / 5_000_000 < 0.005)
        #expect(abs(p99 - 9_900_000) / 9_900_000 < 0.005)
        #expect(histogram.percentile(1) == 10_000_000)
    }
}
