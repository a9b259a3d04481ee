import CaduceusCore
import ControlPlane
import Foundation
import Scheduling
import Testing

/// `JobRunners` routes each question to the runner that holds the answer.
struct JobRunnersTests {
    /// A runner that only keeps log files, in its own folder.
    struct LogKeeper: JobRunner {
        let folder: String
        func serves(node: NodeID) -> Bool { false }
        func prepare(reporter: any JobReporter) async {}
        func active() async -> Set<LaunchKey> { [] }
        func launch(_ launch: JobLaunch, reporter: any JobReporter) async {}
        func stop(_ key: LaunchKey, reason: JobStopReason) async {}
        func readLog(_ job: JobID, stderr: Bool, from offset: Int, limit: Int) async -> (bytes: [UInt8], size: Int)? {
            nil
        }
        func sanitize(node: NodeID, reporter: any JobReporter) async -> NodeSanitization? { nil }
        func reclaim(_ job: JobID, on node: NodeID) async -> Int { 0 }
        func logFiles(of job: JobID) -> (stdout: String, stderr: String)? {
            (folder + "/\(job).out", folder + "/\(job).err")
        }
    }

    @Test("a job's log files are the ones of the runner holding them, plain or sealed")
    func logFilesOfTheHoldingRunner() throws {
        let folder = FileManager.default.temporaryDirectory.path + "/caduceus-runners-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder + "/b", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let runners = JobRunners([LogKeeper(folder: folder + "/a"), LogKeeper(folder: folder + "/b")])
        let job = JobID.generate()
        #expect(runners.logFiles(of: job)?.stdout == folder + "/a/\(job).out", "nobody holds it: the first")
        _ = FileManager.default.createFile(atPath: folder + "/b/\(job).out", contents: Data("x".utf8))
        #expect(runners.logFiles(of: job)?.stdout == folder + "/b/\(job).out", "plain in the second")
        try FileManager.default.moveItem(atPath: folder + "/b/\(job).out", toPath: folder + "/b/\(job).out.sealed")
        #expect(runners.logFiles(of: job)?.stdout == folder + "/b/\(job).out", "sealed in the second")
    }
}
