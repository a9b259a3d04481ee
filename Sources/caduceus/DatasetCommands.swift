import ArgumentParser
import CaduceusCore
import ControlPlane
import Crypto
import Foundation
import NIOHTTP1
import Sealing

struct DatasetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset", abstract: "Sealed datasets: create, upload, download, list.",
        subcommands: [
            Create.self, List.self, Show.self, Objects.self, Upload.self, Download.self, Grant.self, Grants.self,
            RevokeGrant.self, Hold.self, DeleteObject.self, Shred.self, Certificate.self, Lifecycle.self,
        ])

    static let columns = ["name", "id", "project", "class", "residency", "retained until", "kek"]
    static func row(_ view: DatasetView) -> [String] {
        [
            view.name, view.id.rawValue, view.project.rawValue, view.classification.rawValue, view.residency.rawValue,
            view.retainedUntil.description, view.kekVersion.map { "v\($0)" } ?? "shredded",
        ]
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a dataset in a project.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The project's ID.") var project: String
        @Option(help: "phi, deidentified or public.") var classification: String
        @Option(help: "Where it may be stored and read, e.g. US.") var residency: String
        @Option(help: "Years it must be kept (0 to 100).") var retentionYears: Int
        @Option(help: "Days since last read before objects move to the warm tier.") var warmAfterDays: Int?
        @Option(help: "… to the cold tier.") var coldAfterDays: Int?
        @Option(help: "… to the archive tier.") var archiveAfterDays: Int?
        @Argument(help: "The dataset's name.") var name: String

        func run() async throws {
            guard let kind = DatasetClassification(rawValue: classification) else {
                throw CLIError("--classification is phi, deidentified or public")
            }
            guard let region = Residency(rawValue: residency) else { throw CLIError("--residency is not a residency") }
            let request = CreateDatasetRequest(
                project: try typedID(ProjectID.self, project), name: name, classification: kind, residency: region,
                retentionYears: retentionYears,
                lifecycle: LifecycleRule(
                    warmAfterDays: warmAfterDays, coldAfterDays: coldAfterDays, archiveAfterDays: archiveAfterDays))
            try await callAPI(client, .POST, "/v1/datasets", body: request, as: DatasetView.self) {
                (DatasetCommand.columns, [DatasetCommand.row($0)])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List datasets.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions
        @Option(help: "Only this tenant's.") var tenant: String?
        @Option(help: "Only this project's.") var project: String?

        func run() async throws {
            var path = adding(
                "tenant", try tenant.map { try typedID(TenantID.self, $0).rawValue },
                to: "/v1/datasets" + query(after: page.after, limit: page.limit))
            path = adding("project", try project.map { try typedID(ProjectID.self, $0).rawValue }, to: path)
            try await callAPI(client, .GET, path, as: ListResponse<DatasetView>.self) {
                (DatasetCommand.columns, $0.items.map(DatasetCommand.row))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a dataset.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .GET, "/v1/datasets/\(try typedID(DatasetID.self, id))", as: DatasetView.self) {
                (DatasetCommand.columns, [DatasetCommand.row($0)])
            }
        }
    }

    struct Objects: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a dataset's objects.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions
        @Argument(help: "The dataset's ID.") var id: String

        func run() async throws {
            let path =
                "/v1/datasets/\(try typedID(DatasetID.self, id))/objects" + query(after: page.after, limit: page.limit)
            try await callAPI(client, .GET, path, as: ListResponse<ObjectView>.self) { page in
                (
                    ["name", "id", "bytes", "sha256", "tier", "patients", "last read"],
                    page.items.map {
                        [
                            $0.name, $0.id.rawValue, "\($0.bytes)", $0.sha256, $0.tier.rawValue, "\($0.patients)",
                            $0.lastReadAt?.description ?? "",
                        ]
                    }
                )
            }
        }
    }

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a file as an object (sealed on arrival; its SHA-256 is checked by the server).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The object's name (default: the file's name).") var name: String?
        @Option(
            name: .customLong("patient"),
            help: "A patient identifier (e.g. an MRN) the object holds; repeat. Kept only as a keyed hash.")
        var patients: [String] = []
        @Argument(help: "The dataset's ID.") var id: String
        @Argument(help: "The file to upload.") var file: String

        func run() async throws {
            let object = name ?? (file as NSString).lastPathComponent
            let api = try client.client()
            defer { Task { await api.shutdown() } }
            let extra = patients.isEmpty ? [] : [("X-Caduceus-Patients", patients.joined(separator: ","))]
            let reply = try await api.upload(
                "/v1/datasets/\(try typedID(DatasetID.self, id))/objects/\(object)", file: file, headers: extra)
            let view = try api.decode(ObjectView.self, reply)
            Printer.show(reply.body, client.output) {
                (
                    ["name", "id", "bytes", "sha256", "patients"],
                    [[view.name, view.id.rawValue, "\(view.bytes)", view.sha256, "\(view.patients)"]]
                )
            }
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download an object (verified chunk by chunk on the server; the whole file against its SHA-256).")
        @OptionGroup var client: ClientOptions
        @Option(help: "Bytes START-END (END included) or START-.") var range: String?
        @Option(name: .customLong("out"), help: "The file to write.") var output: String
        @Argument(help: "The dataset's ID.") var id: String
        @Argument(help: "The object's name.") var name: String

        func run() async throws {
            let api = try client.client()
            defer { Task { await api.shutdown() } }
            let (written, sha) = try await api.download(
                "/v1/datasets/\(try typedID(DatasetID.self, id))/objects/\(name)", to: output, range: range)
            if range == nil, let sha {
                let actual = try Self.sha256(of: output)
                guard actual == sha else {
                    unlink(output)
                    throw CLIError("the download's SHA-256 is \(actual), not the object's \(sha); it was removed")
                }
            }
            StandardStreams.line(#"{"bytes":\#(written),"sha256":"\#(sha ?? "")"}"#)
        }

        static func sha256(of path: String) throws -> String {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("cannot read \(path)") }
            defer { try? handle.close() }
            var digest = SHA256()
            while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty { digest.update(data: piece) }
            return digest.finalize().map { String(format: "%02x", $0) }.joined()
        }
    }
}

extension DatasetCommand {
    static let grantColumns = ["id", "dataset", "project", "purpose", "approved by", "revoked"]
    static func grantRow(_ view: GrantView) -> [String] {
        [
            view.id.rawValue, view.dataset.rawValue, view.project.rawValue, view.purpose, view.approvedBy.rawValue,
            view.revokedAt?.description ?? "",
        ]
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Grant another project of the tenant the reading of a dataset, for a purpose of use.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The project that may read it.") var project: String
        @Option(help: "HL7 purpose of use: TREAT, HRESCH, HOPERAT, PUBHLTH, HQUALIMP, CLINTRCH, PATRQT, HPAYMT.")
        var purpose: String
        @Argument(help: "The dataset's ID.") var id: String

        func run() async throws {
            let request = CreateGrantRequest(project: try typedID(ProjectID.self, project), purpose: purpose)
            try await callAPI(
                client, .POST, "/v1/datasets/\(try typedID(DatasetID.self, id))/grants", body: request,
                as: GrantView.self
            ) { (DatasetCommand.grantColumns, [DatasetCommand.grantRow($0)]) }
        }
    }

    struct Grants: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a dataset's grants.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's ID.") var id: String

        func run() async throws {
            try await callAPI(
                client, .GET, "/v1/datasets/\(try typedID(DatasetID.self, id))/grants", as: ListResponse<GrantView>.self
            ) { (DatasetCommand.grantColumns, $0.items.map(DatasetCommand.grantRow)) }
        }
    }

    struct RevokeGrant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke-grant", abstract: "End a grant at once.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The grant's ID.") var id: String

        func run() async throws {
            try await callAPI(
                client, .POST, "/v1/dataset-grants/\(try typedID(DatasetGrantID.self, id))/revoke", as: GrantView.self
            ) { (DatasetCommand.grantColumns, [DatasetCommand.grantRow($0)]) }
        }
    }
}

extension DatasetCommand {
    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Legal hold: nothing of a held dataset may be deleted.", subcommands: [Set.self, Clear.self])

        struct Set: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Put a dataset under legal hold.")
            @OptionGroup var client: ClientOptions
            @Argument(help: "The dataset's ID.") var id: String
            func run() async throws { try await Hold.change(client, id, hold: true) }
        }

        struct Clear: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Release a dataset's legal hold.")
            @OptionGroup var client: ClientOptions
            @Argument(help: "The dataset's ID.") var id: String
            func run() async throws { try await Hold.change(client, id, hold: false) }
        }

        static func change(_ client: ClientOptions, _ id: String, hold: Bool) async throws {
            try await callAPI(
                client, .POST, "/v1/datasets/\(try typedID(DatasetID.self, id))/hold", body: SetHoldRequest(hold: hold),
                as: DatasetView.self
            ) { (DatasetCommand.columns + ["legal hold"], [DatasetCommand.row($0) + [$0.legalHold ? "yes" : "no"]]) }
        }
    }

    struct DeleteObject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete-object",
            abstract: "Delete an object (refused under retention or legal hold, with the day it becomes deletable).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's ID.") var id: String
        @Argument(help: "The object's name.") var name: String

        func run() async throws {
            try await callAPI(client, .DELETE, "/v1/datasets/\(try typedID(DatasetID.self, id))/objects/\(name)")
        }
    }

    struct Shred: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Crypto-shred a dataset after its retention; prints the signed shredding certificate.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's ID.") var id: String

        func run() async throws {
            try await callAPI(
                client, .POST, "/v1/datasets/\(try typedID(DatasetID.self, id))/shred", as: ShreddingView.self
            ) { (["dataset", "certificate"], [[$0.dataset.rawValue, $0.certificate]]) }
        }
    }

    struct Certificate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a shredded dataset's certificate (check it with caduceus audit open-note).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's ID.") var id: String

        func run() async throws {
            let api = try client.client()
            defer { Task { await api.shutdown() } }
            let reply = try await api.send(
                .GET, "/v1/datasets/\(try typedID(DatasetID.self, id))/shredding-certificate")
            StandardStreams.write(Array(reply.body))
        }
    }
}

extension DatasetCommand {
    struct Lifecycle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tiering by the dataset's lifecycle rule: plan (a dry run) or apply the moves.",
            subcommands: [Plan.self, Apply.self])

        static func table(_ view: LifecyclePlanView) -> ([String], [[String]]) {
            (
                ["object", "name", "from", "to", "idle days", "failure"],
                view.moves.map {
                    [$0.object.rawValue, $0.name, $0.from.rawValue, $0.to.rawValue, "\($0.idleDays)", $0.failure ?? ""]
                }
            )
        }

        struct Plan: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show what would move (nothing moves).")
            @OptionGroup var client: ClientOptions
            @Argument(help: "The dataset's ID.") var id: String

            func run() async throws {
                try await callAPI(
                    client, .GET, "/v1/datasets/\(try typedID(DatasetID.self, id))/lifecycle",
                    as: LifecyclePlanView.self, table: Lifecycle.table)
            }
        }

        struct Apply: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Move the objects now.")
            @OptionGroup var client: ClientOptions
            @Argument(help: "The dataset's ID.") var id: String

            func run() async throws {
                try await callAPI(
                    client, .POST, "/v1/datasets/\(try typedID(DatasetID.self, id))/lifecycle/apply",
                    as: LifecyclePlanView.self, table: Lifecycle.table)
            }
        }
    }
}

struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Tenant key-encryption keys: rotate, status.",
        subcommands: [Rotate.self, Status.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new KEK version and re-wrap every data key under it (objects are not touched).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The tenant's ID.") var tenant: String

        func run() async throws {
            try await callAPI(
                client, .POST, "/v1/keys/\(try typedID(TenantID.self, tenant))/rotate", as: KeyRotationView.self
            ) {
                (
                    ["tenant", "version", "data keys re-wrapped", "seconds"],
                    [[$0.tenant.rawValue, "\($0.version)", "\($0.rewrapped)", String(format: "%.3f", $0.seconds)]]
                )
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a tenant's KEK versions and data keys.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The tenant's ID.") var tenant: String

        func run() async throws {
            try await callAPI(
                client, .GET, "/v1/keys?tenant=\(try typedID(TenantID.self, tenant))", as: KeyStatusView.self
            ) { view in
                (
                    ["version", "created", "data keys", "current"],
                    view.versions.map {
                        ["\($0.version)", $0.createdAt.description, "\($0.dataKeys)", $0.current ? "yes" : ""]
                    }
                )
            }
        }
    }
}

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Compliance reports.", subcommands: [PHIAccess.self])

    struct PHIAccess: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "phi-access",
            abstract: "Every access to data holding a patient (45 CFR 164.528), from the verified audit trail.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The tenant's ID.") var tenant: String
        @Option(help: "The patient's identifier (e.g. an MRN).") var patient: String
        @Option(help: "From this time (RFC 3339) or day (YYYY-MM-DD).") var from: String?
        @Option(help: "To this time (RFC 3339) or day (YYYY-MM-DD, included).") var to: String?
        @Option(help: "json, csv or html.") var format: String = "json"

        func run() async throws {
            guard ["json", "csv", "html"].contains(format) else { throw CLIError("--format is json, csv or html") }
            let request = PHIAccessReportRequest(
                tenant: try typedID(TenantID.self, tenant), patient: patient,
                from: from.map { Self.time($0, end: false) },
                to: to.map { Self.time($0, end: true) })
            let api = try client.client()
            defer { Task { await api.shutdown() } }
            let reply = try await api.send(.POST, "/v1/reports/phi-access", body: request)
            if format == "json" { return Printer.json(reply.body) }
            let report = try api.decode(PHIAccessReport.self, reply)
            StandardStreams.write(Array((format == "csv" ? Self.csv(report) : Self.html(report)).utf8))
        }

        /// A day becomes its first (or last) millisecond.
        static func time(_ text: String, end: Bool) -> String {
            text.count == 10 ? text + (end ? "T23:59:59.999Z" : "T00:00:00.000Z") : text
        }

        static let columns = [
            "time", "actor", "actor type", "on behalf of", "action", "dataset", "object", "object name", "purpose",
            "outcome",
            "break-glass", "source address", "request", "log index",
        ]

        static func cells(_ access: PHIAccessReport.Access) -> [String] {
            [
                access.time.description, access.actor, access.actorType, access.onBehalfOf?.rawValue ?? "",
                access.action, access.dataset.rawValue,
                access.object.rawValue, access.objectName, access.purpose ?? "", access.outcome,
                access.breakGlass ? "yes" : "no", access.sourceAddress ?? "", access.requestId ?? "",
                "\(access.logIndex)",
            ]
        }

        static func csv(_ report: PHIAccessReport) -> String {
            func field(_ text: String) -> String {
                text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
                    ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
            }
            return ([columns] + report.accesses.map(cells)).map { $0.map(field).joined(separator: ",") }
                .joined(separator: "\r\n") + "\r\n"
        }

        static func html(_ report: PHIAccessReport) -> String {
            func escape(_ text: String) -> String {
                text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                    .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            }
            let head = columns.map { "<th>\(escape($0))</th>" }.joined()
            let rows = report.accesses.map { "<tr>" + cells($0).map { "<td>\(escape($0))</td>" }.joined() + "</tr>" }
            return """
                <!DOCTYPE html>
                <html><head><meta charset="utf-8"><title>PHI access report</title></head><body>
                <h1>PHI access report</h1>
                <p>Tenant \(escape(report.tenant.rawValue)); generated \(escape(report.generatedAt.description)); \
                \(report.objects.count) objects hold the patient; checked against the audit log of \(report.logSize) \
                entries, root \(escape(report.logRootHash)).</p>
                <table><thead><tr>\(head)</tr></thead><tbody>
                \(rows.joined(separator: "\n"))
                </tbody></table></body></html>

                """
        }
    }
}
