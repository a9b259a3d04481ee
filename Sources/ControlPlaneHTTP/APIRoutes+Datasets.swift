import CaduceusCore
import ControlPlane
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat
import Sealing

extension APIRoutes {
    /// Sealed datasets, keys and the PHI access report.
    static let datasets: [RouteSpec] = [
        .init(
            method: .post, path: "/v1/datasets", summary: "Create a dataset (with its data key)",
            access: .permission(.datasetWrite), body: CreateDatasetRequest.self),
        .init(
            method: .get, path: "/v1/datasets", summary: "List datasets", access: .permission(.datasetRead),
            filters: ["tenant", "project"]),
        .init(method: .get, path: "/v1/datasets/{id}", summary: "Show a dataset", access: .permission(.datasetRead)),
        .init(
            method: .get, path: "/v1/datasets/{id}/objects", summary: "List a dataset's objects (metadata)",
            access: .permission(.datasetRead)),
        .init(
            method: .put, path: "/v1/datasets/{id}/objects/{name}",
            summary:
                "Upload an object: raw body, sealed as it arrives (Content-Length or X-Caduceus-Length; optional X-Caduceus-SHA256 and X-Caduceus-Patients)",
            access: .permission(.datasetWrite)),
        .init(
            method: .get, path: "/v1/datasets/{id}/objects/{name}",
            summary: "Download an object (HTTP Range supported); audited before the first byte",
            access: .permission(.phiRead)),
        .init(
            method: .delete, path: "/v1/datasets/{id}/objects/{name}",
            summary: "Delete an object (refused under retention or legal hold, naming the day it becomes deletable)",
            access: .permission(.datasetWrite)),
        .init(
            method: .post, path: "/v1/datasets/{id}/hold", summary: "Set or clear a dataset's legal hold",
            access: .permission(.datasetGovern), body: SetHoldRequest.self),
        .init(
            method: .post, path: "/v1/datasets/{id}/shred",
            summary: "Crypto-shred a dataset after its retention: its data key is destroyed, its objects removed",
            access: .permission(.datasetGovern)),
        .init(
            method: .get, path: "/v1/datasets/{id}/shredding-certificate",
            summary: "The signed certificate of a dataset's shredding (a note the audit verifier key checks)",
            access: .permission(.datasetRead)),
        .init(
            method: .get, path: "/v1/datasets/{id}/lifecycle",
            summary: "The tier moves the dataset's lifecycle rule asks for now (a dry run)",
            access: .permission(.datasetGovern)),
        .init(
            method: .post, path: "/v1/datasets/{id}/lifecycle/apply",
            summary: "Make the tier moves now (copy, verify, switch, delete)", access: .permission(.datasetGovern)),
        .init(
            method: .post, path: "/v1/datasets/{id}/grants",
            summary: "Grant another project of the tenant the reading of a dataset, for a purpose of use",
            access: .permission(.datasetGrant), body: CreateGrantRequest.self),
        .init(
            method: .get, path: "/v1/datasets/{id}/grants", summary: "A dataset's grants",
            access: .permission(.datasetRead)),
        .init(
            method: .post, path: "/v1/dataset-grants/{id}/revoke", summary: "End a grant at once",
            access: .permission(.datasetGrant)),
        .init(
            method: .get, path: "/v1/keys", summary: "A tenant's KEK versions and data keys (tenant: required)",
            access: .permission(.keyRead), filters: ["tenant"]),
        .init(
            method: .post, path: "/v1/keys/{id}/rotate",
            summary: "Rotate a tenant's KEK (id: the tenant); data keys are re-wrapped, objects untouched",
            access: .permission(.keyManage)),
        .init(
            method: .post, path: "/v1/reports/phi-access",
            summary: "Every access to data holding a patient, from the verified audit trail",
            access: .permission(.auditRead), body: PHIAccessReportRequest.self),
    ]
}

extension HTTPField.Name {
    static let caduceusLength = Self("X-Caduceus-Length")!
    static let caduceusSHA256 = Self("X-Caduceus-SHA256")!
    static let caduceusPatients = Self("X-Caduceus-Patients")!
}

extension RouteHandlers {
    func registerDatasets(_ authed: RouterGroup<APIContext>) {
        post(authed, "/datasets") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createDataset(
                    context.info, try await JSONBody.decode(CreateDatasetRequest.self, from: request)),
                status: .created)
        }
        authed.get("/datasets") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listDatasets(
                    context.info, tenant: try Self.filter(TenantID.self, "tenant", request),
                    project: try Self.filter(ProjectID.self, "project", request), after: page.after, limit: page.limit))
        }
        authed.get("/datasets/:id") { [plane] _, context in
            try JSONBody.response(try await plane.showDataset(context.info, try Self.id(DatasetID.self, context)))
        }
        authed.get("/datasets/:id/objects") { [plane] request, context in
            let page = try JSONBody.page(request)
            return try JSONBody.response(
                try await plane.listObjects(
                    context.info, try Self.id(DatasetID.self, context), after: page.after, limit: page.limit))
        }
        authed.put("/datasets/:id/objects/:name") { [plane] request, context in
            let headers = request.headers
            let length = (headers[.contentLength] ?? headers[.caduceusLength]).flatMap { Int64($0) }
            let patients =
                headers[.caduceusPatients].map { $0.split(separator: ",").map(String.init).filter { !$0.isEmpty } }
                ?? []
            let object = try await plane.uploadObject(
                context.info, dataset: try Self.id(DatasetID.self, context), name: context.parameters.get("name") ?? "",
                length: length, sha256: headers[.caduceusSHA256], patients: patients,
                body: request.body.map { $0.readableBytesView })
            return try JSONBody.response(object, status: .created)
        }
        authed.get("/datasets/:id/objects/:name") { [plane] request, context in
            let range = try Self.byteRange(request.headers[.range])
            let opened = try await plane.openObject(
                context.info, dataset: try Self.id(DatasetID.self, context), name: context.parameters.get("name") ?? "",
                range: range)
            return Self.stream(
                opened.reader, opened.range, sha256: opened.object.sha256, partial: range != nil)
        }
        authed.delete("/datasets/:id/objects/:name") { [plane] _, context in
            try await plane.deleteObject(
                context.info, dataset: try Self.id(DatasetID.self, context), name: context.parameters.get("name") ?? "")
            return Response(status: .noContent)
        }
        post(authed, "/datasets/:id/hold") { [plane] request, context in
            try JSONBody.reply(
                try await plane.setLegalHold(
                    context.info, try Self.id(DatasetID.self, context),
                    hold: try await JSONBody.decode(SetHoldRequest.self, from: request).hold))
        }
        post(authed, "/datasets/:id/shred") { [plane] _, context in
            let id = try Self.id(DatasetID.self, context)
            return try JSONBody.reply(
                ShreddingView(dataset: id, certificate: try await plane.shredDataset(context.info, id)))
        }
        authed.get("/datasets/:id/shredding-certificate") { [plane] _, context in
            Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        string: try await plane.shreddingCertificate(context.info, try Self.id(DatasetID.self, context))
                    )))
        }
        authed.get("/datasets/:id/lifecycle") { [plane] _, context in
            try JSONBody.response(try await plane.lifecyclePlan(context.info, try Self.id(DatasetID.self, context)))
        }
        post(authed, "/datasets/:id/lifecycle/apply") { [plane] _, context in
            try JSONBody.reply(try await plane.lifecycleApply(context.info, try Self.id(DatasetID.self, context)))
        }
        post(authed, "/datasets/:id/grants") { [plane] request, context in
            try JSONBody.reply(
                try await plane.createGrant(
                    context.info, try Self.id(DatasetID.self, context),
                    try await JSONBody.decode(CreateGrantRequest.self, from: request)),
                status: .created)
        }
        authed.get("/datasets/:id/grants") { [plane] _, context in
            try JSONBody.response(try await plane.listGrants(context.info, try Self.id(DatasetID.self, context)))
        }
        post(authed, "/dataset-grants/:id/revoke") { [plane] _, context in
            try JSONBody.reply(try await plane.revokeGrant(context.info, try Self.id(DatasetGrantID.self, context)))
        }
        authed.get("/keys") { [plane] request, context in
            guard let tenant = try Self.filter(TenantID.self, "tenant", request) else {
                throw Failure.invalid("tenant: required")
            }
            return try JSONBody.response(try await plane.keyStatus(context.info, tenant: tenant))
        }
        post(authed, "/keys/:id/rotate") { [plane] _, context in
            try JSONBody.reply(try await plane.rotateKey(context.info, tenant: try Self.id(TenantID.self, context)))
        }
        authed.post("/reports/phi-access") { [plane] request, context in
            try JSONBody.response(
                try await plane.phiAccessReport(
                    context.info, try await JSONBody.decode(PHIAccessReportRequest.self, from: request)))
        }
    }

    static func byteRange(_ header: String?) throws -> ByteRange? {
        guard let header else { return nil }
        guard header.hasPrefix("bytes="), !header.contains(",") else {
            throw Failure.invalid("Range: one range of bytes, e.g. bytes=0-1023")
        }
        let parts = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !(parts[0].isEmpty && parts[1].isEmpty) else {
            throw Failure.invalid("Range: one range of bytes, e.g. bytes=0-1023")
        }
        let start = parts[0].isEmpty ? nil : UInt64(parts[0])
        let end = parts[1].isEmpty ? nil : UInt64(parts[1])
        guard parts[0].isEmpty || start != nil, parts[1].isEmpty || end != nil else {
            throw Failure.invalid("Range: one range of bytes, e.g. bytes=0-1023")
        }
        return ByteRange(start: start, end: end)
    }

    /// Streams `wanted` of an opened object: each chunk is read, verified and opened straight into the
    /// buffer that goes out; a chunk that fails verification ends the response early (never wrong bytes).
    static func stream(_ reader: ObjectReader, _ wanted: Range<UInt64>, sha256: String?, partial: Bool) -> Response {
        let size = reader.header.plaintextLength
        var headers: HTTPFields = [.contentType: "application/octet-stream", .acceptRanges: "bytes"]
        if let sha256 { headers[.eTag] = "\"sha256:\(sha256)\"" }
        if partial { headers[.contentRange] = "bytes \(wanted.lowerBound)-\(wanted.upperBound - 1)/\(size)" }
        if wanted.isEmpty && partial { headers[.contentRange] = "bytes */\(size)" }
        let per = UInt64(reader.header.plaintextPerChunk)
        let body = ResponseBody(contentLength: Int(wanted.count)) { writer in
            guard !wanted.isEmpty else { return try await writer.finish(nil) }
            for index in reader.chunks(covering: wanted) {
                let count = reader.header.plaintextCount(ofChunk: index)
                var buffer = ByteBufferAllocator().buffer(capacity: count)
                try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
                    try reader.read(chunk: index, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<count]))
                    return count
                }
                let start = UInt64(index) * per
                let from = Int(max(wanted.lowerBound, start) - start)
                let to = Int(min(wanted.upperBound, start + UInt64(count)) - start)
                buffer.moveWriterIndex(to: to)
                buffer.moveReaderIndex(to: from)
                try await writer.write(buffer)
            }
            try await writer.finish(nil)
        }
        return Response(status: partial ? .partialContent : .ok, headers: headers, body: body)
    }
}
