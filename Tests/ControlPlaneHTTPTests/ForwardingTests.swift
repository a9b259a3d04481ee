import AuditLog
import CaduceusTesting
import ControlPlane
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import ControlPlaneHTTP

/// The client's address a follower forwards is believed only when the request proves it came from a replica.
struct ForwardingTests {
    @Test("X-Caduceus-Forwarded-For counts only with the replicas' key; anyone else's is ignored")
    func forwardedAddress() async throws {
        try await Harness.with { h in
            let rootKey = SymmetricKey(size: .bits256)
            let key = ForwardingKey(rootKey: rootKey)
            let router = try CaduceusServer.makeRouter(plane: h.plane, logger: Logger(label: "test"), forwarding: key)
            let app = Application(router: router)
            try await app.test(.router) { client in
                for (presented, address) in [
                    (key.value, "203.0.113.9"),
                    (ForwardingKey(rootKey: SymmetricKey(size: .bits256)).value, "203.0.113.10"),
                    ("", "203.0.113.11"),
                ] {
                    var headers: HTTPFields = [.forwardedFor: address]
                    if !presented.isEmpty { headers[.replicaKey] = presented }
                    let response = try await client.execute(uri: "/v1/me", method: .get, headers: headers)
                    #expect(response.status == .unauthorized)
                }
            }
            let addresses = try await h.events().filter { $0.action == "http.get" }.map(\.sourceAddress)
            #expect(addresses.contains("203.0.113.9"))
            #expect(!addresses.contains("203.0.113.10") && !addresses.contains("203.0.113.11"), "\(addresses)")
        }
    }
}
