/// Writes tiles, bundles and the checkpoint for one tree size, then retires the journal below it.
///
/// All files are first written to temporary names; one `syncfs` makes them all durable; renames put them
/// in place and the directories are synced; only then is the checkpoint replaced. A crash at any point
/// leaves complete files under their final names, and the journal still holds whatever the checkpoint
/// does not yet cover. Full tiles that already exist are never rewritten.
struct TileMaterializer {
    let directory: String
    let journalDirectory: String
    private var knownDirectories: Set<String> = []

    init(directory: String, journalDirectory: String) {
        self.directory = directory
        self.journalDirectory = journalDirectory
    }

    struct Job: Sendable {
        var files: [TileFile]
        var checkpoint: SignedCheckpoint
    }

    mutating func write(_ job: Job) throws {
        var staged: [(temp: String, path: String)] = []
        var touched: Set<String> = []
        for file in job.files {
            let path = directory + "/" + file.path
            if file.isFull && FileSystem.exists(path) { continue }
            let parent = FileSystem.directoryName(path)
            if !knownDirectories.contains(parent) {
                try FileSystem.makeDirectories(parent, mode: 0o755)
                knownDirectories.insert(parent)
            }
            staged.append((try FileSystem.writeTemporary(path, file.bytes, mode: 0o644, sync: false), path))
            touched.insert(parent)
        }
        if !staged.isEmpty { try FileSystem.syncFileSystem(of: directory) }
        for (temp, path) in staged { try FileSystem.publish(temp, as: path) }
        for parent in touched.sorted() { try FileSystem.syncDirectory(parent) }
        try FileSystem.writeAtomically(directory + "/checkpoint", job.checkpoint.note)
        // Partial tiles superseded by a full one are no longer needed: readers fall back to the full tile.
        for file in job.files where file.isFull {
            try FileSystem.removeTree(directory + "/" + file.path + ".p")
        }
        try Journal.retire(directory: journalDirectory, below: job.checkpoint.checkpoint.size)
    }
}
