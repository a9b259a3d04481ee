import ArgumentParser
import CaduceusCore
import ControlPlane
import Foundation
import Identity
import NIOHTTP1

/// `caduceus login`: asks for password and TOTP code, and keeps the session in the login file (0600).
struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login", abstract: "Log in with user name, password and one-time code.")

    @OptionGroup var client: ClientOptions

    @Option(help: "User name.")
    var user: String

    @Flag(name: .customLong("password-stdin"), help: "Read the password (and then the code) from standard input.")
    var passwordStdin = false

    @Option(help: "The one-time code from the authenticator (asked for when absent).")
    var code: String?

    func run() async throws {
        let password: String
        var code = self.code
        if passwordStdin {
            guard let line = readLine(strippingNewline: true) else { throw CLIError("no password on standard input") }
            password = line
            if code == nil { code = readLine(strippingNewline: true) }
        } else {
            password = try Terminal.prompt("Password: ", echo: false)
        }
        let oneTime = try code ?? Terminal.prompt("One-time code: ", echo: true)
        let api = try client.client(requireToken: false)
        defer { Task { await api.shutdown() } }
        let reply = try await api.post(
            "/v1/sessions", LoginRequest(user: user, password: password, code: oneTime), as: LoginResponse.self)
        let caCertificate = client.caCertificate.map { path in
            path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        }
        try LoginFile(server: api.server, token: reply.token, caCertificate: caCertificate, user: user).save()
        await api.shutdown()
        StandardStreams.line(
            "logged in as \(reply.user.name) (\(reply.user.id)); sessions end after \(reply.idleTimeoutMinutes) idle minutes"
        )
        if reply.mustChangePassword {
            StandardStreams.line("this account must set a new password first: caduceus user password")
        }
    }
}

struct LogoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "End the session.")

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let api = try client.client()
        do {
            _ = try await api.send(.DELETE, "/v1/sessions/current")
        } catch {
            await api.shutdown()
            LoginFile.remove()
            throw error
        }
        await api.shutdown()
        LoginFile.remove()
        StandardStreams.line("logged out")
    }
}

struct WhoamiCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show who you are logged in as.")

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let api = try client.client()
        let reply: APIClient.Reply
        do {
            reply = try await api.send(.GET, "/v1/me")
        } catch {
            await api.shutdown()
            throw error
        }
        await api.shutdown()
        let me = try api.decode(MeResponse.self, reply)
        Printer.show(reply.body, client.output) {
            (
                ["user", "id", "kind", "roles"],
                [
                    [
                        me.user.name, me.user.id.rawValue, me.user.kind.rawValue,
                        me.roles.map { "\($0.role.rawValue)@\($0.scope)" }.joined(separator: " "),
                    ]
                ]
            )
        }
    }
}

/// Reads from the terminal.
enum Terminal {
    /// Prints `prompt` and reads a line, without echo when asked.
    static func prompt(_ prompt: String, echo: Bool) throws -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var original = termios()
        let isTerminal = isatty(STDIN_FILENO) == 1 && tcgetattr(STDIN_FILENO, &original) == 0
        if isTerminal && !echo {
            var silent = original
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSANOW, &silent)
        }
        defer {
            if isTerminal && !echo {
                tcsetattr(STDIN_FILENO, TCSANOW, &original)
                FileHandle.standardError.write(Data("\n".utf8))
            }
        }
        guard let line = readLine(strippingNewline: true) else { throw CLIError("no input") }
        return line
    }
}
