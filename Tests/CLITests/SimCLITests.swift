import Foundation
import Testing

/// End-to-end tests of `caduceus sim` and `caduceus bench scheduler`, running the real executable.
struct SimCLITests {
    static let sharedTrace = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/testdata/alibaba-gpu-2023").path
    static let hasSharedTrace = FileManager.default.fileExists(atPath: sharedTrace + "/openb_pod_list_default.csv")

    static let nodes = """
        sn,cpu_milli,memory_mib,gpu,model
        a,96000,786432,8,G3
        b,96000,786432,8,G3
        c,32000,131072,4,T4
        """

    @Test("sim replays a file of the trace format that is not the shared one, as JSON and as a table")
    func replaysAnyFileOfTheFormat() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let nodes = try scratch.write("nodes.csv", Self.nodes)
        let pods = try scratch.write(
            "pods.csv",
            """
            name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
            t0,1000,1000,8,1000,G3,BE,Running,0,500,0
            t1,1000,1000,8,1000,G3,BE,Running,0,500,0
            i0,1000,1000,4,1000,G3|T4,LS,Running,10,60,10
            s0,1000,1000,1,250,,Burstable,Running,20,40,20
            z0,1000,1000,0,0,,BE,Running,20,40,20
            w0,1000,1000,16,1000,,BE,Pending,30,40,
            """)
        let json = try CLI.run(["sim", "--nodes", nodes, "--pods", pods, "--tenants", "1", "--output", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        #expect(report["pods"] as? Int == 5 && report["podsWithoutGPUs"] as? Int == 1)
        #expect(report["podsRefused"] as? Int == 1, "16 GPUs on one node can never run")
        #expect(report["podsPlaced"] as? Int == 4 && report["podsNeverPlaced"] as? Int == 1)
        for key in [
            "preemptions", "meanGPUAllocationRatio", "meanQueueingDelaySeconds", "fragmentation", "decisionsPerSecond",
            "decisionLatencyMicroseconds",
        ] {
            #expect(report[key] != nil, "missing \(key)")
        }
        let latency = try #require(report["decisionLatencyMicroseconds"] as? [String: Double])
        #expect(latency["p50"] != nil && latency["p99"] != nil)
        let table = try CLI.run(["sim", "--nodes", nodes, "--pods", pods, "--tenants", "1"])
        #expect(table.status == 0 && table.text.contains("podsPlaced: 4"))
    }

    @Test("sim names the file, line and field of bad input, and prints no report")
    func badInputIsNamed() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let nodes = try scratch.write("nodes.csv", Self.nodes)
        let header =
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
        let cases = [
            ("x0,1,1,-2,1000,,BE,Running,0,10,0", "pods.csv line 3, num_gpu: -2 is outside"),
            ("x0,1,1,1,1000,H100,BE,Running,0,10,0", "pods.csv line 3, gpu_spec: unknown GPU model 'H100'"),
            ("x0,1,1,1,1000,,BE,Running,ten,10,0", "pods.csv line 3, creation_time: 'ten' is not a whole number"),
        ]
        for (row, message) in cases {
            let pods = try scratch.write("pods.csv", header + "ok,1,1,1,1000,,BE,Running,0,10,0\n" + row + "\n")
            let result = try CLI.run(["sim", "--nodes", nodes, "--pods", pods])
            #expect(result.status != 0)
            #expect(result.stderr.contains(message), "\(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
        let missing = try CLI.run(["sim", "--nodes", nodes, "--pods", scratch.path + "/absent.csv"])
        #expect(missing.status != 0 && missing.stderr.contains("cannot read"))
        let tenants = try CLI.run(["sim", "--nodes", nodes, "--pods", nodes, "--tenants", "0"])
        #expect(tenants.status != 0)
    }

    @Test(
        "sim replays the shared trace with 4 tenants",
        .enabled(if: hasSharedTrace, "skipped: ../shared/testdata/alibaba-gpu-2023 is absent"))
    func replaysTheSharedTrace() throws {
        let result = try CLI.run([
            "sim", "--nodes", Self.sharedTrace + "/openb_node_list_gpu_node.csv", "--pods",
            Self.sharedTrace + "/openb_pod_list_default.csv", "--tenants", "4", "--output", "json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        #expect(report["nodes"] as? Int == 1213 && report["pods"] as? Int == 7064)
        #expect((report["podsPlaced"] as? Int ?? 0) > 7000)
    }

    @Test(
        "bench scheduler prints every scenario for both searches",
        .enabled(if: hasSharedTrace, "skipped: ../shared/testdata/alibaba-gpu-2023 is absent"))
    func benchPrintsFigures() throws {
        let result = try CLI.run([
            "bench", "scheduler", "--trace", Self.sharedTrace, "--nodes", "200", "--jobs", "2000", "--churn-passes",
            "1", "--preemption-nodes", "50", "--preemption-trials", "20",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        for scenario in ["trace", "largeQueue", "preemption"] {
            let pair = try #require(report[scenario] as? [String: Any], "missing \(scenario)")
            #expect(pair["indexed"] != nil && pair["naive"] != nil && pair["speedup"] != nil)
        }
        #expect((report["targets"] as? [String: Bool])?.count == 4)
    }
}
