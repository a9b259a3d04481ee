import CaduceusTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
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
}
