import ArgumentParser
import CohortCluster
import CohortConfiguration
import Foundation

/// `membership`: the cost of a daemon membership change on real processes. For each cluster
/// size, starts that many `cohortd` processes (with `--fault-injection`) and repeats: cut the
/// last daemon off (`partition`), heal (`merge`), kill -9 it (`crash`) and start it again
/// (`restart`). Each figure is the time from the fault (or the heal, or the start) until d1 is
/// operational in a configuration of the expected daemons, polled every 5 ms through d1's
/// status; after each step every daemon of the component is checked to agree.
struct MembershipExperiment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "membership",
        abstract: "Time of a daemon membership change (partition, merge, crash, restart) on real processes."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Comma-separated cluster sizes (default 3,13; quick: 3).")
    var daemons: String?

    @Option(help: "Repetitions of the four changes per size (default 5; quick: 2).")
    var repeats: Int?

    func validate() throws {
        _ = try clusterSizes(daemons, or: [])
        if let repeats, repeats < 1 { throw ValidationError("--repeats must be positive") }
    }

    func run() async throws {
        let executables = try Executables.prepare(build: !common.noBuild)
        let sizes = try clusterSizes(daemons, or: (common.quick ? [3] : [3, 13]))
        let repeatCount = repeats ?? (common.quick ? 2 : 5)
        let architectures = try common.architectureNames()
        var output = try ExperimentOutput(
            experiment: "membership", name: common.resultName("daemons-" + sizes.map(String.init).joined(separator: "-")),
            results: common.resultsFolder, columns: ["architecture", "daemons", "repeat", "event", "milliseconds"])
        var progress = Progress(total: architectures.count * sizes.count * repeatCount)
        var figures: [String: [Double]] = [:]
        let membership = DaemonConfiguration.Membership()
        for architecture in architectures {
            for size in sizes {
                let cluster = try await LocalCluster.start(
                    daemons: size, basePort: try LocalCluster.freePorts(2 * size), architecture: architecture,
                    daemonExecutable: executables.daemon, faultInjection: true, readyTimeout: .seconds(60))
                let all = Set(cluster.members.map(\.name))
                let last = cluster.members.last!.name
                let rest = all.subtracting([last])
                try await stopping(cluster) {
                    for repetition in 1...repeatCount {
                        var times: [String] = []
                        func record(_ event: String, since start: ContinuousClock.Instant) throws {
                            let milliseconds = (ContinuousClock.now - start).milliseconds
                            try output.append([architecture, size, repetition, event, String(format: "%.1f", milliseconds)])
                            figures["\(architecture)/\(size)/\(event)", default: []].append(milliseconds)
                            times.append(String(format: "%@ %.0f ms", event, milliseconds))
                        }
                        var start = ContinuousClock.now
                        try await cluster.partition([rest, [last]])
                        _ = try await cluster.waitForD1(in: rest)
                        try record("partition", since: start)
                        try await cluster.waitUntilFormed(rest)
                        try await cluster.waitUntilFormed([last])

                        start = ContinuousClock.now
                        try await cluster.heal()
                        _ = try await cluster.waitForD1(in: all)
                        try record("merge", since: start)
                        try await cluster.waitUntilFormed(all)

                        start = ContinuousClock.now
                        try await cluster.kill(last)
                        _ = try await cluster.waitForD1(in: rest)
                        try record("crash", since: start)
                        try await cluster.waitUntilFormed(rest)

                        start = ContinuousClock.now
                        try await cluster.restart(last)
                        _ = try await cluster.waitForD1(in: all)
                        try record("restart", since: start)
                        try await cluster.waitUntilFormed(all)
                        progress.report("\(architecture), \(size) daemons, run \(repetition): " + times.joined(separator: ", "))
                    }
                }
            }
        }
        let medians = figures.mapValues { (median($0) * 10).rounded() / 10 }
        try output.finish(
            parameters: ["daemons": sizes, "repeats": repeatCount, "architectures": architectures, "poll_ms": 5, "quick": common.quick,
                         "token_loss_ms": membership.tokenLossMilliseconds, "consensus_ms": membership.consensusMilliseconds,
                         "merge_detect_ms": membership.mergeDetectMilliseconds, "join_ms": membership.joinMilliseconds],
            summary: ["medians_ms": medians])
        for key in medians.keys.sorted() { print("median \(key): \(medians[key]!) ms") }
    }
}
