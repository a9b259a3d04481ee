import AuditLog
import CaduceusCore
import Identity
import Logging

extension ControlPlane {
    static let loginSubject = AuditRecorder.Subject(
        action: "session.create", resourceType: "session", resourceID: "login")

    /// Logs in with user name, password and TOTP code. Any wrong factor, a locked or disabled account, or an
    /// unknown name all give the same error; every attempt is audited with its source address.
    public func login(_ request: RequestInfo, _ input: LoginRequest) async throws -> LoginResponse {
        guard input.user.utf8.count <= 64, input.password.utf8.count <= PasswordRules.maximumLength,
            input.code.utf8.count <= 16, let candidate = try await store.user(named: input.user),
            candidate.kind == .user,
            !candidate.disabled, !candidate.throttle.isLocked(at: now), let hash = candidate.passwordHash,
            let sealed = candidate.sealedTOTPSecret
        else {
            await hasher.burn(input.password)
            try await audit.record(request, Self.loginSubject, outcome: .denied)
            throw Failure.invalidCredentials
        }
        let passwordOK = try await hasher.verify(input.password, against: hash)
        let secret = try totpBox.open(sealed, context: candidate.id.rawValue)
        let actor = (id: candidate.id.rawValue, type: "user")
        let token = OpaqueToken.generate(.session)
        let result: LoginResponse? = try await store.transaction { [self] tx in
            // Re-read inside the transaction: two log-ins racing with the same code cannot both succeed.
            guard var user = try await tx.user(id: candidate.id) else { throw Failure.invalidCredentials }
            let step =
                passwordOK && !user.disabled && !user.throttle.isLocked(at: now)
                ? TOTP(secret: secret).verify(input.code, at: now, lastUsedStep: user.totpLastStep) : nil
            guard let step else {
                let locked = user.throttle.recordFailure(at: now)
                try await tx.updateUser(user)
                try await audit.record(request, Self.loginSubject, outcome: .denied, actorOverride: actor)
                if locked {
                    logger.warning("account locked after repeated failed log-ins", metadata: ["user": "\(user.id)"])
                }
                return nil
            }
            user.throttle.recordSuccess()
            user.totpLastStep = step
            try await tx.updateUser(user)
            let session = SessionRecord(
                id: .generate(), user: user.id, tokenDigest: token.digest, createdAt: now, lastSeenAt: now,
                sourceAddress: request.sourceAddress)
            try await tx.insertSession(session)
            let subject = AuditRecorder.Subject(
                action: "session.create", resourceType: "session", resourceID: session.id.rawValue)
            try await audit.record(request, subject, outcome: .success, actorOverride: actor)
            return LoginResponse(
                token: token.text, session: session.id, user: UserView(user),
                mustChangePassword: user.mustChangePassword,
                idleTimeoutMinutes: settings.sessions.idleMinutes)
        }
        guard let result else { throw Failure.invalidCredentials }
        return result
    }

    /// Resolves a bearer token to its principal, ending sessions that are idle or too old.
    public func authenticate(_ text: String) async throws -> Principal {
        guard let token = OpaqueToken(text: text) else { throw Failure.unauthenticated("the token is not valid") }
        let digest = token.digest
        let now = self.now
        if let entry = sessions.entry(digest) {
            if let session = entry.session {
                if settings.sessions.isAlive(created: session.createdAt, lastSeen: entry.lastSeen, at: now) {
                    if sessions.touch(digest, at: now, persistEvery: persistInterval) {
                        try await store.touchSession(session.id, at: now)
                    }
                    return entry.principal
                }
                // Idle as this replica saw it; another replica may have seen it used since. The database's
                // record decides (`load` ends it there if it is idle there too).
                sessions.remove(digest)
            } else if let apiToken = entry.token, !apiToken.isUsable(at: now) {
                sessions.remove(digest)
                throw Failure.unauthenticated("the token has expired or been revoked")
            } else {
                return entry.principal
            }
        }
        let (entry, user) = try await load(token: token, digest: digest, at: now)
        sessions.store(entry, for: digest, user: user)
        return entry.principal
    }

    private func load(
        token: OpaqueToken, digest: String, at now: Timestamp
    ) async throws
        -> (SessionCache.Entry, UserRecord)
    {
        switch token.kind {
        case .join:
            // A join token enrols a node agent; it is no bearer credential for the API.
            throw Failure.unauthenticated("a join token is not an API credential")
        case .session:
            guard let session = try await store.session(digest: digest), session.endedAt == nil,
                let user = try await store.user(id: session.user), !user.disabled
            else { throw Failure.unauthenticated("the session has ended; log in again") }
            guard settings.sessions.isAlive(created: session.createdAt, lastSeen: session.lastSeenAt, at: now) else {
                try await store.endSession(session.id, at: now)
                throw Failure.unauthenticated("the session has ended; log in again")
            }
            try await store.touchSession(session.id, at: now)
            let principal = Principal(
                id: user.id, name: user.name, kind: user.kind, session: session.id,
                bindings: try await store.bindings(of: user.id).map(\.binding),
                breakGlass: try await store.grants(of: user.id), mustChangePassword: user.mustChangePassword)
            let entry = SessionCache.Entry(
                principal: principal, session: session, token: nil, lastSeen: now, lastPersisted: now)
            return (entry, user)
        case .api:
            guard let apiToken = try await store.token(digest: digest), apiToken.isUsable(at: now),
                let user = try await store.user(id: apiToken.user), !user.disabled
            else { throw Failure.unauthenticated("the token has expired or been revoked") }
            // A token acts only inside its scope: roles held more widely are narrowed to it.
            let bindings = try await store.bindings(of: user.id).map(\.binding).compactMap { binding -> RoleBinding? in
                if apiToken.scope.covers(binding.scope) { return binding }
                if binding.scope.covers(apiToken.scope) {
                    var narrowed = binding
                    narrowed.scope = apiToken.scope
                    return narrowed
                }
                return nil
            }
            let principal = Principal(
                id: user.id, name: user.name, kind: .service, token: apiToken.id, bindings: bindings)
            let entry = SessionCache.Entry(
                principal: principal, session: nil, token: apiToken, lastSeen: now, lastPersisted: now)
            return (entry, user)
        }
    }

    /// How often a session's last use is written back: every minute, or a quarter of the idle timeout when
    /// that is shorter, so that the replicas, which each see only their own share of its uses, never end
    /// a session in use for idleness.
    var persistInterval: Int64 { min(60_000, Int64(settings.sessions.idleMinutes) * 15_000) }

    /// Follows, until the calling task is cancelled or `needed` says no more, the changes to accounts' sessions, tokens, roles and
    /// grants that any replica makes (`recordSessionChange`), and drops what this replica's cache holds of
    /// those accounts, every `interval`. While it cannot read them it empties the whole cache at every
    /// attempt, so that requests are checked against the database.
    public func followSessionChanges(
        every interval: Duration = .milliseconds(50), while needed: @Sendable () -> Bool = { true }
    ) async {
        var seen: Set<String> = []
        var failing = false
        while !Task.isCancelled && needed() {
            do {
                // A change commits after the time it notes: a minute's overlap catches the slow ones.
                let changes = try await store.sessionChanges(since: now.adding(milliseconds: -60_000))
                for change in changes where !seen.contains(change.id) { sessions.remove(user: change.user) }
                seen = Set(changes.map(\.id))
                if failing { logger.notice("session changes are followed again") }
                failing = false
            } catch {
                sessions.removeAll()
                if !failing {
                    logger.warning(
                        "cannot read session changes; every request is checked against the database",
                        metadata: ["error": "\(error)"])
                }
                failing = true
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Ends the caller's session.
    public func logout(_ request: RequestInfo, token text: String) async throws {
        let principal = try request.requirePrincipal()
        guard let session = principal.session else { throw Failure.invalid("only a log-in session can log out") }
        let subject = AuditRecorder.Subject(
            action: "session.delete", resourceType: "session", resourceID: session.rawValue)
        try await change(request, subject) { [self] tx in
            try await tx.endSession(session, at: now)
            try await tx.recordSessionChange(of: principal.id, at: now)
        }
        if let token = OpaqueToken(text: text) { sessions.remove(token.digest) }
    }

    /// The caller's account, roles and emergency grants.
    public func me(_ request: RequestInfo) async throws -> MeResponse {
        let principal = try request.requirePrincipal()
        let subject = AuditRecorder.Subject(action: "user.me", resourceType: "user", resourceID: principal.id.rawValue)
        var found = sessions.user(principal.id)
        if found == nil { found = try await store.user(id: principal.id) }
        guard let user = found else {
            try await auditFailure(request, subject, Failure.notFound("account"))
            throw Failure.unauthenticated()
        }
        let now = self.now
        try await audit.record(request, subject, outcome: .success)
        return MeResponse(
            user: UserView(user), session: principal.session, token: principal.token,
            roles: principal.bindings,
            breakGlass: principal.breakGlass.filter { $0.isOpen(at: now) }.map { BreakGlassView($0, now: now) })
    }

    /// Changes the caller's password (required at first log-in of an account created with a one-time one).
    public func changePassword(_ request: RequestInfo, _ input: ChangePasswordRequest) async throws {
        let principal = try request.requirePrincipal()
        let subject = AuditRecorder.Subject(
            action: "user.password.update", resourceType: "user", resourceID: principal.id.rawValue)
        do {
            try PasswordRules.check(input.newPassword)
            guard input.newPassword != input.currentPassword else {
                throw Failure.invalid("the new password must differ from the current one")
            }
        } catch {
            try await auditFailure(request, subject, error)
            throw error
        }
        guard let user = try await store.user(id: principal.id), let hash = user.passwordHash,
            try await hasher.verify(input.currentPassword, against: hash)
        else {
            try await audit.record(request, subject, outcome: .denied)
            throw Failure.forbidden("the current password is not correct")
        }
        let newHash = try await hasher.hash(input.newPassword)
        try await change(request, subject) { [self] tx in
            guard var fresh = try await tx.user(id: principal.id) else { throw Failure.notFound("account") }
            fresh.passwordHash = newHash
            fresh.mustChangePassword = false
            try await tx.updateUser(fresh)
            try await tx.recordSessionChange(of: principal.id, at: now)
        }
        sessions.remove(user: principal.id)
    }

    /// Replaces the caller's TOTP secret, proven with a current code; returns the new enrolment URI.
    public func enrollMFA(_ request: RequestInfo, _ input: EnrollMFARequest) async throws -> EnrollMFAResponse {
        let principal = try request.requirePrincipal()
        let subject = AuditRecorder.Subject(
            action: "user.mfa.enroll", resourceType: "user", resourceID: principal.id.rawValue)
        guard principal.kind == .user, let user = try await store.user(id: principal.id),
            let sealed = user.sealedTOTPSecret,
            TOTP(secret: try totpBox.open(sealed, context: user.id.rawValue)).verify(
                input.code, at: now, lastUsedStep: user.totpLastStep) != nil
        else {
            try await audit.record(request, subject, outcome: .denied)
            throw Failure.forbidden("a current one-time code is needed to enrol a new authenticator")
        }
        let secret = TOTP.generateSecret()
        let newSealed = try totpBox.seal(secret, context: user.id.rawValue)
        try await change(request, subject) { tx in
            guard var fresh = try await tx.user(id: principal.id) else { throw Failure.notFound("account") }
            fresh.sealedTOTPSecret = newSealed
            fresh.totpLastStep = TOTP.step(at: self.now)
            try await tx.updateUser(fresh)
        }
        return EnrollMFAResponse(
            otpauthURI: TOTP(secret: secret).provisioningURI(issuer: settings.issuer, account: user.name))
    }
}
