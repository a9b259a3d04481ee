import ArgumentParser
import CaduceusCore
import ControlPlane
import Identity
import NIOHTTP1

struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant", abstract: "Tenants: the hospitals and institutes served.",
        subcommands: [Create.self, List.self, Show.self])

    static let columns = ["name", "id", "created"]
    static func row(_ tenant: TenantView) -> [String] {
        [tenant.name, tenant.id.rawValue, tenant.createdAt.description]
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The tenant's name (lower case, digits, '-').") var name: String

        func run() async throws {
            try await callAPI(client, .POST, "/v1/tenants", body: CreateTenantRequest(name: name), as: TenantView.self)
            {
                (TenantCommand.columns, [TenantCommand.row($0)])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await callAPI(
                client, .GET, "/v1/tenants" + query(after: page.after, limit: page.limit),
                as: ListResponse<TenantView>.self
            ) { (TenantCommand.columns, $0.items.map(TenantCommand.row)) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a tenant.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The tenant's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .GET, "/v1/tenants/\(try typedID(TenantID.self, id))", as: TenantView.self) {
                (TenantCommand.columns, [TenantCommand.row($0)])
            }
        }
    }
}

struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project", abstract: "Projects within tenants.", subcommands: [Create.self, List.self, Show.self])

    static let columns = ["name", "id", "tenant", "created"]
    static func row(_ project: ProjectView) -> [String] {
        [project.name, project.id.rawValue, project.tenant.rawValue, project.createdAt.description]
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a project in a tenant.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The tenant's ID.") var tenant: String
        @Argument(help: "The project's name.") var name: String

        func run() async throws {
            let request = CreateProjectRequest(tenant: try typedID(TenantID.self, tenant), name: name)
            try await callAPI(client, .POST, "/v1/projects", body: request, as: ProjectView.self) {
                (ProjectCommand.columns, [ProjectCommand.row($0)])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List projects.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions
        @Option(help: "Only this tenant's projects.") var tenant: String?

        func run() async throws {
            var path = "/v1/projects" + query(after: page.after, limit: page.limit)
            if let tenant { path += (path.contains("?") ? "&" : "?") + "tenant=\(try typedID(TenantID.self, tenant))" }
            try await callAPI(client, .GET, path, as: ListResponse<ProjectView>.self) {
                (ProjectCommand.columns, $0.items.map(ProjectCommand.row))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a project.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The project's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .GET, "/v1/projects/\(try typedID(ProjectID.self, id))", as: ProjectView.self) {
                (ProjectCommand.columns, [ProjectCommand.row($0)])
            }
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "API tokens of service accounts.",
        subcommands: [Create.self, List.self, Revoke.self])

    static let columns = ["name", "id", "user", "scope", "expires", "revoked"]
    static func row(_ token: TokenView) -> [String] {
        [
            token.name, token.id.rawValue, token.user.rawValue, token.scope.description, token.expiresAt.description,
            token.revokedAt?.description ?? "",
        ]
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token (shown once).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The service account's ID.") var user: String
        @Option(help: "platform, tenant:<id> or project:<tenant id>/<project id>.") var scope: String
        @Option(help: "Days until it expires (1–365).") var days: Int = 90
        @Argument(help: "A name for the token.") var name: String

        func run() async throws {
            guard let scope = Scope(scope) else { throw CLIError("'\(scope)' is not a scope") }
            let request = CreateTokenRequest(user: try typedID(UserID.self, user), name: name, scope: scope, days: days)
            try await callAPI(client, .POST, "/v1/tokens", body: request, as: CreateTokenResponse.self) {
                (["token (shown once)"] + TokenCommand.columns, [[$0.token] + TokenCommand.row($0.details)])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await callAPI(
                client, .GET, "/v1/tokens" + query(after: page.after, limit: page.limit),
                as: ListResponse<TokenView>.self
            ) { (TokenCommand.columns, $0.items.map(TokenCommand.row)) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token now.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The token's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .DELETE, "/v1/tokens/\(try typedID(TokenID.self, id))")
            StandardStreams.line("revoked \(id)")
        }
    }
}

struct BreakGlassCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "break-glass", abstract: "Emergency access: open, list, review.",
        subcommands: [Open.self, List.self, Review.self])

    static let columns = ["id", "user", "tenant", "opened", "expires", "open", "reviewed", "overdue"]
    static func row(_ grant: BreakGlassView) -> [String] {
        [
            grant.id.rawValue, grant.user.rawValue, grant.tenant.rawValue, grant.openedAt.description,
            grant.expiresAt.description, grant.open ? "yes" : "no", grant.reviewedAt?.description ?? "no",
            grant.overdue ? "OVERDUE" : "",
        ]
    }

    struct Open: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open emergency access to a tenant (at most 4 hours).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The tenant's ID.") var tenant: String
        @Option(help: "Why (at least 20 characters).") var reason: String
        @Option(help: "Minutes (1–240).") var minutes: Int = 60

        func run() async throws {
            let request = OpenBreakGlassRequest(
                tenant: try typedID(TenantID.self, tenant), reason: reason, minutes: minutes)
            try await callAPI(client, .POST, "/v1/break-glass", body: request, as: BreakGlassView.self) {
                (BreakGlassCommand.columns, [BreakGlassCommand.row($0)])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List grants (all of them for security officers).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions
        @Flag(help: "Only open or unreviewed grants.") var pending = false

        func run() async throws {
            var path = "/v1/break-glass" + query(after: page.after, limit: page.limit)
            if pending { path += (path.contains("?") ? "&" : "?") + "pending=true" }
            try await callAPI(client, .GET, path, as: ListResponse<BreakGlassView>.self) {
                (BreakGlassCommand.columns, $0.items.map(BreakGlassCommand.row))
            }
        }
    }

    struct Review: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record the review of a grant.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The grant's ID.") var id: String
        @Option(help: "The finding.") var note: String

        func run() async throws {
            try await callAPI(
                client, .POST, "/v1/break-glass/\(try typedID(BreakGlassID.self, id))/review",
                body: ReviewBreakGlassRequest(note: note), as: BreakGlassView.self
            ) { (BreakGlassCommand.columns, [BreakGlassCommand.row($0)]) }
        }
    }
}
