import CaduceusCore

/// A GPU-cluster trace in the format of Alibaba's public `cluster-trace-gpu-v2023`: a node list
/// (`sn,cpu_milli,memory_mib,gpu,model`) and a pod list (`name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,
/// qos,pod_phase,creation_time,deletion_time,scheduled_time`). Columns are found by their header names, so
/// any file of the format reads, whatever the column order and extra columns.
public struct AlibabaTrace: Sendable {
    /// A GPU node of the trace.
    public struct Node: Hashable, Sendable {
        public var name: String
        public var gpus: Int
        public var model: String
    }

    /// A pod (task) of the trace.
    public struct Pod: Hashable, Sendable {
        public var name: String
        /// Whole GPUs it needs (a fractional share of one GPU is rounded up to one).
        public var gpus: Int
        /// Models it may run on; empty: any.
        public var allowedModels: [String]
        /// Its class, from its QoS.
        public var jobClass: JobClass
        /// When it was created, in seconds of trace time.
        public var creationTime: Int64
        /// How long it runs once started, in seconds (deletion − creation).
        public var runtime: Int64
    }

    /// The GPU nodes (nodes with no GPU are left out).
    public var nodes: [Node]
    /// The pods that need GPUs, in file order.
    public var pods: [Pod]
    /// Pods left out because they need no GPU.
    public var podsWithoutGPUs: Int

    /// Parses both files; throws `trace.invalid` naming the file, line and field of the first bad value.
    public init(
        nodesCSV: String, podsCSV: String, nodesName: String = "nodes", podsName: String = "pods"
    ) throws(CaduceusError) {
        let nodeTable = try CSVTable(nodesCSV, name: nodesName, required: ["sn", "gpu", "model"])
        var nodes: [Node] = []
        var seen = Set<String>()
        for row in nodeTable.rows {
            let name = try row.text("sn")
            guard seen.insert(name).inserted else { throw row.error("sn", "node '\(name)' is listed twice") }
            let gpus = try row.integer("gpu", in: 0...64)
            let model = try row.text("model")
            guard GPUModel.isValidName(model) else { throw row.error("model", "'\(model)' is not a GPU model name") }
            if gpus > 0 { nodes.append(Node(name: name, gpus: Int(gpus), model: model)) }
        }
        let models = Set(nodes.map(\.model))
        let podTable = try CSVTable(
            podsCSV, name: podsName,
            required: ["name", "num_gpu", "gpu_milli", "gpu_spec", "qos", "creation_time", "deletion_time"])
        var pods: [Pod] = []
        var skipped = 0
        var podNames = Set<String>()
        for row in podTable.rows {
            let name = try row.text("name")
            guard podNames.insert(name).inserted else { throw row.error("name", "pod '\(name)' is listed twice") }
            let gpus = try row.integer("num_gpu", in: 0...64)
            // A share below one GPU still takes one whole GPU: GPUs are never shared between jobs.
            _ = try row.integer("gpu_milli", in: 0...1000, empty: 0)
            let created = try row.integer("creation_time", in: 0...Int64(1) << 40)
            let deleted = try row.integer("deletion_time", in: 0...Int64(1) << 40)
            guard deleted >= created else { throw row.error("deletion_time", "is before creation_time") }
            let qos = try row.text("qos")
            guard let jobClass = Self.jobClass(qos: qos) else {
                throw row.error("qos", "'\(qos)' is not LS, Burstable, BE or Guaranteed")
            }
            let spec = row.field("gpu_spec")
            let allowed = spec.isEmpty ? [] : spec.split(separator: "|").map(String.init)
            for model in allowed where !models.contains(model) {
                throw row.error("gpu_spec", "unknown GPU model '\(model.prefix(40))': no node of the trace has it")
            }
            guard gpus > 0 else {
                skipped += 1
                continue
            }
            pods.append(
                Pod(
                    name: name, gpus: Int(gpus), allowedModels: allowed, jobClass: jobClass, creationTime: created,
                    runtime: deleted - created))
        }
        self.nodes = nodes
        self.pods = pods
        self.podsWithoutGPUs = skipped
    }

    /// LS → inference, Burstable → interactive, BE → training; Guaranteed (Kubernetes' strictest QoS) →
    /// inference.
    static func jobClass(qos: String) -> JobClass? {
        switch qos {
        case "LS", "Guaranteed": .inference
        case "Burstable": .interactive
        case "BE": .training
        default: nil
        }
    }
}

/// A comma-separated table with a header line; fields hold no commas or quotes in this format.
struct CSVTable {
    struct Row {
        let file: String
        let line: Int
        let columns: [String: Int]
        let fields: [Substring]

        func field(_ column: String) -> String {
            guard let index = columns[column], index < fields.count else { return "" }
            return String(fields[index]).trimmingSpaces()
        }

        func text(_ column: String) throws(CaduceusError) -> String {
            let value = field(column)
            guard !value.isEmpty else { throw error(column, "is empty") }
            guard value.utf8.count <= 256 else { throw error(column, "is over 256 bytes") }
            return value
        }

        func integer(
            _ column: String, in range: ClosedRange<Int64>, empty: Int64? = nil
        ) throws(CaduceusError)
            -> Int64
        {
            let value = field(column)
            if value.isEmpty, let empty { return empty }
            guard let number = Int64(value) else { throw error(column, "'\(value.prefix(40))' is not a whole number") }
            guard range.contains(number) else {
                throw error(column, "\(number) is outside \(range.lowerBound)…\(range.upperBound)")
            }
            return number
        }

        func error(_ column: String, _ message: String) -> CaduceusError {
            CaduceusError(code: "trace.invalid", message: "\(file) line \(line), \(column): \(message)")
        }
    }

    let rows: [Row]

    init(_ text: String, name: String, required: [String]) throws(CaduceusError) {
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .enumerated().map { (number: $0.offset + 1, text: $0.element) }
        while let last = lines.last, last.text.isEmpty { lines.removeLast() }
        guard let header = lines.first else {
            throw CaduceusError(code: "trace.invalid", message: "\(name): the file is empty")
        }
        var columns: [String: Int] = [:]
        for (index, column) in header.text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            columns[String(column).trimmingSpaces()] = index
        }
        for column in required where columns[column] == nil {
            throw CaduceusError(
                code: "trace.invalid", message: "\(name) line 1: the header has no column '\(column)'")
        }
        var rows: [Row] = []
        for line in lines.dropFirst() {
            let fields = line.text.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == columns.count else {
                throw CaduceusError(
                    code: "trace.invalid",
                    message: "\(name) line \(line.number): \(fields.count) fields where the header has \(columns.count)"
                )
            }
            rows.append(Row(file: name, line: line.number, columns: columns, fields: fields))
        }
        self.rows = rows
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var view = Substring(self)
        while view.first == " " { view.removeFirst() }
        while view.last == " " { view.removeLast() }
        return String(view)
    }
}
