import CaduceusCore

/// Where a node is in its life: it takes work only when `available` and assigned to a tenant.
public enum NodeState: String, Codable, Sendable, CaseIterable {
    /// Known to the platform, not yet taking work.
    case registered
    /// Takes work of its tenant.
    case available
    /// Takes no new work; what runs keeps running.
    case cordoned
    /// Takes no new work; what runs is being moved off.
    case draining
    /// Empty, waiting for its GPU memory to be scrubbed and local scratch crypto-erased.
    case sanitizing
    /// Out of service for good.
    case retired
}

/// Evidence that a node was sanitised: GPU memory scrubbed and local scratch crypto-erased.
///
/// The node agent produces it; the lifecycle accepts a node back into service only with one.
public struct SanitizationRecord: Hashable, Sendable, Codable {
    /// The record's ID.
    public var id: SanitizationID
    /// The node that was sanitised.
    public var node: NodeID
    /// The tenant whose work was removed, if any.
    public var previousTenant: TenantID?
    /// When sanitisation finished.
    public var completedAt: Timestamp
    /// Whether every GPU's memory was overwritten and read back.
    public var gpuMemoryScrubbed: Bool
    /// Whether the node's local scratch was crypto-erased.
    public var scratchErased: Bool

    /// Creates a record.
    public init(
        id: SanitizationID, node: NodeID, previousTenant: TenantID?, completedAt: Timestamp, gpuMemoryScrubbed: Bool,
        scratchErased: Bool
    ) {
        self.id = id
        self.node = node
        self.previousTenant = previousTenant
        self.completedAt = completedAt
        self.gpuMemoryScrubbed = gpuMemoryScrubbed
        self.scratchErased = scratchErased
    }
}

/// The life of a node as a value-type state machine: events in, the next state and an action out.
///
/// It holds the single-tenancy rule: a node that holds or has held one tenant's work reaches another tenant
/// only through draining and sanitising, and leaves sanitising only with a `SanitizationRecord`.
public struct NodeLifecycle: Hashable, Sendable, Codable {
    /// The node this lifecycle belongs to.
    public let node: NodeID
    /// The current state.
    public private(set) var state: NodeState
    /// The tenant the node serves, if assigned.
    public private(set) var tenant: TenantID?
    /// The tenant the node is being moved to, while it drains and is sanitised.
    public private(set) var nextTenant: TenantID?
    /// The tenant whose work has run on the node since it was last sanitised (nil: the node is clean).
    public private(set) var heldWorkOf: TenantID?
    /// The last sanitisation record accepted.
    public private(set) var lastSanitization: SanitizationID?

    /// Something that happens to a node.
    public enum Event: Hashable, Sendable {
        /// An operator puts a registered node into service.
        case activate
        /// An operator stops new work on the node.
        case cordon
        /// An operator lets new work onto a cordoned node again.
        case uncordon
        /// An operator moves the work off the node.
        case drain
        /// An operator gives the node to a tenant.
        case assign(TenantID)
        /// Work of the node's tenant was placed on it.
        case workPlaced
        /// The last work left the node (after a drain or an assignment).
        case emptied
        /// The node agent reports a finished sanitisation.
        case sanitized(SanitizationRecord)
        /// An operator takes the node out of service for good.
        case retire
    }

    /// What the owner of the lifecycle must do after an event.
    public enum Action: Hashable, Sendable {
        /// Nothing beyond recording the new state.
        case none
        /// Move the node's work off it (preempt or requeue what runs there).
        case evictWork
        /// Ask the node agent to scrub GPU memory and erase local scratch.
        case sanitize
    }

    /// A node just registered: no tenant, no work.
    public init(node: NodeID) {
        self.node = node
        self.state = .registered
    }

    /// Restores a lifecycle from stored fields.
    public init(
        node: NodeID, state: NodeState, tenant: TenantID?, nextTenant: TenantID?, heldWorkOf: TenantID?,
        lastSanitization: SanitizationID?
    ) {
        self.node = node
        self.state = state
        self.tenant = tenant
        self.nextTenant = nextTenant
        self.heldWorkOf = heldWorkOf
        self.lastSanitization = lastSanitization
    }

    /// Whether the scheduler may place work on the node.
    public var acceptsWork: Bool { state == .available && tenant != nil }

    /// Applies `event`, given how many jobs are on the node now; throws, changing nothing, when the event is
    /// not allowed in the current state.
    public mutating func handle(_ event: Event, jobsOnNode: Int) throws(CaduceusError) -> Action {
        var next = self
        let action = try next.apply(event, jobsOnNode: jobsOnNode)
        self = next
        return action
    }

    private mutating func apply(_ event: Event, jobsOnNode: Int) throws(CaduceusError) -> Action {
        switch (state, event) {
        case (.retired, _):
            throw refusal("the node is retired")
        case (.registered, .activate):
            state = .available
            return .none
        case (.available, .cordon):
            state = .cordoned
            return .none
        case (.cordoned, .uncordon):
            state = .available
            return .none
        case (.available, .drain), (.cordoned, .drain):
            return beginDrain(jobsOnNode: jobsOnNode)
        case (.registered, .assign(let target)):
            guard heldWorkOf == nil || heldWorkOf == target else { throw refusal("the node must be sanitised first") }
            tenant = target
            return .none
        case (.available, .assign(let target)), (.cordoned, .assign(let target)):
            if tenant == target && nextTenant == nil { return .none }
            if (heldWorkOf == nil || heldWorkOf == target) && jobsOnNode == 0 {
                tenant = target
                return .none
            }
            nextTenant = target
            return beginDrain(jobsOnNode: jobsOnNode)
        case (.draining, .assign(let target)), (.sanitizing, .assign(let target)):
            nextTenant = target == tenant && heldWorkOf == target ? nil : target
            return .none
        case (.available, .workPlaced):
            guard let tenant else { throw refusal("the node has no tenant") }
            heldWorkOf = tenant
            return .none
        case (.draining, .emptied):
            guard jobsOnNode == 0 else { throw refusal("work is still running on the node") }
            return finishDrain()
        case (.sanitizing, .sanitized(let record)):
            guard record.node == node else { throw refusal("the sanitisation record is for another node") }
            guard record.gpuMemoryScrubbed, record.scratchErased else {
                throw refusal("the sanitisation record does not show scrubbed GPU memory and erased scratch")
            }
            heldWorkOf = nil
            lastSanitization = record.id
            tenant = nextTenant ?? tenant
            nextTenant = nil
            state = .available
            return .none
        case (.sanitizing, .uncordon), (.sanitizing, .activate):
            throw refusal("the node becomes available only once a sanitisation record exists")
        case (.registered, .retire), (.available, .retire), (.cordoned, .retire), (.sanitizing, .retire):
            guard jobsOnNode == 0 else { throw refusal("work is still running on the node; drain it first") }
            state = .retired
            tenant = nil
            nextTenant = nil
            return .none
        default:
            throw refusal("a node that is \(state.rawValue) cannot \(Self.verb(event))")
        }
    }

    private mutating func beginDrain(jobsOnNode: Int) -> Action {
        state = .draining
        return jobsOnNode == 0 ? finishDrain() : .evictWork
    }

    private mutating func finishDrain() -> Action {
        if heldWorkOf != nil {
            state = .sanitizing
            return .sanitize
        }
        tenant = nextTenant ?? tenant
        nextTenant = nil
        state = .available
        return .none
    }

    private func refusal(_ message: String) -> CaduceusError {
        CaduceusError(code: "node.transition", message: "node \(node): \(message)")
    }

    private static func verb(_ event: Event) -> String {
        switch event {
        case .activate: "be activated"
        case .cordon: "be cordoned"
        case .uncordon: "be uncordoned"
        case .drain: "be drained"
        case .assign: "be assigned"
        case .workPlaced: "take work"
        case .emptied: "finish draining"
        case .sanitized: "accept a sanitisation record"
        case .retire: "be retired"
        }
    }
}
