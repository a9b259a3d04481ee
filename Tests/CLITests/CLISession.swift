import Foundation
import Testing

/// People driving a real server through the real CLI, each with a login file of their own.
struct CLISession {
    let scratch: Scratch
    let server: TestServer
    var ca: String { server.data + "/tls/ca.pem" }

    func run(_ args: [String], as who: String, input: String = "") throws -> CLI.Result {
        try CLI.run(
            args, input: Data(input.utf8),
            environment: ["CADUCEUS_LOGIN_FILE": scratch.path + "/\(who).json", "CADUCEUS_SERVER": server.url])
    }

    /// Runs a command with `--output json` and returns its object.
    func json(_ args: [String], as who: String) throws -> [String: Any] {
        // The output flag goes before any `--` that starts a job's command.
        let result = try run(Array(args.prefix(2)) + ["--output", "json"] + args.dropFirst(2), as: who)
        #expect(result.status == 0, "\(args): \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any], "\(args)")
    }

    /// The `id` of what a command created.
    func id(_ args: [String], as who: String) throws -> String {
        try #require(try json(args, as: who)["id"] as? String)
    }

    /// Logs `name` in with its first password and TOTP secret, and sets a password of its own.
    func logIn(_ name: String, password: String, secret: String) throws {
        let login = try run(
            ["login", "--server", server.url, "--ca-cert", ca, "--user", name, "--password-stdin"], as: name,
            input: "\(password)\n\(ServerEndToEndTests.code(secret: secret))\n")
        #expect(login.status == 0, "\(login.stderr)")
        let change = try run(
            ["user", "password", "--password-stdin"], as: name, input: "\(password)\n\(name)'s own new password\n")
        #expect(change.status == 0, "\(change.stderr)")
    }

    /// Logs the bootstrap administrator in as `admin`.
    func logInAdmin() throws {
        let bootstrap = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: server.data + "/bootstrap-admin.json"))) as? [String: Any])
        try logIn(
            "admin", password: try #require(bootstrap["password"] as? String),
            secret: try #require(bootstrap["totpSecret"] as? String))
    }

    /// Creates a person with a role and logs them in.
    func person(_ name: String, role: String, scope: String) throws {
        let created = try json(["user", "create", name], as: "admin")
        let userID = try #require((created["user"] as? [String: Any])?["id"] as? String)
        #expect(try run(["role", "grant", userID, role, "--scope", scope], as: "admin").status == 0)
        try logIn(
            name, password: try #require(created["initialPassword"] as? String),
            secret: ServerEndToEndTests.secret(fromURI: try #require(created["otpauthURI"] as? String)))
    }

    /// Verifies the server's audit log offline and returns its events as JSON lines.
    func verifiedAuditEvents() throws -> String {
        let data = server.data
        let verify = try run(
            ["audit", "verify", "--log", data + "/audit", "--vkey", data + "/keys/audit.vkey"], as: "x")
        #expect(verify.status == 0, "\(verify.stderr)")
        return try run(["audit", "export", "--log", data + "/audit", "--format", "jsonl"], as: "x").text
    }

    /// Gives this machine's node (the server's first) to `tenant` and puts it into service; returns its ID.
    @discardableResult
    func giveLocalNode(to tenant: String) throws -> String {
        let nodes = try json(["node", "list"], as: "admin")
        let node = try #require((nodes["items"] as? [[String: Any]])?.first?["id"] as? String)
        _ = try json(["node", "assign", node, "--tenant", tenant], as: "admin")
        _ = try json(["node", "activate", node], as: "admin")
        return node
    }

    /// A tenant with a project, its researcher `rita` and its tenant admin `tara`; returns their IDs.
    func tenantWithResearcherAndAdmin() throws -> (tenant: String, project: String) {
        try logInAdmin()
        let tenant = try id(["tenant", "create", "st-marys"], as: "admin")
        let project = try id(["project", "create", "--tenant", tenant, "radiology"], as: "admin")
        try person("rita", role: "researcher", scope: "project:\(tenant)/\(project)")
        try person("tara", role: "tenant-admin", scope: "tenant:\(tenant)")
        return (tenant, project)
    }
}
