import ArgumentParser
import CohortCluster
import CohortSecurity
import CohortTransport
import Foundation

/// `cohort-experiments`: named, parameterised experiments on local clusters of real daemon
/// processes; each writes `Results/<experiment>/<name>.csv` and its entry in `meta.json`, which
/// `Scripts/plot.py` draws.
///
///     swift run -c release cohort-experiments throughput --quick
@main
struct ExperimentRunner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cohort-experiments",
        abstract: "Runs Cohort's experiments on local clusters and writes Results/<experiment>/<name>.csv and meta.json.",
        subcommands: [ThroughputExperiment.self, LatencyExperiment.self, MembershipExperiment.self, SimulatedMembershipExperiment.self, FlushCostExperiment.self, ChurnThroughputExperiment.self, RekeyExperiment.self]
    )
}

/// Options every experiment takes.
struct CommonOptions: ParsableArguments {
    @Flag(help: "A small version that finishes in well under a minute.")
    var quick = false

    @Option(help: "Name of the result (Results/<experiment>/<name>.csv); default from the parameters.")
    var name: String?

    @Option(help: "Folder of the results.")
    var results = "Results"

    @Option(help: "Comma-separated security architectures to measure: \(Architecture.registered.map(\.name).joined(separator: ", ")) (default: every one the transport allows).")
    var architectures: String?

    @Option(help: "How clients reach their daemons: unix (the local socket) or tcp. An architecture that sends group keys to clients refuses plain TCP, so compare architectures over unix.")
    var transport = ClientTransport.unix

    @Flag(help: "Do not bring the release build of cohortd and cohort up to date first.")
    var noBuild = false

    /// The architectures to measure, validated.
    func selectedArchitectures() throws -> [Architecture] {
        guard let architectures else {
            return Architecture.registered.filter { transport == .unix || !$0.sealsClientData }
        }
        return try architectures.split(separator: ",").map { name in
            let architecture: Architecture
            do { architecture = try Architecture.named(String(name)) } catch { throw ValidationError("\(error)") }
            if transport == .tcp, architecture.sealsClientData {
                throw ValidationError("\(name) sends group keys to its clients and refuses them on plain TCP: use --transport unix")
            }
            return architecture
        }
    }

    /// The names of the architectures to measure, validated.
    func architectureNames() throws -> [String] { try selectedArchitectures().map(\.name) }

    /// The name of the result: `name` if given, else `defaultName` (with `-quick` for a quick run).
    func resultName(_ defaultName: String) -> String { name ?? (quick ? "\(defaultName)-quick" : defaultName) }

    var resultsFolder: URL { URL(fileURLWithPath: results) }

    /// The address clients of this experiment give to reach `member` (``transport``), as
    /// `cohort --daemon` takes it.
    func clientAddress(_ member: LocalCluster.Member) -> String {
        transport == .unix ? member.socketAddress : member.clientAddress
    }
}

extension LocalCluster.Member {
    /// This daemon's address for clients over `transport`.
    func daemonAddress(over transport: ClientTransport) -> DaemonAddress {
        transport == .unix ? localAddress : address
    }
}

/// How the clients of an experiment reach their daemons.
enum ClientTransport: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// The daemon's local Unix socket (`unix:PATH`).
    case unix
    /// The daemon's client TCP port on loopback.
    case tcp
}

/// Parses a comma-separated list of integers of at least `minimum` (positive by default).
func integers(_ text: String, option: String, minimum: Int = 1) throws -> [Int] {
    let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? minimum - 1) >= minimum }) else {
        let kind = minimum == 1 ? "positive integers" : "integers of at least \(minimum)"
        throw ValidationError("\(option) takes \(kind) separated by commas, not '\(text)'")
    }
    return values.map { $0! }
}

/// The cluster sizes of `--daemons a,b,...` (2 to 64 daemons each), or `fallback` without it.
func clusterSizes(_ text: String?, or fallback: [Int]) throws -> [Int] {
    guard let text else { return fallback }
    let sizes = try integers(text, option: "--daemons")
    guard sizes.allSatisfy({ (2...64).contains($0) }) else { throw ValidationError("--daemons: sizes of 2 to 64") }
    return sizes
}
