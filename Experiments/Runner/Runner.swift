import ArgumentParser
import CohortSecurity
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
        subcommands: [ThroughputExperiment.self, LatencyExperiment.self, MembershipExperiment.self, SimulatedMembershipExperiment.self, FlushCostExperiment.self, ChurnThroughputExperiment.self]
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

    @Option(help: "Comma-separated security architectures to measure: \(Self.measurable.joined(separator: ", ")) (default: all of them).")
    var architectures: String?

    /// The architectures the experiments on real processes measure today. `integrated-vs` is
    /// registered but not yet measured: its clients reach the daemons over TLS or the Unix
    /// socket while the experiments run over TCP, and `cohort flood` repeats one prepared
    /// message, which a sealing architecture must seal anew each time (issue 27).
    static let measurable = [Architecture.plain.name]

    @Flag(help: "Do not bring the release build of cohortd and cohort up to date first.")
    var noBuild = false

    /// The architectures to measure, validated.
    func architectureNames() throws -> [String] {
        guard let architectures else { return Self.measurable }
        let names = architectures.split(separator: ",").map(String.init)
        for name in names {
            do { _ = try Architecture.named(name) } catch { throw ValidationError(error.description) }
            guard Self.measurable.contains(name) else {
                throw ValidationError("the experiments do not measure \(name) yet: they run over TCP and `cohort flood` repeats one prepared message, which \(name) must seal anew each time (issue 27)")
            }
        }
        return names
    }

    /// The name of the result: `name` if given, else `defaultName` (with `-quick` for a quick run).
    func resultName(_ defaultName: String) -> String { name ?? (quick ? "\(defaultName)-quick" : defaultName) }

    var resultsFolder: URL { URL(fileURLWithPath: results) }
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
