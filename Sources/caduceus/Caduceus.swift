import ArgumentParser

/// The Caduceus command line.
@main
struct Caduceus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caduceus",
        abstract: "A HIPAA-minded control plane for dedicated GPU clusters.",
        subcommands: [
            ServeCommand.self, ConfigCommand.self, LoginCommand.self, LogoutCommand.self, WhoamiCommand.self,
            UserCommand.self, RoleCommand.self, TokenCommand.self, TenantCommand.self, ProjectCommand.self,
            BreakGlassCommand.self, RegionCommand.self, SiteCommand.self, FabricCommand.self, NodeCommand.self,
            QuotaCommand.self, JobCommand.self, OpenAPICommand.self, AuditCommand.self, BenchCommand.self,
            SimCommand.self, AgentCommand.self, SealCommand.self, DatasetCommand.self, KeyCommand.self,
            ReportCommand.self, ClusterCommand.self,
        ]
    )
}
