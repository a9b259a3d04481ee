import AsyncHTTPClient
import CaduceusCore
import Foundation
import Identity
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing

/// Sends 10,000 random and mutated requests over TLS to the real server, across all routes, with and
/// without credentials; then checks that no answer was a 5xx (other than a deliberate 503), that the server
/// still answers, and that its audit log verifies.
struct FuzzTests {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let routes: [(HTTPMethod, String)] = [
        (.GET, "/healthz"), (.GET, "/readyz"), (.GET, "/v1/openapi.json"), (.POST, "/v1/sessions"),
        (.DELETE, "/v1/sessions/current"), (.GET, "/v1/me"), (.POST, "/v1/me/password"), (.POST, "/v1/me/mfa"),
        (.GET, "/v1/users"), (.POST, "/v1/users"), (.GET, "/v1/users/{id}"), (.POST, "/v1/users/{id}/disable"),
        (.POST, "/v1/users/{id}/enable"), (.GET, "/v1/role-bindings"), (.POST, "/v1/role-bindings"),
        (.DELETE, "/v1/role-bindings/{id}"), (.GET, "/v1/tokens"), (.POST, "/v1/tokens"), (.DELETE, "/v1/tokens/{id}"),
        (.GET, "/v1/tenants"), (.POST, "/v1/tenants"), (.GET, "/v1/tenants/{id}"), (.GET, "/v1/projects"),
        (.POST, "/v1/projects"), (.GET, "/v1/projects/{id}"), (.GET, "/v1/break-glass"), (.POST, "/v1/break-glass"),
        (.POST, "/v1/break-glass/{id}/review"),
    ]

    static let samples: [String] = [
        #"{"user":"admin","password":"not the password","code":"123456"}"#,
        #"{"name":"fuzz-user","kind":"user"}"#, #"{"name":"fuzz-tenant"}"#,
        #"{"tenant":"tnt-0123456789abcdef","name":"p"}"#,
        #"{"user":"usr-00","role":"researcher","scope":"platform"}"#,
        #"{"user":"usr-00","name":"t","scope":"project:tnt-1/prj-2","days":3}"#,
        #"{"tenant":"tnt-1","reason":"a reason long enough to pass","minutes":5}"#, #"{"note":"ok"}"#,
        #"{"currentPassword":"a","newPassword":"bbbbbbbbbbbbbbbb"}"#, #"{"code":"000000"}"#,
        "[]", "null", "{}", #"{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":1}}}}}}}}}}"#,
    ]

    static func mutate(_ text: String, _ random: inout SplitMix) -> [UInt8] {
        var bytes = Array(text.utf8)
        switch Int.random(in: 0..<9, using: &random) {
        case 0: return bytes
        case 1 where !bytes.isEmpty:
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
        case 2 where !bytes.isEmpty: bytes.removeLast(Int.random(in: 1...bytes.count, using: &random))
        case 3: bytes = Array(text.replacingOccurrences(of: "}", with: #","extra":true}"#).utf8)
        case 4:
            bytes =
                Array(#"{"name":""#.utf8) + [UInt8](repeating: 0x61, count: Int.random(in: 4000...9000, using: &random))
                + Array(#""}"#.utf8)
        case 5: bytes = [0x7B, 0x22, 0xC3, 0x28, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D]
        case 6:
            bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        case 7: bytes = Array(text.replacingOccurrences(of: "\"", with: "").utf8)
        default:
            bytes = Array(
                text.replacingOccurrences(of: "1", with: "\"1\"").replacingOccurrences(of: "true", with: "[]").utf8)
        }
        return bytes
    }

    struct FuzzRequest: Sendable {
        var method: HTTPMethod
        var path: String
        var headers: [(String, String)]
        var body: [UInt8]?
    }

    /// `count` random requests from a fixed seed: a route (or a path outside the table), any method, good,
    /// bad or no credentials, any content type, and a valid, mutated or oversize body.
    static func requests(_ count: Int, ids: [String], token: String) -> [FuzzRequest] {
        var random = SplitMix(state: 0xF00D)
        let extraPaths = [
            "/", "/v2/users", "/v1", "/v1/users/", "/v1//users", "/v1/users?limit=-1", "/v1/users?limit=abc",
            "/v1/users?after=" + String(repeating: "z", count: 500), "/v1/projects?tenant=nope", "/metrics",
            "/v1/me/../users", "/v1/users/%00", "/v1/tenants/%F0%9F%98%80",
        ]
        return (0..<count).map { i in
            let (routeMethod, routePath) = routes.randomElement(using: &random)!
            var path = routePath.replacingOccurrences(of: "{id}", with: ids.randomElement(using: &random)!)
            if i % 17 == 0 { path = extraPaths.randomElement(using: &random)! }
            let methods: [HTTPMethod] = [routeMethod, routeMethod, routeMethod, .GET, .POST, .DELETE, .PUT, .PATCH]
            let method = methods.randomElement(using: &random)!
            var headers: [(String, String)] = []
            switch Int.random(in: 0..<6, using: &random) {
            case 0, 1, 2: headers.append(("Authorization", "Bearer \(token)"))
            case 3: headers.append(("Authorization", "Bearer cds_" + String(repeating: "A", count: 43)))
            case 4:
                headers.append(
                    (
                        "Authorization",
                        ["Basic Zm9vOmJhcg==", "Bearer", "Bearer x y", "bearer x"].randomElement(using: &random)!
                    ))
            default: break
            }
            let contentType = [
                "application/json", "application/json; charset=utf-8", "text/plain",
                "application/x-www-form-urlencoded", "",
            ]
            .randomElement(using: &random)!
            if !contentType.isEmpty { headers.append(("Content-Type", contentType)) }
            if Int.random(in: 0..<10, using: &random) == 0 {
                headers.append(("Idempotency-Key", "key-\(Int.random(in: 0..<5, using: &random))"))
            }
            var body: [UInt8]?
            if method == .POST || method == .PUT || Int.random(in: 0..<4, using: &random) == 0 {
                body = mutate(samples.randomElement(using: &random)!, &random)
            }
            if i % 1000 == 999 {
                return FuzzRequest(
                    method: .POST, path: "/v1/tenants",
                    headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                    body: [UInt8](repeating: 0x7B, count: (1 << 20) + 10))
            }
            // The fuzzer's own session must survive: it never logs itself out.
            if path.hasPrefix("/v1/sessions/current") && method == .DELETE {
                headers.removeAll { $0.0 == "Authorization" }
            }
            return FuzzRequest(method: method, path: path, headers: headers, body: body)
        }
    }

    @Test("10,000 random and mutated requests over TLS: no 5xx but 503, the server still answers, the log verifies")
    func fuzz() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let data = scratch.path + "/data"
        let server = try TestServer(data: data)
        defer { server.stop() }
        let admin = ["CADUCEUS_LOGIN_FILE": scratch.path + "/login.json"]
        let bootstrap = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: data + "/bootstrap-admin.json")))
                as? [String: Any])
        let password = try #require(bootstrap["password"] as? String)
        let secret = try #require(bootstrap["totpSecret"] as? String)
        let totp = TOTP(secret: Base32.decode(secret) ?? [])
        let step = TOTP.step(at: SystemWallClock().now())
        func login(_ password: String, code: String, user: String = "admin") throws -> String {
            let result = try CLI.run(
                [
                    "login", "--server", server.url, "--ca-cert", data + "/tls/ca.pem", "--user", user,
                    "--password-stdin",
                ],
                input: Data("\(password)\n\(code)\n".utf8), environment: admin)
            #expect(result.status == 0, "\(result.stderr)")
            let file = try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: scratch.path + "/login.json")))
            return try #require((file as? [String: Any])?["token"] as? String)
        }
        _ = try login(password, code: totp.code(step: step))
        #expect(
            try CLI.run(
                ["user", "password", "--password-stdin"], input: Data("\(password)\nfuzzing admin password\n".utf8),
                environment: admin
            ).status == 0)
        let token = try login("fuzzing admin password", code: totp.code(step: step + 1))
        let tenant = try CLI.run(["tenant", "create", "fuzz", "--output", "json"], environment: admin)
        // A second account checks afterwards that the server still serves real users.
        let created = try CLI.run(["user", "create", "spare", "--output", "json"], environment: admin)
        let spareAccount = try #require(try JSONSerialization.jsonObject(with: created.stdout) as? [String: Any])
        let sparePassword = try #require(spareAccount["initialPassword"] as? String)
        let spareURI = try #require(spareAccount["otpauthURI"] as? String)
        let spareTOTP = TOTP(
            secret: Base32.decode(String(spareURI.split(separator: "secret=")[1].prefix { $0 != "&" })) ?? [])
        _ = try login(sparePassword, code: spareTOTP.code(step: step), user: "spare")
        #expect(
            try CLI.run(
                ["user", "password", "--password-stdin"],
                input: Data("\(sparePassword)\nspare account password\n".utf8),
                environment: admin
            ).status == 0)
        let spare = try login("spare account password", code: spareTOTP.code(step: step + 1), user: "spare")
        let tenantID = try #require(
            (try JSONSerialization.jsonObject(with: tenant.stdout) as? [String: Any])?["id"] as? String)
        let ids = [
            tenantID, bootstrap["userID"] as? String ?? "usr-1", "usr-", "tnt-zz", "..",
            "usr-" + String(repeating: "a", count: 300), "prj-0", "rb-1", "tok-2", "bg-3",
        ]

        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(data + "/tls/ca.pem"))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        let requests = Self.requests(10_000, ids: ids, token: token)
        let url = server.url
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var seen: [Int] = []
                    for request in requests[(worker * 1250)..<((worker + 1) * 1250)] {
                        var outgoing = HTTPClientRequest(url: url + request.path)
                        outgoing.method = request.method
                        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
                        if let body = request.body { outgoing.body = .bytes(ByteBuffer(bytes: body)) }
                        do {
                            let response = try await client.execute(outgoing, timeout: .seconds(60))
                            _ = try await response.body.collect(upTo: 16 << 20)
                            seen.append(Int(response.status.code))
                        } catch is HTTPClientError {
                            // The client refused to send it (e.g. a malformed URL): nothing reached the server.
                            seen.append(0)
                        }
                    }
                    return seen
                }
            }
            var all: [Int] = []
            for try await part in group { all += part }
            return all
        }
        var health = HTTPClientRequest(url: url + "/healthz")
        health.method = .GET
        #expect(try await client.execute(health, timeout: .seconds(10)).status == .ok)
        var me = HTTPClientRequest(url: url + "/v1/me")
        me.headers.add(name: "Authorization", value: "Bearer \(spare)")
        #expect(try await client.execute(me, timeout: .seconds(10)).status == .ok)
        try await client.shutdown()

        let serverErrors = statuses.filter { $0 >= 500 && $0 != 503 }
        #expect(serverErrors.isEmpty, "\(serverErrors.count) answers were 5xx")
        #expect(statuses.count == 10_000)
        #expect(statuses.filter { $0 == 0 }.count < 100)
        for expected in [400, 401, 404, 413] {
            #expect(statuses.contains(expected), "no \(expected) among the answers")
        }
        server.stop()
        let verify = try CLI.run(["audit", "verify", "--log", data + "/audit", "--vkey", data + "/keys/audit.vkey"])
        #expect(verify.status == 0, "\(verify.stderr)")
    }
}
