import CaduceusCore
import ControlPlane
import HTTPTypes
import Hummingbird
import Identity
import Scheduling

extension APIRoutes {
    /// Enrolling remote node agents, on the API port.
    static let enrolment: [RouteSpec] = [
        .init(
            method: .post, path: "/v1/nodes/{id}/join-token",
            summary: "Create a one-time join token for a node's agent (shown once)",
            access: .permission(.fleetManage), body: CreateJoinTokenRequest.self),
        .init(
            method: .get, path: "/v1/ca.pem",
            summary: "The internal CA's certificate (PEM; agents check it against their join token)", access: .open),
        .init(
            method: .post, path: "/v1/agents/enroll",
            summary: "Enrol a node agent with a join token and a certificate request", access: .open,
            body: EnrollAgentRequest.self),
    ]

    /// The routes of the agent listener (mutual TLS; `{id}` is the node the certificate was issued to).
    public static let agentListener: [RouteSpec] = [
        .init(
            method: .post, path: "/v1/agents/{id}/sync",
            summary: "Heartbeat: report the runs the node holds, get its orders (waits for new ones)",
            access: .nodeCertificate, body: AgentSyncRequest.self),
        .init(
            method: .post, path: "/v1/agents/{id}/starting",
            summary: "Ask whether a run may start (it is recorded as running first)", access: .nodeCertificate,
            body: AgentStartingRequest.self),
        .init(
            method: .post, path: "/v1/agents/{id}/ended", summary: "Report how a run ended", access: .nodeCertificate,
            body: AgentEndedRequest.self),
        .init(
            method: .post, path: "/v1/agents/{id}/scrubs", summary: "Report a GPU scrub", access: .nodeCertificate,
            body: AgentScrubRequest.self),
        .init(
            method: .post, path: "/v1/agents/{id}/sanitization", summary: "Report the node's sanitisation",
            access: .nodeCertificate, body: AgentSanitizationRequest.self),
        .init(
            method: .post, path: "/v1/agents/{id}/certificate",
            summary: "Renew the node's certificate (the old one is refused from then on)", access: .nodeCertificate,
            body: RenewAgentCertificateRequest.self),
        .init(
            method: .get, path: "/v1/agents/{id}/jobs/{job}/inputs",
            summary: "The dataset objects a run reads (attempt: the run)", access: .nodeCertificate,
            filters: ["attempt"]),
        .init(
            method: .get, path: "/v1/agents/{id}/jobs/{job}/inputs/{object}",
            summary: "One input's plaintext, verified chunk by chunk, audited as the job's read",
            access: .nodeCertificate, filters: ["attempt"]),
        .init(
            method: .post, path: "/v1/agents/{id}/jobs/{job}/logs",
            summary: "Append a job's output (raw bytes at offset; stream stdout or stderr)", access: .nodeCertificate,
            filters: ["stream", "offset"]),
    ]
}

extension RouteHandlers {
    func registerEnrolment(_ v1: RouterGroup<APIContext>, _ authed: RouterGroup<APIContext>, limiter: RateLimiter) {
        post(authed, "/nodes/:id/join-token") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createJoinToken(
                    context.info, try Self.id(NodeID.self, context),
                    try await JSONBody.decode(CreateJoinTokenRequest.self, from: request)))
        }
        v1.get("/ca.pem") { [caPEM] _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/x-pem-file"],
                body: .init(byteBuffer: .init(string: caPEM)))
        }
        v1.group("/agents/enroll").add(middleware: LoginThrottleMiddleware(limiter: limiter))
            .post { [plane] request, context in
                let input = try await JSONBody.decode(EnrollAgentRequest.self, from: request)
                return try JSONBody.response(try await plane.enrollAgent(context.info, input), status: .created)
            }
    }
}
