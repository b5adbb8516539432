import ArgumentParser
import CohortCore
import CohortSecurity
import CohortSimulation
import Foundation

/// `cohort simulate`: runs the deterministic multi-daemon simulator over seeds and checks every
/// run with the EVS property checkers.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the deterministic daemon simulator with faults over seeds; check Extended Virtual Synchrony.",
        discussion: """
            Each run is decided by one 64-bit seed: its options (daemons, loss, duplication, delay, \
            fault mix) are drawn from the seed unless given. A failing run prints its seed and the \
            command that replays it. The last line of output is a JSON summary.
            """)

    @Option(help: "Number of seeds to run.")
    var seeds: Int = 100

    @Option(help: "First seed (runs use seed, seed+1, ...).")
    var seed: UInt64 = 1

    @Option(help: "Daemons per run (default: drawn from each seed).")
    var daemons: Int?

    @Option(help: "Clients per run (default: drawn from each seed).")
    var clients: Int?

    @Option(name: .customLong("semantics"), help: "Group semantics of the simulated clients: evs (the daemons' own) or vs (the client library's flush layer on top, checked by the VS checker too).")
    var semanticsName = "evs"
    private var semantics: GroupSemantics { GroupSemantics(rawValue: semanticsName) ?? .extendedVirtualSynchrony }

    @Option(name: .customLong("architecture"), help: "Security architecture the simulated daemons and clients run: \(Architecture.registered.map(\.name).joined(separator: ", ")). Architectures that key VS views need --semantics vs.")
    var architectureName = "plain"

    @Flag(help: "Print one JSON line per run, and the summary.")
    var json = false

    @Option(help: "Runs in parallel (default: the number of cores).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print each run's options and figures.")
    var verbose = false

    @Flag(help: "Measure the cost of a membership change (one daemon cut off, then healed) and of steady-state ordering for 3, 5 and 13 daemons (or --daemons), instead of checking seeds.")
    var membershipCost = false

    func validate() throws {
        guard seeds > 0 else { throw ValidationError("--seeds must be positive") }
        guard jobs > 0 else { throw ValidationError("--jobs must be positive") }
        if let daemons, !(1...64).contains(daemons) { throw ValidationError("--daemons must be 1...64") }
        if let clients, clients < 0 { throw ValidationError("--clients must not be negative") }
        _ = try parseSemantics(semanticsName)
        do {
            _ = try Architecture.named(architectureName).semantics(named: semanticsName)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() throws {
        if membershipCost { return try measureMembershipCost() }
        var totals = ClusterSimulation.Summary(seed: seed, options: .init())
        var violations: [[String: Any]] = []
        var runs = 0
        // Seeds run in batches, `jobs` at a time, each worker taking the next seed of the batch
        // when it is free (seeds differ in cost many times over: a fixed share per worker left
        // a core idle a quarter of the time); results print in seed order.
        let batchSize = max(jobs * 64, 1)
        var offset: UInt64 = 0
        while offset < UInt64(seeds) {
            let count = Int(min(UInt64(batchSize), UInt64(seeds) - offset))
            let first = seed &+ offset
            let results = Results(count: count)
            DispatchQueue.concurrentPerform(iterations: min(jobs, count)) { _ in
                while let index = results.claim() {
                    let runSeed = first &+ UInt64(index)
                    let options = options(runSeed)
                    var simulation = ClusterSimulation(seed: runSeed, options: options)
                    if architectureName != Architecture.plain.name {
                        simulation.architecture = try! SimulatedArchitecture.registered(
                            Architecture.named(architectureName), daemons: options.daemons, seed: runSeed)
                    }
                    results.set(index, simulation.run())
                }
            }
            for summary in results.all {
                runs += 1
                totals.accumulate(summary)
                report(summary, violations: &violations)
            }
            offset += UInt64(count)
        }
        var object: [String: Any] = [
            "runs": runs, "violations": violations, "partitions": totals.partitions, "merges": totals.merges,
            "crashes": totals.crashes, "restarts": totals.restarts, "cascades": totals.cascades,
            "messages_submitted": totals.messagesSubmitted, "messages_delivered": totals.messagesDelivered,
            "installs": totals.installs, "items_delivered": totals.itemsDelivered, "views_delivered": totals.viewsDelivered, "peer_messages": totals.peerMessages,
            "dropped_peer_messages": totals.droppedPeerMessages, "first_seed": seed, "semantics": semantics.rawValue,
            "architecture": architectureName,
        ]
        if architectureName != Architecture.plain.name {
            object["daemon_keys"] = totals.daemonKeys
            object["abandoned_agreements"] = totals.abandonedAgreements
            object["daemon_key_refreshes"] = totals.daemonKeyRefreshes
            object["view_renewals"] = totals.viewRenewals
            object["keyless_views"] = totals.keylessViews
            object["messages_opened"] = totals.messagesOpened
            object["unsealed_sends"] = totals.unsealedSends
            object["refused_security_messages"] = totals.refusedSecurityMessages
        }
        if semantics == .virtualSynchrony {
            object["vs_views_delivered"] = totals.vsViewsDelivered
            object["vs_flushes"] = totals.vsFlushes
            object["vs_refused_sends"] = totals.vsRefusedSends
            object["vs_discarded"] = totals.vsDiscarded
            object["vs_abandoned_holds"] = totals.vsAbandonedHolds
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
        if !violations.isEmpty { throw ExitCode(1) }
    }

    private func options(_ runSeed: UInt64) -> ClusterSimulation.Options {
        switch semantics {
        case .extendedVirtualSynchrony: .swarm(seed: runSeed, daemons: daemons, clients: clients)
        case .virtualSynchrony: .virtualSynchronySwarm(seed: runSeed, daemons: daemons, clients: clients)
        }
    }

    private func report(_ summary: ClusterSimulation.Summary, violations: inout [[String: Any]]) {
        let runSeed = summary.seed
        if json {
            let line: [String: Any] = [
                "seed": runSeed, "violations": summary.violations.count, "installs": summary.installs,
                "messages_delivered": summary.messagesDelivered, "views_delivered": summary.viewsDelivered,
                "convergence_ms": summary.convergenceMilliseconds.map { Int($0) } ?? -1,
            ]
            if let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) {
                print(String(decoding: data, as: UTF8.self))
            }
        }
        if verbose {
            print("seed \(runSeed): \(summary.options) → installs=\(summary.installs) sent=\(summary.messagesSubmitted) delivered=\(summary.messagesDelivered) views=\(summary.viewsDelivered) converged=\(summary.convergenceMilliseconds.map { "\($0)ms" } ?? "no") violations=\(summary.violations.count) dropped=\(summary.droppedByReason)")
        }
        if !summary.violations.isEmpty {
            let replay = "cohort simulate --seeds 1 --seed \(runSeed)" + (daemons.map { " --daemons \($0)" } ?? "")
                + (clients.map { " --clients \($0)" } ?? "") + (semantics == .virtualSynchrony ? " --semantics vs" : "")
                + (architectureName != Architecture.plain.name ? " --architecture \(architectureName)" : "")
            print("seed \(runSeed) FAILED (\(summary.options)): replay with: \(replay)")
            for violation in summary.violations.prefix(10) { print("  \(violation)") }
            violations += summary.violations.map { ["seed": runSeed, "property": $0.property, "detail": $0.detail, "replay": replay] }
        }
    }

    private func measureMembershipCost() throws {
        let sizes = daemons.map { [$0] } ?? [3, 5, 13]
        print("daemons  steady msgs/client-msg  msgs/item  partition ms (after detection)  partition msgs  merge ms  merge msgs")
        var rows: [[String: Any]] = []
        for size in sizes {
            let cost = ClusterSimulation.membershipCost(daemons: size, seed: seed)
            print(String(format: "%7d  %22.2f  %9.2f  %12.0f (%5.0f)  %14d  %8.0f  %10d",
                         size, cost.peerMessagesPerClientMessage, cost.peerMessagesPerItem, cost.partitionMilliseconds,
                         cost.partitionAfterDetectionMilliseconds, cost.partitionMessages, cost.mergeMilliseconds, cost.mergeMessages))
            rows.append([
                "daemons": size, "peer_messages_per_client_message": cost.peerMessagesPerClientMessage,
                "peer_messages_per_item": cost.peerMessagesPerItem, "partition_ms": cost.partitionMilliseconds,
                "partition_after_detection_ms": cost.partitionAfterDetectionMilliseconds,
                "partition_messages": cost.partitionMessages, "merge_ms": cost.mergeMilliseconds, "merge_messages": cost.mergeMessages,
            ])
        }
        let data = try JSONSerialization.data(withJSONObject: ["membership_cost": rows], options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Per-index results written by parallel runs, and the next index to run.
private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var summaries: [ClusterSimulation.Summary?]
    private var claimed = 0
    init(count: Int) { summaries = Array(repeating: nil, count: count) }
    /// The next index no worker has taken, if any is left.
    func claim() -> Int? {
        lock.withLock {
            guard claimed < summaries.count else { return nil }
            defer { claimed += 1 }
            return claimed
        }
    }
    func set(_ index: Int, _ summary: ClusterSimulation.Summary) { lock.withLock { summaries[index] = summary } }
    var all: [ClusterSimulation.Summary] { lock.withLock { summaries.compactMap { $0 } } }
}
