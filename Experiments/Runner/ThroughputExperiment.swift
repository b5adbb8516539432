import ArgumentParser
import CohortCluster
import CohortSecurity
import Foundation

/// `throughput`: messages/s and MB/s against message size. One local cluster per architecture;
/// a `cohort flood` sender on d1 and a `cohort flood --receive-only` listener on every other
/// daemon (on d1 with one daemon), separate processes over the Unix socket (or TCP), AGREED.
/// The figure is the slowest listener's receive rate. Two sender modes: `self-paced` (the
/// sender receives its own messages and keeps at most 4 MiB in flight) and `write-only` (paced
/// by the daemon's backpressure only; not under an architecture that seals, whose senders must
/// be members holding the view's key). With `--vs`, every client joins with Virtual Synchrony
/// and prepares each message anew: what an architecture that seals always does, so the
/// like-with-like baseline for it.
struct ThroughputExperiment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "Messages/s and MB/s vs message size; sender on d1, a listener on each other daemon, AGREED."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Daemons in the cluster.")
    var daemons = 3

    @Option(help: "Comma-separated message sizes in bytes (default 100,1024,8192,65536).")
    var sizes = "100,1024,8192,65536"

    @Option(help: "Runs per size and mode (default 3; quick: 1).")
    var repeats: Int?

    @Option(help: "Comma-separated sender modes: self-paced, write-only (default both; quick: self-paced).")
    var modes: String?

    @Flag(help: "Clients join with Virtual Synchrony and prepare every message anew (always so under an architecture that seals): the like-with-like baseline for one.")
    var vs = false

    @Option(help: "Messages per run (default: a few seconds' worth at each size: 400,000 up to 1 KiB, 100,000 up to 8 KiB, 20,000 above; quick: a tenth).")
    var messages: Int?

    func validate() throws {
        guard (1...64).contains(daemons) else { throw ValidationError("--daemons takes 1 to 64") }
        _ = try integers(sizes, option: "--sizes")
        if let repeats, repeats < 1 { throw ValidationError("--repeats must be positive") }
        if let messages, messages < 1 { throw ValidationError("--messages must be positive") }
        for mode in modeList where !["self-paced", "write-only"].contains(mode) {
            throw ValidationError("unknown mode '\(mode)': self-paced or write-only")
        }
    }

    private var modeList: [String] {
        modes.map { $0.split(separator: ",").map(String.init) } ?? (common.quick ? ["self-paced"] : ["self-paced", "write-only"])
    }

    /// Messages per run: `--messages`, or a few seconds' worth at each size (a tenth when quick).
    private func messages(size: Int) -> Int {
        if let messages { return messages }
        let full = size <= 1024 ? 400_000 : size <= 8192 ? 100_000 : 20_000
        return common.quick ? full / 10 : full
    }

    func run() async throws {
        let executables = try Executables.prepare(build: !common.noBuild)
        let architectures = try common.selectedArchitectures()
        let sizeList = try integers(sizes, option: "--sizes")
        let repeatCount = repeats ?? (common.quick ? 1 : 3)
        var output = try ExperimentOutput(
            experiment: "throughput", name: common.resultName("daemons-\(daemons)"), results: common.resultsFolder,
            columns: ["architecture", "clients", "mode", "size", "run", "messages", "sender_msgs_per_second", "sender_mb_per_second",
                      "listener_msgs_per_second", "listener_mb_per_second", "loadavg"])
        let runs = architectures.map { modes(for: $0).count }.reduce(0, +)
        var progress = Progress(total: runs * sizeList.count * repeatCount)
        var figures: [String: [Double]] = [:]
        var daemonMetrics: [String: Any] = [:]
        var runNumber = 0
        for registered in architectures {
            let architecture = registered.name
            let cluster = try await LocalCluster.start(
                daemons: daemons, basePort: try LocalCluster.freePorts(2 * daemons), architecture: architecture,
                daemonExecutable: executables.daemon, metricsBasePort: try LocalCluster.freePorts(daemons))
            try await stopping(cluster) {
                for mode in modes(for: registered) {
                    for size in sizeList {
                        for run in 1...repeatCount {
                            runNumber += 1
                            let result = try await measure(
                                cluster, executables, architecture: architecture, mode: mode, size: size, run: runNumber)
                            try output.append([architecture, clients(for: registered), mode, size, run, result.messages,
                                               Int(result.senderRate), String(format: "%.1f", result.senderMBps),
                                               Int(result.listenerRate), String(format: "%.1f", result.listenerMBps),
                                               ExperimentOutput.loadAverage()[0]])
                            figures["\(architecture)/\(mode)/\(size)/msgs_per_second", default: []].append(result.listenerRate)
                            figures["\(architecture)/\(mode)/\(size)/mb_per_second", default: []].append(result.listenerMBps)
                            progress.report(String(format: "%@ %@ %d B run %d: %.0f msg/s, %.1f MB/s (slowest listener)",
                                                   architecture, mode, size, run, result.listenerRate, result.listenerMBps))
                        }
                    }
                }
                daemonMetrics[architecture] = try await DaemonCounters.read(cluster)
            }
        }
        let medians = figures.mapValues { (median($0) * 10).rounded() / 10 }
        try output.finish(
            parameters: ["daemons": daemons, "sizes": sizeList, "repeats": repeatCount, "modes": modeList,
                         "architectures": architectures.map(\.name), "service": "agreed", "transport": common.transport.rawValue, "sender_daemon": "d1",
                         "clients": Dictionary(uniqueKeysWithValues: architectures.map { ($0.name, clients(for: $0)) }),
                         "listeners": max(1, daemons - 1), "window_bytes": 4 << 20, "quick": common.quick,
                         "messages": Dictionary(uniqueKeysWithValues: sizeList.map { ("\($0)", messages(size: $0)) }),
                         "figure": "slowest listener's receive rate"],
            summary: ["medians": medians, "daemon_metrics": daemonMetrics])
        for key in medians.keys.sorted() { print("median \(key): \(medians[key]!)") }
    }

    /// The sender modes measured under `architecture`: not write-only where senders seal.
    private func modes(for architecture: Architecture) -> [String] {
        architecture.sealsClientData ? modeList.filter { $0 != "write-only" } : modeList
    }

    /// How the clients run under `architecture`: `vs-prepare-each` (VS, every message prepared
    /// anew: with `--vs`, and always where the architecture seals) or `evs-repeat`.
    private func clients(for architecture: Architecture) -> String {
        vs || architecture.sealsClientData ? "vs-prepare-each" : "evs-repeat"
    }

    private struct Result {
        var messages: Int
        var senderRate: Double
        var senderMBps: Double
        var listenerRate: Double
        var listenerMBps: Double
    }

    /// One run: listeners join, then the sender floods; every process reports as JSON. Each
    /// run has its own group and listener names: the last run's listeners may still be members
    /// for a moment after their processes exit (their disconnects are ordered like everything
    /// else), and a wait for "the listeners are in the group" must not be satisfied by them, or
    /// the sender's first messages could be ordered before the new listeners' joins.
    /// `run` numbers the runs of the whole experiment (it names the group and the clients).
    private func measure(
        _ cluster: LocalCluster, _ executables: Executables, architecture: String, mode: String, size: Int, run: Int
    ) async throws -> Result {
        let count = messages(size: size)
        let group = "flood-\(run)"
        let listenerDaemons = daemons == 1 ? [cluster.members[0]] : Array(cluster.members.dropFirst())
        let timeout = Duration.seconds(60 + count / 2000)
        var listeners: [ChildProcess] = []
        defer { for listener in listeners { listener.kill() } }
        for member in listenerDaemons {
            listeners.append(try ChildProcess(executables.client, [
                "flood", "--daemon", common.clientAddress(member), "--architecture", architecture, "--name", "listener\(run)-\(member.name)",
                "--group", group, "--receive-only", "--count", "\(count)", "--size", "\(size)", "--json",
            ] + (vs ? ["--vs"] : [])))
        }
        try await waitForMembers(cluster, group: group, names: listenerDaemons.map { "#listener\(run)-\($0.name)#\($0.name)" })
        var senderArguments = [
            "flood", "--daemon", common.clientAddress(cluster.members[0]), "--architecture", architecture, "--name", "sender\(run)",
            "--group", group, "--count", "\(count)", "--size", "\(size)", "--json",
        ] + (vs ? ["--vs", "--prepare-each"] : [])
        if mode == "write-only" { senderArguments.append("--write-only") }
        let sender = try JSONReport(try await ChildProcess(executables.client, senderArguments).result(timeout: timeout, what: "the sender"))
        var slowest: JSONReport?
        for (index, listener) in listeners.enumerated() {
            let output: String
            do {
                output = try await listener.result(timeout: timeout, what: "the listener on \(listenerDaemons[index].name)")
            } catch {
                throw ExperimentError("\(error)\n" + (await diagnosis(cluster)))
            }
            let report = try JSONReport(output)
            if slowest == nil || report.msgsPerSecond < slowest!.msgsPerSecond { slowest = report }
        }
        return Result(messages: count, senderRate: sender.msgsPerSecond, senderMBps: sender.mbPerSecond,
                      listenerRate: slowest!.msgsPerSecond, listenerMBps: slowest!.mbPerSecond)
    }

    /// What each daemon says about itself when a run fails: membership, clients, groups, and the
    /// counts of messages it took from its clients and delivered to them.
    private func diagnosis(_ cluster: LocalCluster) async -> String {
        var lines: [String] = ["cluster folder (configuration, daemon logs): \(cluster.directory.path)"]
        for member in cluster.members {
            var line = "\(member.name): "
            if let status = try? await cluster.status(of: member.name) {
                line += "\(status.membershipState) in \(status.configuration), clients \(status.clients.map(\.description)), "
                line += "groups \(status.groups.map { "\($0.group.rawValue)=\($0.members.map(\.description))" })"
            } else {
                line += "no status"
            }
            if let page = try? await cluster.metrics(of: member.name) {
                line += "; agreed messages received \(Int(page.value("cohort_messages_received_total", #"service="agreed""#) ?? -1)), "
                line += "delivered \(Int(page.value("cohort_messages_delivered_total", #"service="agreed""#) ?? -1)), "
                line += "clients backlogged \(Int(page.value("cohort_clients_backlogged") ?? -1)), ring pending \(Int(page.value("cohort_ring_pending_items") ?? -1)), "
                line += "configurations installed \(Int(page.value("cohort_membership_changes_total", #"kind="regular""#) ?? -1)) "
                line += "(more than one: a membership change during the run; messages ordered while a listener's daemon was apart do not reach it)"
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// Waits until d1 sees every one of `names` in `group` (views reach every daemon in order,
    /// so the sender's messages then reach every listener).
    private func waitForMembers(_ cluster: LocalCluster, group: String, names: [String]) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let status = try? await cluster.status(of: cluster.members[0].name),
               let summary = status.groups.first(where: { $0.group.rawValue == group }),
               Set(names).isSubset(of: summary.members.map(\.description)) {
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ExperimentError("the listeners \(names) did not join \(group) within 30 s")
    }
}

/// The JSON line `cohort flood --json` prints.
struct JSONReport {
    var msgsPerSecond: Double
    var mbPerSecond: Double

    init(_ text: String) throws {
        guard let line = text.split(separator: "\n").last,
              let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let rate = object["msgs_per_second"] as? Double, let mb = object["mb_per_second"] as? Double
        else { throw ExperimentError("unexpected output of cohort flood: \(text)") }
        msgsPerSecond = rate
        mbPerSecond = mb
    }
}

/// What the daemons counted over a whole experiment, read from their Prometheus endpoints (the
/// vocabulary of `docs/metrics.md`): a cross-check of the clients' figures and the write
/// batching factor.
enum DaemonCounters {
    static func read(_ cluster: LocalCluster) async throws -> [String: Any] {
        // A daemon with no local recipient publishes its counts once a second.
        try await Task.sleep(for: .milliseconds(1200))
        var result: [String: Any] = [:]
        for member in cluster.members {
            let page = try await cluster.metrics(of: member.name)
            let frames = page.value("cohort_frames_written_total") ?? 0
            let flushes = page.value("cohort_flushes_total") ?? 0
            result[member.name] = [
                "messages_received_agreed": page.value("cohort_messages_received_total", #"service="agreed""#) ?? 0,
                "messages_delivered_agreed": page.value("cohort_messages_delivered_total", #"service="agreed""#) ?? 0,
                "frames_per_flush": flushes > 0 ? (frames / flushes * 10).rounded() / 10 : 0,
                "intake_pauses": page.value("cohort_intake_pauses_total") ?? 0,
                "peer_messages_unsent": page.value("cohort_peer_messages_unsent_total") ?? 0,
                "membership_changes": page.value("cohort_membership_changes_total", #"kind="regular""#) ?? 0,
            ]
        }
        return result
    }
}
