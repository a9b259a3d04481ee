import CaduceusCore
import ControlPlane
import Foundation
import Scheduling
import Testing

@testable import SlurmExecutor

struct SlurmExecutorTests {
    @Test(
        "host lists expand as Slurm writes them",
        arguments: [
            ("vm", ["vm"]), ("gpu[01-03,07],login1", ["gpu01", "gpu02", "gpu03", "gpu07", "login1"]),
            ("a[1-2]b[3-4]", ["a1b3", "a1b4", "a2b3", "a2b4"]), ("", []), ("n[9-11]", ["n9", "n10", "n11"]),
        ])
    func hostlists(text: String, names: [String]) {
        #expect(Hostlist.expand(text) == names)
    }

    func node(_ name: String, _ tenant: TenantID?, _ tenantName: String?) -> SlurmRunner.FleetNode {
        SlurmRunner.FleetNode(id: .generate(), name: name, tenant: tenant, tenantName: tenantName, gpus: [])
    }

    @Test("a tenant's partition must exist and hold only that tenant's nodes")
    func partitions() {
        let a = TenantID.generate()
        let b = TenantID.generate()
        let fleet = [
            node("g1", a, "st-marys"), node("g2", a, "st-marys"), node("g3", b, "other"), node("g4", nil, nil),
        ]
        let partition = { (name: String) in ["st-marys": "radiology"][name] ?? name }
        let ok = SlurmRunner.partitionRefusals(
            served: fleet, allFleet: fleet,
            partitions: [SlurmPartition(name: "radiology", nodes: ["g1", "g2"]), .init(name: "other", nodes: ["g3"])],
            partitionFor: partition)
        #expect(ok.isEmpty)
        let mixed = SlurmRunner.partitionRefusals(
            served: fleet, allFleet: fleet,
            partitions: [SlurmPartition(name: "radiology", nodes: ["g1", "g3"]), .init(name: "other", nodes: ["g3"])],
            partitionFor: partition)
        #expect(mixed[a]?.contains("g3 of tenant other") == true)
        #expect(mixed[b] == nil)
        let unheld = SlurmRunner.partitionRefusals(
            served: fleet, allFleet: fleet,
            partitions: [SlurmPartition(name: "radiology", nodes: ["g1", "g4"])], partitionFor: partition)
        #expect(unheld[a]?.contains("g4 of no tenant") == true)
        #expect(unheld[b]?.contains("no partition other") == true)
    }

    @Test("exit statuses come from Slurm's wait status; final states are Slurm's")
    func states() {
        #expect(SlurmRunner.exitStatus(768) == 3)
        #expect(SlurmRunner.exitStatus(0) == 0)
        #expect(SlurmRunner.isFinal("NODE_FAIL") && SlurmRunner.isFinal("COMPLETED"))
        #expect(!SlurmRunner.isFinal("PENDING") && !SlurmRunner.isFinal("COMPLETING"))
        #expect(SlurmRunner.shellQuoted("it's") == #"'it'\''s'"#)
    }

    @Test("a Slurm job's name gives back its run; other names give none")
    func launchKeys() throws {
        let job = JobID.generate()
        #expect(SlurmRunner.launchKey(named: "caduceus-\(job)-3") == LaunchKey(job: job, attempt: 3))
        #expect(SlurmRunner.launchKey(named: SlurmRunner.jobNamePrefix(job) + "0") == LaunchKey(job: job, attempt: 0))
        for other in ["wrap", "caduceus-\(job)", "caduceus-\(job)--1", "caduceus-job-X-1", "caduceus--1", "caduceus-"] {
            #expect(SlurmRunner.launchKey(named: other) == nil, "\(other)")
        }
    }

    @Test("held: pending with a JobHeld reason, nothing else")
    func held() throws {
        func job(_ state: String, _ reason: String?) throws -> SlurmJob {
            let reason = reason.map { ",\"state_reason\":\"\($0)\"" } ?? ""
            return try JSONDecoder().decode(
                SlurmJob.self, from: Data("{\"job_id\":1,\"job_state\":\"\(state)\"\(reason)}".utf8))
        }
        #expect(try job("PENDING", "JobHeldUser").isHeld)
        #expect(try job("PENDING", "JobHeldAdmin").isHeld)
        #expect(try !job("PENDING", "Resources").isHeld)
        #expect(try !job("RUNNING", "JobHeldUser").isHeld)
        #expect(try !job("PENDING", nil).isHeld)
    }

    @Test("slurmrestd addresses: a unix socket, or https with a user and token; clear text only on loopback")
    func endpoints() throws {
        #expect(try SlurmEndpoint("unix:/run/slurmrestd.sock").transport == .unixSocket(path: "/run/slurmrestd.sock"))
        let jwt = try SlurmEndpoint("https://slurm.example.org:6820/", userName: "caduceus", tokenFile: "/etc/jwt")
        #expect(jwt.transport == .http(baseURL: "https://slurm.example.org:6820"))
        #expect(try SlurmEndpoint("http://127.0.0.1:6820", userName: "u", tokenFile: "/t").userName == "u")
        for bad in ["unix:relative.sock", "http://slurm.example.org:6820", "ftp://x", "slurm"] {
            #expect(throws: CaduceusError.self, "\(bad)") {
                try SlurmEndpoint(bad, userName: "u", tokenFile: "/t")
            }
        }
        #expect(throws: CaduceusError.self) { try SlurmEndpoint("https://slurm.example.org") }
    }
}
