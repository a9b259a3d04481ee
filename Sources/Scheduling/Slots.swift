import CaduceusCore

/// A node inside the scheduler.
struct NodeSlot {
    var id: NodeID
    var tenant: Int32
    var model: Int32
    var fabric: Int32
    var gpuCount: Int
    var freeMask: UInt64
    var schedulable: Bool
    var removed = false
    /// The pool whose free-GPU buckets hold the node, or -1.
    var pool: Int32 = -1
    var bucketPosition: Int32 = -1
    /// Where the node's allocation records start in `Scheduler.allocationTable`: one place per GPU, as a job
    /// holds at least one GPU of each node it uses.
    var allocationBase: Int32 = 0
    /// How many jobs hold GPUs here.
    var allocationCount: Int32 = 0

    init(id: NodeID, tenant: Int32, model: Int32, fabric: Int32, gpuCount: Int, schedulable: Bool) {
        self.id = id
        self.tenant = tenant
        self.model = model
        self.fabric = fabric
        self.gpuCount = gpuCount
        self.freeMask = Self.fullMask(gpuCount)
        self.schedulable = schedulable
    }

    var freeGPUs: Int { freeMask.nonzeroBitCount }

    static func fullMask(_ count: Int) -> UInt64 { count >= 64 ? .max : (1 << UInt64(count)) - 1 }
}

/// A job's hold on one node.
///
/// It repeats what preemption needs of the job so that a search over thousands of nodes reads only them.
struct NodeAllocation {
    var slot: Int32
    /// GPUs the job holds on this node.
    var gpus: Int32
    /// GPUs the job holds in all.
    var totalGPUs: Int32
    var priority: Int8
    var project: Int32
    /// See `JobSlot.preemptibleFrom`.
    var preemptibleFrom: Int64
    var startedAt: Int64
}

/// The schedulable nodes of one tenant with one GPU model in one fabric, bucketed by free GPUs.
struct Pool {
    let tenant: Int32
    let model: Int32
    let fabric: Int32
    let site: Int32
    let residency: Int32
    /// `buckets[f]`: nodes with exactly `f` free GPUs.
    var buckets: [[Int32]] = Array(repeating: [], count: 65)
    var largestNode = 0
    var nodeCount = 0
    var totalGPUs = 0
    var freeGPUs = 0
    /// Free GPUs on nodes with nothing running.
    var freeOnEmptyNodes = 0
    /// Bit `f` is set when `buckets[f]` holds a node.
    private(set) var occupied: UInt128 = 0

    /// Puts a node in the bucket for `free` GPUs; returns its position there.
    mutating func add(_ node: Int32, free: Int) -> Int32 {
        buckets[free].append(node)
        occupied |= 1 << UInt128(free)
        return Int32(buckets[free].count - 1)
    }

    /// Takes the node at `position` out of the bucket for `free` GPUs; returns the node moved into its place.
    mutating func remove(at position: Int, free: Int) -> Int32? {
        let last = buckets[free].removeLast()
        if buckets[free].isEmpty { occupied &= ~(1 << UInt128(free)) }
        guard position < buckets[free].count else { return nil }
        buckets[free][position] = last
        return last
    }

    /// The fewest free GPUs of any node here with at least `need` free, if there is one.
    func smallestFree(atLeast need: Int) -> Int? {
        let above = occupied >> UInt128(need)
        return above == 0 ? nil : need + above.trailingZeroBitCount
    }

    /// The most free GPUs on any node here.
    var largestFree: Int { occupied == 0 ? 0 : 127 - occupied.leadingZeroBitCount }
}

struct PoolKey: Hashable {
    var tenant: Int32
    var model: Int32
    var fabric: Int32
}

struct CandidateKey: Hashable {
    var tenant: Int32
    var models: Int32
    var residency: Int32
}

struct TenantSlot {
    let id: TenantID
    var pools: [Int32] = []
    var nodes: [Int32] = []
    var projects: [Int32] = []
    var freeGPUs = 0
}

struct ProjectKey: Hashable {
    var tenant: TenantID
    var project: ProjectID
}

struct ProjectSlot {
    let tenant: Int32
    let id: ProjectID
    var quota = ProjectQuota.unlimited
    var inUse = 0
    /// Past usage in GPU-milliseconds, halved every half-life.
    var decayedUsage = 0.0
    var usageUpdatedAt: Int64?
    /// Queued job slots, one queue per class priority (0 batch … 3 inference), in submission order.
    var queues: [[Int32]] = [[], [], [], []]
    var queuedGPUs = 0

    /// GPUs of its guarantee it does not use.
    var unusedGuarantee: Int { max(0, quota.guaranteedGPUs - inUse) }
}

struct JobSlot {
    var job: QueuedJob
    let tenant: Int32
    let project: Int32
    /// Interned set of allowed models, or -1 for any.
    let models: Int32
    /// Interned residency, or -1 for any.
    let residency: Int32
    var live = true
    /// Preempted in the current pass and put back in the queue when the pass ends.
    var awaitingRequeue = false
    var parts: [(node: Int32, mask: UInt64)] = []
    var startedAt = Timestamp(millisecondsSinceEpoch: 0)
    /// When it may first be preempted, in milliseconds since the epoch (`Int64.max` if never).
    var preemptibleFrom = Int64.max
    var reason: PendingReason?

    init(job: QueuedJob, tenant: Int32, project: Int32, models: Int32, residency: Int32) {
        self.job = job
        self.tenant = tenant
        self.project = project
        self.models = models
        self.residency = residency
    }

    var isRunning: Bool { !parts.isEmpty }
}

/// Small integers for strings the scheduler compares often.
struct Interner {
    private(set) var models: [String: Int32] = [:]
    private(set) var modelNames: [String] = []
    private var modelSets: [[Int32]: Int32] = [:]
    private(set) var modelSetMembers: [[Int32]] = []
    private var residencies: [Residency: Int32] = [:]
    private(set) var residencyNames: [Residency] = []
    private var fabrics: [FabricID: Int32] = [:]
    private var sites: [SiteID: Int32] = [:]
    /// Per fabric: its site and residency.
    private(set) var fabricSite: [Int32] = []
    private(set) var fabricResidency: [Int32] = []

    mutating func model(_ name: String) -> Int32 {
        if let index = models[name] { return index }
        let index = Int32(modelNames.count)
        models[name] = index
        modelNames.append(name)
        return index
    }

    /// -1 for "any model".
    mutating func modelSet(_ names: [String]) -> Int32 {
        guard !names.isEmpty else { return -1 }
        let members = Set(names.map { model($0) }).sorted()
        if let index = modelSets[members] { return index }
        let index = Int32(modelSetMembers.count)
        modelSets[members] = index
        modelSetMembers.append(members)
        return index
    }

    mutating func residency(_ residency: Residency) -> Int32 {
        if let index = residencies[residency] { return index }
        let index = Int32(residencyNames.count)
        residencies[residency] = index
        residencyNames.append(residency)
        return index
    }

    mutating func fabric(_ fabric: FabricID, site: SiteID, residency: Residency) -> Int32 {
        let residencyIndex = self.residency(residency)
        let siteIndex: Int32
        if let known = sites[site] {
            siteIndex = known
        } else {
            siteIndex = Int32(sites.count)
            sites[site] = siteIndex
        }
        if let index = fabrics[fabric] {
            fabricSite[Int(index)] = siteIndex
            fabricResidency[Int(index)] = residencyIndex
            return index
        }
        let index = Int32(fabricSite.count)
        fabrics[fabric] = index
        fabricSite.append(siteIndex)
        fabricResidency.append(residencyIndex)
        return index
    }

    func allows(_ set: Int32, model: Int32) -> Bool {
        set < 0 || modelSetMembers[Int(set)].contains(model)
    }
}
