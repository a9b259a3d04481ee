import ArgumentParser
import CaduceusCore
import ControlPlane
import NIOHTTP1

/// Appends `name=value` to a path's query when there is a value.
func adding(_ name: String, _ value: String?, to path: String) -> String {
    guard let value else { return path }
    return path + (path.contains("?") ? "&" : "?") + "\(name)=\(value)"
}

struct RegionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "region", abstract: "Regions: where sites are, each with one data residency.",
        subcommands: [Create.self, List.self, Show.self])

    static let columns = ["name", "id", "residency", "created"]
    static func row(_ region: RegionView) -> [String] {
        [region.name, region.id.rawValue, region.residency.rawValue, region.createdAt.description]
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a region.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Its data residency, e.g. US or EU.") var residency: String
        @Argument(help: "The region's name.") var name: String

        func run() async throws {
            guard let residency = Residency(rawValue: residency) else {
                throw CLIError("'\(residency)' is not a residency (2–16 upper-case letters, digits or dashes)")
            }
            try await callAPI(
                client, .POST, "/v1/regions", body: CreateRegionRequest(name: name, residency: residency),
                as: RegionView.self
            ) { (RegionCommand.columns, [RegionCommand.row($0)]) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List regions.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions

        func run() async throws {
            try await callAPI(
                client, .GET, "/v1/regions" + query(after: page.after, limit: page.limit),
                as: ListResponse<RegionView>.self
            ) { (RegionCommand.columns, $0.items.map(RegionCommand.row)) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a region.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The region's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .GET, "/v1/regions/\(try typedID(RegionID.self, id))", as: RegionView.self) {
                (RegionCommand.columns, [RegionCommand.row($0)])
            }
        }
    }
}

struct SiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site", abstract: "Sites: data centres or machine rooms within regions.",
        subcommands: [Create.self, List.self, Show.self])

    static let columns = ["name", "id", "region", "created"]
    static func row(_ site: SiteView) -> [String] {
        [site.name, site.id.rawValue, site.region.rawValue, site.createdAt.description]
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a site in a region.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The region's ID.") var region: String
        @Argument(help: "The site's name.") var name: String

        func run() async throws {
            let request = CreateSiteRequest(name: name, region: try typedID(RegionID.self, region))
            try await callAPI(client, .POST, "/v1/sites", body: request, as: SiteView.self) {
                (SiteCommand.columns, [SiteCommand.row($0)])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sites.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions
        @Option(help: "Only this region's sites.") var region: String?

        func run() async throws {
            let path = adding(
                "region", try region.map { try typedID(RegionID.self, $0).rawValue },
                to: "/v1/sites" + query(after: page.after, limit: page.limit))
            try await callAPI(client, .GET, path, as: ListResponse<SiteView>.self) {
                (SiteCommand.columns, $0.items.map(SiteCommand.row))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a site.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The site's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .GET, "/v1/sites/\(try typedID(SiteID.self, id))", as: SiteView.self) {
                (SiteCommand.columns, [SiteCommand.row($0)])
            }
        }
    }
}

struct FabricCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fabric", abstract: "Fabrics: NVLink or InfiniBand domains within sites.",
        subcommands: [Create.self, List.self, Show.self])

    static let columns = ["name", "id", "site", "created"]
    static func row(_ fabric: FabricView) -> [String] {
        [fabric.name, fabric.id.rawValue, fabric.site.rawValue, fabric.createdAt.description]
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a fabric in a site.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The site's ID.") var site: String
        @Argument(help: "The fabric's name.") var name: String

        func run() async throws {
            let request = CreateFabricRequest(name: name, site: try typedID(SiteID.self, site))
            try await callAPI(client, .POST, "/v1/fabrics", body: request, as: FabricView.self) {
                (FabricCommand.columns, [FabricCommand.row($0)])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List fabrics.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var page: PageOptions
        @Option(help: "Only this site's fabrics.") var site: String?

        func run() async throws {
            let path = adding(
                "site", try site.map { try typedID(SiteID.self, $0).rawValue },
                to: "/v1/fabrics" + query(after: page.after, limit: page.limit))
            try await callAPI(client, .GET, path, as: ListResponse<FabricView>.self) {
                (FabricCommand.columns, $0.items.map(FabricCommand.row))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a fabric.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The fabric's ID.") var id: String

        func run() async throws {
            try await callAPI(client, .GET, "/v1/fabrics/\(try typedID(FabricID.self, id))", as: FabricView.self) {
                (FabricCommand.columns, [FabricCommand.row($0)])
            }
        }
    }
}
