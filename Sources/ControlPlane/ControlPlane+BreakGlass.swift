import AuditLog
import CaduceusCore
import Identity
import Logging

extension ControlPlane {
    /// Opens emergency access to a tenant for at most four hours, with a reason kept for the review.
    public func openBreakGlass(_ request: RequestInfo, _ input: OpenBreakGlassRequest) async throws -> BreakGlassView {
        let id = BreakGlassID.generate()
        let subject = AuditRecorder.Subject(
            action: "breakglass.open", resourceType: "break-glass", resourceID: id.rawValue, tenant: input.tenant)
        let decision = try await authorize(request, .emergencyAccess, in: .tenant(input.tenant), subject)
        let principal = try request.requirePrincipal()
        let now = self.now
        let grant = BreakGlassGrant(
            id: id, user: principal.id, tenant: input.tenant, reason: input.reason, openedAt: now,
            expiresAt: now.adding(milliseconds: Int64(max(0, input.minutes)) * 60_000))
        let view = try await change(request, subject, decision: decision) { tx in
            try BreakGlassRules.check(reason: input.reason, durationSeconds: input.minutes * 60)
            guard try await tx.tenant(id: input.tenant) != nil else { throw Failure.notFound("tenant \(input.tenant)") }
            try await tx.insertGrant(grant)
            try await tx.recordSessionChange(of: principal.id, at: now)
            return BreakGlassView(grant, now: now)
        }
        sessions.remove(user: principal.id)
        logger.warning(
            "break-glass access opened",
            metadata: ["grant": "\(id)", "user": "\(principal.id)", "tenant": "\(input.tenant)"])
        return view
    }

    /// Lists grants: all of them for a reviewer, one's own otherwise. `pending` keeps open or unreviewed ones.
    public func listBreakGlass(
        _ request: RequestInfo, pending: Bool, after cursor: String?, limit: Int
    ) async throws -> ListResponse<BreakGlassView> {
        let principal = try request.requirePrincipal()
        let subject = AuditRecorder.Subject(action: "breakglass.list", resourceType: "break-glass", resourceID: "all")
        // Reviewers see every grant; anyone else sees only their own.
        let reviewer = AccessPolicy.decide(principal, .breakGlassReview, in: .platform, at: now).allowed
        if principal.mustChangePassword {
            try await audit.record(request, subject, outcome: .denied)
            throw Failure.passwordChangeRequired
        }
        let now = self.now
        return try await read(request, subject) { store in
            let page: Page<BreakGlassGrant> =
                reviewer
                ? try await store.grants(after: cursor, limit: limit)
                : Page(items: try await store.grants(of: principal.id), next: nil)
            let items = page.items.filter { !pending || $0.reviewedAt == nil || $0.isOpen(at: now) }
            return ListResponse(items: items.map { BreakGlassView($0, now: now) }, next: page.next)
        }
    }

    /// Records a security officer's review of a grant.
    public func reviewBreakGlass(
        _ request: RequestInfo, _ id: BreakGlassID, _ input: ReviewBreakGlassRequest
    ) async throws
        -> BreakGlassView
    {
        let existing = try await store.grant(id: id)
        let subject = AuditRecorder.Subject(
            action: "breakglass.review", resourceType: "break-glass", resourceID: id.rawValue, tenant: existing?.tenant)
        let decision = try await authorize(request, .breakGlassReview, in: .platform, subject)
        let reviewer = try request.requirePrincipal().id
        let now = self.now
        return try await change(request, subject, decision: decision) { tx in
            guard var grant = try await tx.grant(id: id) else { throw Failure.notFound("break-glass grant \(id)") }
            guard grant.reviewedAt == nil else { throw Failure.conflict("the grant has been reviewed already") }
            guard grant.user != reviewer else { throw Failure.forbidden("nobody reviews their own emergency access") }
            let note = input.note.trimmingCharacters()
            guard (1...2000).contains(note.count) else {
                throw Failure.invalid("a review note is 1 to 2000 characters")
            }
            grant.reviewedBy = reviewer
            grant.reviewedAt = now
            grant.reviewNote = note
            try await tx.updateGrant(grant)
            return BreakGlassView(grant, now: now)
        }
    }
}

extension String {
    func trimmingCharacters() -> String {
        var slice = self[...]
        while slice.first?.isWhitespace == true { slice = slice.dropFirst() }
        while slice.last?.isWhitespace == true { slice = slice.dropLast() }
        return String(slice)
    }
}
