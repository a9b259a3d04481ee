import CaduceusCore
import ControlPlane
import HTTPTypes
import Hummingbird
import Scheduling

extension APIRoutes {
    /// Regions, sites, fabrics, nodes, quotas and jobs.
    static let fleet: [RouteSpec] = [
        .init(
            method: .post, path: "/v1/regions", summary: "Create a region", access: .permission(.fleetManage),
            body: CreateRegionRequest.self),
        .init(method: .get, path: "/v1/regions", summary: "List regions", access: .permission(.fleetRead)),
        .init(method: .get, path: "/v1/regions/{id}", summary: "Show a region", access: .permission(.fleetRead)),
        .init(
            method: .post, path: "/v1/sites", summary: "Create a site in a region", access: .permission(.fleetManage),
            body: CreateSiteRequest.self),
        .init(
            method: .get, path: "/v1/sites", summary: "List sites", access: .permission(.fleetRead),
            filters: ["region"]),
        .init(method: .get, path: "/v1/sites/{id}", summary: "Show a site", access: .permission(.fleetRead)),
        .init(
            method: .post, path: "/v1/fabrics", summary: "Create a fabric in a site",
            access: .permission(.fleetManage), body: CreateFabricRequest.self),
        .init(
            method: .get, path: "/v1/fabrics", summary: "List fabrics", access: .permission(.fleetRead),
            filters: ["site"]),
        .init(method: .get, path: "/v1/fabrics/{id}", summary: "Show a fabric", access: .permission(.fleetRead)),
        .init(
            method: .post, path: "/v1/nodes", summary: "Register a GPU node", access: .permission(.fleetManage),
            body: CreateNodeRequest.self),
        .init(
            method: .get, path: "/v1/nodes", summary: "List nodes", access: .permission(.fleetRead),
            filters: ["tenant"]),
        .init(method: .get, path: "/v1/nodes/{id}", summary: "Show a node", access: .permission(.fleetRead)),
        .init(
            method: .get, path: "/v1/cluster",
            summary: "The control plane's replicas, leader, database and Slurm cluster", access: .permission(.fleetRead)
        ),
        .init(
            method: .get, path: "/v1/nodes/{id}/sanitization-records",
            summary: "A node's sanitisations (GPUs scrubbed, scratch erased)", access: .permission(.fleetRead)),
        .init(
            method: .post, path: "/v1/nodes/{id}/activate", summary: "Put a registered node into service",
            access: .permission(.fleetManage)),
        .init(
            method: .post, path: "/v1/nodes/{id}/cordon", summary: "Stop new work on a node",
            access: .permission(.fleetManage)),
        .init(
            method: .post, path: "/v1/nodes/{id}/uncordon", summary: "Let new work onto a cordoned node",
            access: .permission(.fleetManage)),
        .init(
            method: .post, path: "/v1/nodes/{id}/drain", summary: "Move the work off a node",
            access: .permission(.fleetManage)),
        .init(
            method: .post, path: "/v1/nodes/{id}/assign",
            summary: "Give a node to a tenant (through draining and sanitising if it held another's work)",
            access: .permission(.fleetManage), body: AssignNodeRequest.self),
        .init(
            method: .post, path: "/v1/nodes/{id}/retire", summary: "Take a node out of service for good",
            access: .permission(.fleetManage)),
        .init(
            method: .get, path: "/v1/quotas", summary: "List project quotas", access: .permission(.quotaRead),
            filters: ["tenant"]),
        .init(
            method: .get, path: "/v1/quotas/{id}", summary: "Show a project's quota and use (id: the project)",
            access: .permission(.quotaRead)),
        .init(
            method: .put, path: "/v1/quotas/{id}", summary: "Set a project's quota (id: the project)",
            access: .permission(.quotaManage), body: SetQuotaRequest.self),
        .init(
            method: .post, path: "/v1/jobs", summary: "Submit a job (refused if it could never run)",
            access: .permission(.jobSubmit), body: SubmitJobRequest.self),
        .init(
            method: .get, path: "/v1/jobs", summary: "List jobs", access: .permission(.jobRead),
            filters: ["project", "tenant", "state"]),
        .init(method: .get, path: "/v1/jobs/{id}", summary: "Show a job", access: .permission(.jobRead)),
        .init(
            method: .post, path: "/v1/jobs/{id}/cancel", summary: "Cancel a job", access: .permission(.jobCancel)),
        .init(
            method: .get, path: "/v1/jobs/{id}/why", summary: "Why a job waits, in plain words",
            access: .permission(.jobRead)),
        .init(
            method: .get, path: "/v1/jobs/{id}/logs", summary: "A piece of a job's output (from offset, up to limit)",
            access: .permission(.jobInspect), filters: ["stream", "offset", "limit"]),
    ]
}

extension RouteHandlers {
    func registerFleet(_ authed: RouterGroup<APIContext>) {
        post(authed, "/regions") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createRegion(
                    context.info, try await JSONBody.decode(CreateRegionRequest.self, from: request)),
                status: .created)
        }
        authed.get("/regions") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listRegions(context.info, after: page.after, limit: page.limit))
        }
        authed.get("/regions/:id") { [plane] _, context in
            try JSONBody.response(try await plane.showRegion(context.info, try Self.id(RegionID.self, context)))
        }
        post(authed, "/sites") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createSite(
                    context.info, try await JSONBody.decode(CreateSiteRequest.self, from: request)),
                status: .created)
        }
        authed.get("/sites") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listSites(
                    context.info, region: try Self.filter(RegionID.self, "region", request), after: page.after,
                    limit: page.limit))
        }
        authed.get("/sites/:id") { [plane] _, context in
            try JSONBody.response(try await plane.showSite(context.info, try Self.id(SiteID.self, context)))
        }
        post(authed, "/fabrics") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createFabric(
                    context.info, try await JSONBody.decode(CreateFabricRequest.self, from: request)),
                status: .created)
        }
        authed.get("/fabrics") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listFabrics(
                    context.info, site: try Self.filter(SiteID.self, "site", request), after: page.after,
                    limit: page.limit))
        }
        authed.get("/fabrics/:id") { [plane] _, context in
            try JSONBody.response(try await plane.showFabric(context.info, try Self.id(FabricID.self, context)))
        }
        registerNodes(authed)
    }

    private func registerNodes(_ authed: RouterGroup<APIContext>) {
        post(authed, "/nodes") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createNode(
                    context.info, try await JSONBody.decode(CreateNodeRequest.self, from: request)),
                status: .created)
        }
        authed.get("/nodes") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listNodes(
                    context.info, tenant: try Self.filter(TenantID.self, "tenant", request), after: page.after,
                    limit: page.limit))
        }
        authed.get("/cluster") { [plane, clusterStatus] _, context in
            try JSONBody.response(try await plane.clusterStatus(context.info, gather: clusterStatus))
        }
        authed.get("/nodes/:id") { [plane] _, context in
            try JSONBody.response(try await plane.showNode(context.info, try Self.id(NodeID.self, context)))
        }
        authed.get("/nodes/:id/sanitization-records") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listSanitizations(
                    context.info, try Self.id(NodeID.self, context), after: page.after, limit: page.limit))
        }
        let actions: [(String, @Sendable (ControlPlane) -> (RequestInfo, NodeID) async throws -> NodeView)] = [
            ("activate", { $0.activateNode }), ("cordon", { $0.cordonNode }), ("uncordon", { $0.uncordonNode }),
            ("drain", { $0.drainNode }), ("retire", { $0.retireNode }),
        ]
        for (verb, action) in actions {
            post(authed, "/nodes/:id/\(verb)") { [plane] _, context in
                try JSONBody.reply(try await action(plane)(context.info, try Self.id(NodeID.self, context)))
            }
        }
        post(authed, "/nodes/:id/assign") { [plane] request, context in
            try JSONBody.reply(
                try await plane.assignNode(
                    context.info, try Self.id(NodeID.self, context),
                    try await JSONBody.decode(AssignNodeRequest.self, from: request)))
        }
    }

    /// Reading jobs: answered by any replica, from the shared database.
    func registerJobReads(_ authed: RouterGroup<APIContext>) {
        authed.get("/jobs") { [plane] request, context in
            let page = try JSONBody.page(request)
            let state = try request.uri.queryParameters.get("state").map { text in
                guard let state = JobState(rawValue: String(text)) else {
                    throw Failure.invalid("state: not a job state (pending, placed, running, …)")
                }
                return state
            }
            return try JSONBody.response(
                try await plane.listJobs(
                    context.info, project: try Self.filter(ProjectID.self, "project", request),
                    tenant: try Self.filter(TenantID.self, "tenant", request), state: state, after: page.after,
                    limit: page.limit))
        }
        authed.get("/jobs/:id") { [plane] _, context in
            try JSONBody.response(try await plane.showJob(context.info, try Self.id(JobID.self, context)))
        }
    }

    func registerJobs(_ authed: RouterGroup<APIContext>) {
        authed.get("/quotas") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listQuotas(
                    context.info, tenant: try Self.filter(TenantID.self, "tenant", request), after: page.after,
                    limit: page.limit))
        }
        authed.get("/quotas/:id") { [plane] _, context in
            try JSONBody.response(
                try await plane.showQuota(context.info, project: try Self.id(ProjectID.self, context)))
        }
        authed.put("/quotas/:id") { [plane] request, context in
            try JSONBody.response(
                try await plane.setQuota(
                    context.info, project: try Self.id(ProjectID.self, context),
                    try await JSONBody.decode(SetQuotaRequest.self, from: request)))
        }
        post(authed, "/jobs") { [plane] request, context in
            try JSONBody.reply(
                try await plane.submitJob(
                    context.info, try await JSONBody.decode(SubmitJobRequest.self, from: request)),
                status: .created)
        }
        post(authed, "/jobs/:id/cancel") { [plane] _, context in
            try JSONBody.reply(try await plane.cancelJob(context.info, try Self.id(JobID.self, context)))
        }
        authed.get("/jobs/:id/why") { [plane] _, context in
            try JSONBody.response(try await plane.whyJob(context.info, try Self.id(JobID.self, context)))
        }
        authed.get("/jobs/:id/logs") { [plane] request, context in
            let query = request.uri.queryParameters
            let stream = query.get("stream").map { String($0) } ?? "stdout"
            guard stream == "stdout" || stream == "stderr" else { throw Failure.invalid("stream: stdout or stderr") }
            func number(_ name: String, _ fallback: Int) throws -> Int {
                guard let text = query.get(name) else { return fallback }
                guard let value = Int(text) else { throw Failure.invalid("\(name): not a whole number") }
                return value
            }
            return try JSONBody.response(
                try await plane.jobLogs(
                    context.info, try Self.id(JobID.self, context), stderr: stream == "stderr",
                    offset: try number("offset", 0), limit: try number("limit", 65_536)))
        }
    }

    /// A typed ID from a query parameter, if present; a malformed one is a 400 naming the parameter.
    static func filter<T: TypedID>(_ type: T.Type, _ name: String, _ request: Request) throws -> T? {
        guard let text = request.uri.queryParameters.get(name) else { return nil }
        guard let id = T(rawValue: String(text)) else { throw Failure.invalid("\(name): not a \(T.prefix)- ID") }
        return id
    }
}
