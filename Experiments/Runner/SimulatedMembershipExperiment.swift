import ArgumentParser
import CohortSimulation
import Foundation

/// `membership-simulated`: the cost of a daemon membership change and of steady-state ordering in
/// the deterministic simulator (no processes): a lossless network where every message takes
/// 1 ms, two clients per daemon sending every ~4 ms, one daemon cut off and then healed
/// (`ClusterSimulation.membershipCost`). Times are virtual, so the figures do not depend on the
/// machine; messages are counted exactly.
struct SimulatedMembershipExperiment: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "membership-simulated",
        abstract: "Simulated cost of a daemon membership change (one daemon cut off, then healed) and peer messages per ordered item."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Comma-separated cluster sizes (default 3,5,13; quick: 3,5).")
    var daemons: String?

    @Option(help: "Comma-separated simulator seeds (default 1,2,3,4,5; quick: 1,2).")
    var seeds: String?

    func validate() throws {
        guard common.architectures == nil else {
            throw ValidationError("--architectures: the simulator runs the membership protocol alone, under no security architecture")
        }
        _ = try clusterSizes(daemons, or: [])
        if let seeds { _ = try integers(seeds, option: "--seeds") }
    }

    func run() throws {
        let sizes = try clusterSizes(daemons, or: (common.quick ? [3, 5] : [3, 5, 13]))
        let seedList = try seeds.map { try integers($0, option: "--seeds") } ?? (common.quick ? [1, 2] : [1, 2, 3, 4, 5])
        var output = try ExperimentOutput(
            experiment: "membership-simulated", name: common.resultName("daemons-" + sizes.map(String.init).joined(separator: "-")),
            results: common.resultsFolder,
            columns: ["daemons", "seed", "peer_messages_per_client_message", "peer_messages_per_item", "partition_ms",
                      "partition_after_detection_ms", "partition_messages", "merge_ms", "merge_messages"])
        var progress = Progress(total: sizes.count * seedList.count)
        var figures: [String: [Double]] = [:]
        for size in sizes {
            for seed in seedList {
                let cost = ClusterSimulation.membershipCost(daemons: size, seed: UInt64(seed))
                let values: [(String, Double)] = [
                    ("peer_messages_per_client_message", cost.peerMessagesPerClientMessage),
                    ("peer_messages_per_item", cost.peerMessagesPerItem),
                    ("partition_ms", cost.partitionMilliseconds),
                    ("partition_after_detection_ms", cost.partitionAfterDetectionMilliseconds),
                    ("partition_messages", Double(cost.partitionMessages)),
                    ("merge_ms", cost.mergeMilliseconds),
                    ("merge_messages", Double(cost.mergeMessages)),
                ]
                try output.append([size, seed] + values.map { String(format: "%.3f", $0.1) })
                for (key, value) in values { figures["\(size)/\(key)", default: []].append(value) }
                progress.report(String(format: "%d daemons, seed %d: partition %.0f ms (%d messages), merge %.0f ms (%d messages)",
                                       size, seed, cost.partitionMilliseconds, cost.partitionMessages, cost.mergeMilliseconds, cost.mergeMessages))
            }
        }
        let medians = figures.mapValues { (median($0) * 1000).rounded() / 1000 }
        try output.finish(
            parameters: ["daemons": sizes, "seeds": seedList, "network": "lossless, 1 ms per message", "clients_per_daemon": 2,
                         "client_send_interval_ms": 4, "quick": common.quick,
                         "timeouts": "the simulator's TotemRing.Settings defaults (token loss 200 ms, consensus 150 ms, join 30 ms)"],
            summary: ["medians": medians])
    }
}
