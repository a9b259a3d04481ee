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

    @Test("a follower answers itself exactly the routes of APIRoutes.anyReplica; the rest goes to the leader")
    func followerRoutes() {
        let matcher = RouteMatcher(APIRoutes.anyReplica)
        for (method, path) in [
            (HTTPRequest.Method.get, "/v1/me"), (.post, "/v1/sessions"), (.delete, "/v1/sessions/current"),
            (.post, "/v1/tenants"), (.get, "/v1/tenants/ten-123"), (.post, "/v1/users/usr-1/disable"),
            (.delete, "/v1/role-bindings/rb-9"), (.post, "/v1/break-glass/bg-1/review"), (.get, "/v1/openapi.json"),
            (.get, "/v1/jobs"), (.get, "/v1/jobs/job-1"),
        ] {
            #expect(matcher.matches(method, path), "\(method) \(path)")
        }
        for (method, path) in [
            (HTTPRequest.Method.get, "/metrics"), (.post, "/v1/jobs"), (.get, "/v1/nodes"), (.get, "/v1/datasets"),
            (.put, "/v1/tenants"), (.get, "/v1/tenants/ten-1/extra"), (.get, "/v1"), (.get, "/v1/users/a/disable"),
            (.post, "/v1/jobs/job-1/cancel"), (.get, "/v1/jobs/job-1/why"), (.get, "/v1/jobs/job-1/logs"),
            (.get, "/v1/quotas"), (.delete, "/v1/jobs/job-1"),
        ] {
            #expect(!matcher.matches(method, path), "\(method) \(path)")
        }
        // Every route a follower answers is one of the API's, and needs nothing the leader alone runs.
        let all = Set(APIRoutes.all.map { "\($0.method) \($0.path)" })
        #expect(APIRoutes.anyReplica.allSatisfy { all.contains("\($0.method) \($0.path)") })
        #expect(!APIRoutes.anyReplica.contains { $0.path.hasPrefix("/v1/nodes") || $0.path.hasPrefix("/v1/datasets") })
        // Of the jobs' routes, only the two reads: submitting, cancelling, `why` and logs need the scheduler.
        let jobs = APIRoutes.anyReplica.filter { $0.path.hasPrefix("/v1/jobs") }.map { "\($0.method) \($0.path)" }
        #expect(jobs.sorted() == ["GET /v1/jobs", "GET /v1/jobs/{id}"])
    }
}
