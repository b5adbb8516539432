import ArgumentParser
import CohortDaemon

/// `cohort`: the Cohort command-line client and toolbox.
@main
struct CohortCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cohort",
        abstract: "Cohort client: clusters, demos, listening, sending, flooding, status, fault injection.",
        version: CohortVersion.string,
        subcommands: [
            DemoCommand.self, ClusterCommand.self, ListenCommand.self, SendCommand.self, FloodCommand.self,
            UserCommand.self, StatusCommand.self, FaultCommand.self, SimulateCommand.self, PasswdCommand.self, KeygenCommand.self, CertsCommand.self,
        ])
}
