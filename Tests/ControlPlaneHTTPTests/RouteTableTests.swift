import CaduceusTesting
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import ControlPlaneHTTP

struct RouteTableTests {
    static var checkedIn: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("openapi/caduceus-v1.json")
    }

    @Test("every registered route is in the route table, and every table entry is registered")
    func routerMatchesTable() async throws {
        try await Harness.with { h in
            let router = try CaduceusServer.makeRouter(plane: h.plane, logger: Logger(label: "test"))
            let registered = Set(router.routes.map { "\($0.method.rawValue) \($0.path.description)" })
            let table = Set(APIRoutes.all.map { "\($0.method.rawValue) \($0.path)" })
            #expect(
                registered == table,
                "only registered: \(registered.subtracting(table)); only in table: \(table.subtracting(registered))")
        }
    }

    /// Every path parameter as `{id}`, so that router and table paths compare.
    static func normalised(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map {
            $0.hasPrefix("{") || $0.hasPrefix(":") ? "{id}" : String($0)
        }.joined(separator: "/")
    }

    @Test("the agent listener registers exactly the agent routes of the table")
    func agentRouterMatchesTable() async throws {
        try await Harness.with { h in
            let directory = FileManager.default.temporaryDirectory.path + "/caduceus-ca-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let ca = try InternalCA.loadOrCreate(directory: directory, hostNames: ["localhost"])
            let agents = try await h.plane.enableRemoteAgents(
                issuer: ca, settings: .init(logDirectory: directory + "/logs"))
            let router = AgentListener.makeRouter(
                plane: h.plane, agents: agents, peers: PeerRegistry(), logger: Logger(label: "test"))
            let registered = Set(router.routes.map { "\($0.method.rawValue) \($0.path.description)" })
            let table = Set(
                APIRoutes.agentListener.map {
                    "\($0.method.rawValue) \(Self.normalised($0.path))"
                })
            #expect(registered.count == APIRoutes.agentListener.count)
            #expect(
                Set(registered.map(Self.normalised)) == table,
                "only registered: \(registered.subtracting(table)); only in table: \(table.subtracting(registered))")
        }
    }

    @Test("the checked-in OpenAPI document is current, lists every route, and is what the server serves")
    func openAPI() async throws {
        let generated = try OpenAPIDocument.json()
        let file = try Data(contentsOf: Self.checkedIn)
        #expect(Array(file) == generated, "regenerate with: swift run caduceus openapi > openapi/caduceus-v1.json")
        let document = try #require(try JSONSerialization.jsonObject(with: file) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        for route in APIRoutes.all {
            #expect(paths[route.path]?[route.method.rawValue.lowercased()] != nil, "\(route.method) \(route.path)")
        }
        try await Harness.with { h in
            let app = Application(router: try CaduceusServer.makeRouter(plane: h.plane, logger: Logger(label: "test")))
            try await app.test(.router) { client in
                let response = try await client.execute(uri: "/v1/openapi.json", method: .get)
                #expect(response.status == .ok)
                #expect(Array(response.body.readableBytesView) == generated)
            }
        }
    }

    @Test("metrics are served to loopback peers only")
    func metricsLoopbackOnly() throws {
        #expect(ServerMetrics.isLoopback(try SocketAddress(ipAddress: "127.0.0.1", port: 1)))
        #expect(ServerMetrics.isLoopback(try SocketAddress(ipAddress: "::1", port: 1)))
        #expect(!ServerMetrics.isLoopback(try SocketAddress(ipAddress: "10.1.2.3", port: 1)))
        #expect(!ServerMetrics.isLoopback(try SocketAddress(ipAddress: "128.0.0.1", port: 1)))
        #expect(!ServerMetrics.isLoopback(nil))
        let metrics = ServerMetrics(trail: nil)
        metrics.record(route: "v1.me", status: 200, duration: .milliseconds(3))
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains(#"caduceus_http_requests_total{route="v1.me",status="200"} 1"#))
        #expect(text.contains("caduceus_http_request_duration_seconds_bucket"))
    }
}
