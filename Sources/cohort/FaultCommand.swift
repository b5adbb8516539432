import ArgumentParser
import Cohort
import CohortConfiguration
import CohortCore
import CohortDaemon
import CohortTransport
import Foundation

/// `cohort fault`: partitions daemons started with `--fault-injection` (tests only).
struct FaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault",
        abstract: "Inject faults into daemons started with --fault-injection: drop peers, partition, heal.",
        discussion: """
            A daemon told to drop a peer discards every protocol message to and from it; the \
            links stay up, so the daemons see exactly what a partitioned network shows them: \
            silence, then a membership change. Crashes need no command: kill -9 a cohortd and \
            start it again with the same --config and --name (a new incarnation). See \
            docs/fault-injection.md.
            """,
        subcommands: [Drop.self, Partition.self, Heal.self])

    /// `cohort fault drop`: one daemon drops the named peers.
    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make one daemon drop all protocol traffic to and from the named peers (replaces its earlier list).")

        @OptionGroup var connection: ConnectionArguments

        @Argument(help: "Names of the peer daemons to cut off (none: heal this daemon).")
        var peers: [String] = []

        func run() async throws {
            let options = try connection.options(name: "fault", wantsMembership: false)
            let status = try await CohortClient.dropPeers(peers, at: try connection.address(), architecture: options.architecture, credentials: options.credentials, tls: options.tls)
            emit("\(status.daemonName) drops: \(status.droppedPeers.isEmpty ? "nothing" : status.droppedPeers.joined(separator: " "))")
        }
    }

    /// `cohort fault partition`: every daemon of a configuration file, into components.
    struct Partition: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Split the daemons of a configuration file into components, e.g. `d1,d2 d3`.")

        @Option(help: "The daemons' configuration file (as `cohort cluster` writes it).")
        var config: String

        @Argument(help: "Components: comma-separated daemon names; every daemon in exactly one.")
        var components: [String]

        func run() async throws {
            let configuration = try DaemonConfiguration.load(path: config)
            let all = Set(configuration.daemons.map(\.name))
            let parts = components.map { Set($0.split(separator: ",").map(String.init)) }
            guard parts.reduce(0, { $0 + $1.count }) == all.count, Set(parts.flatMap { $0 }) == all else {
                throw ValidationError("name every daemon of \(config) exactly once: \(all.sorted().joined(separator: " "))")
            }
            for part in parts {
                for name in part.sorted() {
                    let status = try await CohortClient.dropPeers(all.subtracting(part).sorted(), at: try clientAddress(of: name, in: configuration))
                    emit("\(status.daemonName) drops: \(status.droppedPeers.joined(separator: " "))")
                }
            }
        }
    }

    /// `cohort fault heal`: every daemon of a configuration file stops dropping.
    struct Heal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End every partition among the daemons of a configuration file.")

        @Option(help: "The daemons' configuration file.")
        var config: String

        func run() async throws {
            let configuration = try DaemonConfiguration.load(path: config)
            for daemon in configuration.daemons {
                do {
                    _ = try await CohortClient.dropPeers([], at: try clientAddress(of: daemon.name, in: configuration))
                    emit("\(daemon.name) healed")
                } catch {
                    emit("\(daemon.name): \(error)")
                }
            }
        }
    }
}

/// The address a client reaches daemon `name` of `configuration` at (its socket, else TCP).
private func clientAddress(of name: String, in configuration: DaemonConfiguration) throws -> DaemonAddress {
    guard let entry = configuration.daemons.first(where: { $0.name == name }) else {
        throw ValidationError("no daemon \(name) in the configuration")
    }
    if let path = entry.socketPath { return .unix(path: path) }
    if let port = entry.clientPort { return .tcp(host: entry.host, port: port) }
    throw ValidationError("daemon \(name) has no client address")
}
