import AuditLog
import CaduceusCore
import Foundation
import Identity
import Logging
import Sealing

/// One object's move between tiers.
public struct LifecycleMove: Codable, Sendable, Equatable {
    public var object: ObjectID
    public var name: String
    public var from: StorageTier
    public var to: StorageTier
    /// Days since it was last read (or stored).
    public var idleDays: Int
    /// Why a move was not made, when applying.
    public var failure: String?
}

/// A dataset's moves: planned (a dry run), or made.
public struct LifecyclePlanView: Codable, Sendable, Equatable {
    public var dataset: DatasetID
    public var applied: Bool
    public var moves: [LifecycleMove]
}

/// Tiering: objects move between the hot, warm, cold and archive tiers by their dataset's lifecycle rule and
/// the days since they were last read; a read from any tier works, and a read makes an object hot again at
/// the next run. A move copies, verifies, switches the metadata, then deletes the old copy.
extension ControlPlane {
    /// The actor of moves the background service makes.
    static let lifecycleActor = (id: "lifecycle", type: "system")

    /// What would move now (nothing moves).
    public func lifecyclePlan(_ request: RequestInfo, _ id: DatasetID) async throws -> LifecyclePlanView {
        let (dataset, decision, subject) = try await authorizeGovern(request, id, "dataset.lifecycle.plan")
        let moves = try await plannedMoves(dataset)
        try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
        return LifecyclePlanView(dataset: id, applied: false, moves: moves)
    }

    /// Makes the planned moves; each is audited.
    public func lifecycleApply(_ request: RequestInfo, _ id: DatasetID) async throws -> LifecyclePlanView {
        let (dataset, decision, subject) = try await authorizeGovern(request, id, "dataset.lifecycle.apply")
        try await audit.record(request, subject, outcome: .success, breakGlass: decision.breakGlass)
        let moves = try await applyMoves(dataset, request: RequestInfo(principal: request.principal))
        return LifecyclePlanView(dataset: id, applied: true, moves: moves)
    }

    /// One run of the background service: every dataset's planned moves.
    public func runLifecycle() async {
        do {
            let store = try datasetContext().store
            var cursor: String?
            repeat {
                let page = try await store.datasets(tenant: nil, project: nil, after: cursor, limit: 200)
                for dataset in page.items where dataset.shreddedAt == nil {
                    _ = try await applyMoves(dataset, request: RequestInfo())
                }
                cursor = page.next
            } while cursor != nil
        } catch {
            logger.error("the lifecycle run failed", metadata: ["error": "\(error)"])
        }
    }

    private func authorizeGovern(
        _ request: RequestInfo, _ id: DatasetID, _ action: String
    ) async throws -> (DatasetRecord, AccessDecision, AuditRecorder.Subject) {
        let found = try await datasetContext().store.dataset(id: id)
        let subject = AuditRecorder.Subject(
            action: action, resourceType: "dataset", resourceID: id.rawValue, tenant: found?.tenant)
        let decision = try await authorize(
            request, .datasetGovern, in: found.map { .tenant($0.tenant) } ?? .platform, subject)
        guard let found else {
            try await auditFailure(request, subject, Failure.notFound("dataset"))
            throw Failure.notFound("dataset \(id)")
        }
        return (found, decision, subject)
    }

    private func plannedMoves(_ dataset: DatasetRecord) async throws -> [LifecycleMove] {
        let store = try datasetContext().store
        var moves: [LifecycleMove] = []
        var cursor: String?
        let now = self.now
        repeat {
            let page = try await store.objects(of: dataset.id, after: cursor, limit: 500)
            for object in page.items {
                let idle = Int(
                    (now.millisecondsSinceEpoch - (object.lastReadAt ?? object.createdAt).millisecondsSinceEpoch)
                        / 86_400_000)
                let target = dataset.lifecycle.tier(idleDays: idle)
                if target != object.tier {
                    moves.append(
                        LifecycleMove(
                            object: object.id, name: object.name, from: object.tier, to: target, idleDays: idle))
                }
            }
            cursor = page.next
        } while cursor != nil
        return moves
    }

    private func applyMoves(_ dataset: DatasetRecord, request: RequestInfo) async throws -> [LifecycleMove] {
        let context = try datasetContext()
        var done: [LifecycleMove] = []
        for var move in try await plannedMoves(dataset) {
            do {
                try context.files.move(move.object, of: dataset.id, from: move.from, to: move.to)
                guard var object = try await context.store.object(id: move.object), object.tier == move.from else {
                    context.files.removeCopy(move.object, of: dataset.id, in: move.to)
                    continue
                }
                object.tier = move.to
                let moved = object
                let (from, to) = (move.from.rawValue, move.to.rawValue)
                try await context.store.transaction { [audit] tx in
                    try await tx.updateObject(moved)
                    try await audit.record(
                        RequestInfo(principal: request.principal, requestID: .generate()),
                        .init(
                            action: "dataset.object.move", resourceType: "object", resourceID: moved.id.rawValue,
                            tenant: dataset.tenant),
                        outcome: .success, actorOverride: Self.lifecycleActor,
                        details: .object(["from": .string(from), "to": .string(to)]))
                }
                context.files.removeCopy(move.object, of: dataset.id, in: move.from)
            } catch {
                move.failure = "\(error)"
                logger.warning(
                    "an object could not move tier", metadata: ["object": "\(move.object)", "error": "\(error)"])
            }
            done.append(move)
        }
        return done
    }

    /// Removes copies of objects in tiers their metadata does not place them in, and files of no object (a crash
    /// between copying and recording); returns how many.
    func sweepMisplaced(_ settings: DatasetSettings) async throws -> Int {
        var removed = 0
        for (tier, directory) in settings.files.tiers {
            for folder in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                guard let dataset = DatasetID(rawValue: folder) else { continue }
                for name in (try? FileManager.default.contentsOfDirectory(atPath: directory + "/" + folder)) ?? [] {
                    guard let object = ObjectID(rawValue: name) else { continue }
                    let record = try await settings.store.object(id: object)
                    if record == nil || record?.tier != tier || record?.dataset != dataset {
                        settings.files.removeCopy(object, of: dataset, in: tier)
                        removed += 1
                    }
                }
            }
        }
        return removed
    }
}
