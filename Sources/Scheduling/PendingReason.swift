import CaduceusCore

/// Why a job is still waiting, as data; `description` says it in words a researcher understands.
public enum PendingReason: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The project would go over its maximum.
    case quotaMaximum(project: ProjectID, inUse: Int, maximum: Int, requested: Int)
    /// The project is past its guarantee and the idle GPUs it could borrow are kept for other projects'
    /// waiting work.
    case borrowingReserved(
        project: ProjectID, inUse: Int, guaranteed: Int, requested: Int, borrowable: Int, reservedFor: [ProjectID])
    /// Not enough free GPUs in the right shape, and nothing may be preempted for it.
    case capacity(CapacityShortfall)

    public var description: String {
        switch self {
        case .quotaMaximum(let project, let inUse, let maximum, let requested):
            return "project quota reached: \(inUse) of \(maximum) GPUs in use in project \(project), "
                + "and this job needs \(requested) more"
        case .borrowingReserved(let project, let inUse, let guaranteed, let requested, let borrowable, let others):
            let owners = others.map(\.rawValue).joined(separator: ", ")
            return "project quota reached: \(inUse) of \(guaranteed) guaranteed GPUs in use in project \(project); "
                + "this job needs \(requested) more, and \(borrowable == 0 ? "no" : "only \(borrowable)") "
                + "idle GPUs may be borrowed because the rest are reserved for project\(others.count == 1 ? "" : "s") "
                + owners
        case .capacity(let shortfall):
            return shortfall.description
        }
    }
}

/// The shape of a capacity shortfall: what the job needs and what the tenant's matching nodes have free.
public struct CapacityShortfall: Hashable, Sendable, Codable, CustomStringConvertible {
    /// GPUs needed on each node.
    public var gpusPerNode: Int
    /// Nodes needed at once.
    public var nodeCount: Int
    /// Matching nodes that take work (right model and residency, available).
    public var schedulableNodes: Int
    /// Of those, how many have `gpusPerNode` GPUs free now.
    public var fittingNodes: Int
    /// Free GPUs on the matching nodes, in all.
    public var freeGPUs: Int
    /// The most GPUs free on any one matching node.
    public var largestFreeBlock: Int
    /// Whether preemption was tried: nil when the job's class may not preempt anything.
    public var preemption: PreemptionOutcome?

    /// Why preemption did not help.
    public enum PreemptionOutcome: String, Hashable, Sendable, Codable {
        /// No running job was eligible: none of a lower class, preemptible and past its minimum run time.
        case noEligibleVictims = "no-eligible-victims"
    }

    public var description: String {
        let shape =
            nodeCount == 1
            ? "\(gpusPerNode) free GPU\(gpusPerNode == 1 ? "" : "s") on one node"
            : "\(nodeCount) nodes with \(gpusPerNode) free GPU\(gpusPerNode == 1 ? "" : "s") each, at the same time"
        var text = "waiting for \(shape): "
        if schedulableNodes == 0 {
            text += "none of the tenant's nodes that match the job (GPU model, residency) is taking work now"
        } else {
            text +=
                "\(fittingNodes) of \(schedulableNodes) matching nodes "
                + "\(fittingNodes == 1 ? "has" : "have") that many free; \(freeGPUs) GPUs are free in all, "
                + "at most \(largestFreeBlock) on one node"
        }
        if preemption == .noEligibleVictims {
            text += "; no running job of a lower class is preemptible and past its minimum run time"
        }
        return text
    }
}

/// Why a job can never run as specified; it is refused at submission.
public enum Infeasibility: Hashable, Sendable, CustomStringConvertible {
    /// The tenant owns no nodes.
    case tenantHasNoNodes(TenantID)
    /// No node of the tenant has an allowed GPU model.
    case noAllowedModel(allowed: [String], tenantHas: [String])
    /// No node of the tenant with an allowed model lies in a region of that residency.
    case residencyUnavailable(Residency, tenantHas: [Residency])
    /// Not enough nodes with that many GPUs.
    case tooFewNodes(gpusPerNode: Int, nodeCount: Int, matchingNodes: Int, largestNode: Int)
    /// More GPUs than the project may ever hold.
    case overProjectMaximum(project: ProjectID, requested: Int, maximum: Int)

    public var description: String {
        switch self {
        case .tenantHasNoNodes(let tenant):
            return "tenant \(tenant) has no GPU nodes"
        case .noAllowedModel(let allowed, let has):
            return "the tenant has no nodes with GPU model \(allowed.joined(separator: " or ")); "
                + "it has \(has.isEmpty ? "none" : has.joined(separator: ", "))"
        case .residencyUnavailable(let residency, let has):
            return "no region of the tenant's matching nodes has residency \(residency); "
                + "they are in \(has.isEmpty ? "none" : has.map(\.rawValue).joined(separator: ", "))"
        case .tooFewNodes(let perNode, let count, let matching, let largest):
            if largest < perNode {
                return "the job needs \(perNode) GPUs on one node; the tenant's largest matching node has \(largest)"
            }
            return "the job needs \(count) nodes with \(perNode) GPUs each; the tenant has \(matching) such nodes"
        case .overProjectMaximum(let project, let requested, let maximum):
            return "the job needs \(requested) GPUs; project \(project) may hold at most \(maximum)"
        }
    }
}
