import ArgumentParser
import CaduceusCore
import ControlPlane
import Foundation
import Identity
import NIOHTTP1

/// Sends one request and prints the reply as a table or JSON.
func callAPI<Reply: Decodable>(
    _ options: ClientOptions, _ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<String>.none,
    as type: Reply.Type, table: (Reply) -> ([String], [[String]])
) async throws {
    let api = try options.client()
    let reply: APIClient.Reply
    do {
        reply = try await api.send(method, path, body: body)
    } catch {
        await api.shutdown()
        throw error
    }
    await api.shutdown()
    if reply.status == 204 { return }
    let value = try api.decode(Reply.self, reply)
    Printer.show(reply.body, options.output) { table(value) }
}

/// Sends one request whose reply has no body.
func callAPI(
    _ options: ClientOptions, _ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<String>.none
)
    async throws
{
    let api = try options.client()
    defer { Task { await api.shutdown() } }
    _ = try await api.send(method, path, body: body)
}

func query(after: String?, limit: Int?) -> String {
    var items: [String] = []
    if let after { items.append("after=\(after)") }
    if let limit { items.append("limit=\(limit)") }
    return items.isEmpty ? "" : "?" + items.joined(separator: "&")
}

func typedID<T: TypedID>(_ type: T.Type, _ text: String) throws -> T {
    guard let id = T(rawValue: text) else { throw CLIError("'\(text)' is not a \(T.prefix)- ID") }
    return id
}

func userRow(_ user: UserView) -> [String] {
    [
        user.name, user.id.rawValue, user.kind.rawValue, user.disabled ? "disabled" : "enabled",
        user.mustChangePassword ? "yes" : "no",
    ]
}

let userColumns = ["name", "id", "kind", "state", "must change password"]

struct PageOptions: ParsableArguments {
    @Option(help: "Cursor from the previous page.")
    var after: String?

    @Option(help: "Items per page (1–500).")
    var limit: Int?
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Manage accounts.",
        subcommands: [Create.self, List.self, Show.self, Disable.self, Enable.self, Password.self, MFA.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a person's or a service's account.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The user name.") var name: String
        @Flag(help: "A service account (API tokens, no password).") var service = false

        func run() async throws {
            try await callAPI(
                client, .POST, "/v1/users", body: CreateUserRequest(name: name, kind: service ? .service : .user),
                as: CreateUserResponse.self
            ) { reply in
                var rows = [userRow(reply.user)]
                if let password = reply.initialPassword { rows.append(["one-time password", password, "", "", ""]) }
                if let uri = reply.otpauthURI { rows.append(["TOTP enrolment", uri, "", "", ""]) }
                return (userColumns, rows)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await callAPI(
                client, .GET, "/v1/users" + query(after: page.after, limit: page.limit), as: ListResponse<UserView>.self
            ) { ($0.next.map { userColumns + ["next: \($0)"] } ?? userColumns, $0.items.map(userRow)) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an account.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The user's ID.") var id: String

        func run() async throws {
            let user = try typedID(UserID.self, id)
            try await callAPI(client, .GET, "/v1/users/\(user)", as: UserView.self) { (userColumns, [userRow($0)]) }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disable an account; its sessions and tokens end now.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The user's ID.") var id: String

        func run() async throws {
            let user = try typedID(UserID.self, id)
            try await callAPI(client, .POST, "/v1/users/\(user)/disable", as: UserView.self) {
                (userColumns, [userRow($0)])
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable an account.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The user's ID.") var id: String

        func run() async throws {
            let user = try typedID(UserID.self, id)
            try await callAPI(client, .POST, "/v1/users/\(user)/enable", as: UserView.self) {
                (userColumns, [userRow($0)])
            }
        }
    }

    struct Password: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change your password.")
        @OptionGroup var client: ClientOptions
        @Flag(name: .customLong("password-stdin"), help: "Read the current and the new password from standard input.")
        var passwordStdin = false

        func run() async throws {
            let current: String
            let new: String
            if passwordStdin {
                guard let first = readLine(), let second = readLine() else {
                    throw CLIError("give the current and the new password on two lines")
                }
                (current, new) = (first, second)
            } else {
                current = try Terminal.prompt("Current password: ", echo: false)
                new = try Terminal.prompt("New password (12 characters or more): ", echo: false)
                guard try Terminal.prompt("New password again: ", echo: false) == new else {
                    throw CLIError("the new passwords differ")
                }
            }
            try await callAPI(
                client, .POST, "/v1/me/password",
                body: ChangePasswordRequest(currentPassword: current, newPassword: new))
            StandardStreams.line("password changed")
        }
    }

    struct MFA: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mfa", abstract: "Multi-factor authentication.", subcommands: [Enroll.self])

        struct Enroll: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Enrol a new authenticator (proven with a code from the current one).")
            @OptionGroup var client: ClientOptions
            @Option(help: "A current one-time code.") var code: String

            func run() async throws {
                try await callAPI(
                    client, .POST, "/v1/me/mfa", body: EnrollMFARequest(code: code), as: EnrollMFAResponse.self
                ) {
                    (["otpauth uri"], [[$0.otpauthURI]])
                }
            }
        }
    }
}

func bindingRow(_ binding: RoleBindingView) -> [String] {
    [binding.id.rawValue, binding.user.rawValue, binding.role.rawValue, binding.scope.description]
}

struct RoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role", abstract: "Grant, revoke and list roles.",
        subcommands: [Grant.self, Revoke.self, List.self])

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Grant a role in a scope.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The user's ID.") var user: String
        @Argument(help: "The role: \(Role.allCases.map(\.rawValue).joined(separator: ", ")).") var role: String
        @Option(help: "platform, tenant:<tenant id> or project:<tenant id>/<project id>.") var scope: String

        func run() async throws {
            guard let role = Role(rawValue: role) else { throw CLIError("unknown role '\(role)'") }
            guard let scope = Scope(scope) else { throw CLIError("'\(scope)' is not a scope") }
            let request = GrantRoleRequest(user: try typedID(UserID.self, user), role: role, scope: scope)
            try await callAPI(client, .POST, "/v1/role-bindings", body: request, as: RoleBindingView.self) {
                (["id", "user", "role", "scope"], [bindingRow($0)])
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a role binding.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The role binding's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .DELETE, "/v1/role-bindings/\(try typedID(RoleBindingID.self, id))")
            StandardStreams.line("revoked \(id)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List role bindings.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await callAPI(
                client, .GET, "/v1/role-bindings" + query(after: page.after, limit: page.limit),
                as: ListResponse<RoleBindingView>.self
            ) { (["id", "user", "role", "scope"], $0.items.map(bindingRow)) }
        }
    }
}
