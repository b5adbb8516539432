import CohortCluster
import CohortDaemon
import Foundation

/// `cohort-membership-bench`: the cost of a daemon membership change on real processes.
///
/// For each cluster size, starts that many `cohortd` processes on loopback (with
/// `--fault-injection`) and repeats: cut the last daemon off (`partition`), heal (`merge`),
/// kill -9 it (`crash`) and start it again (`restart`). Each figure is the time from the fault
/// (or the heal, or the start) until d1 is operational in a configuration of the expected
/// daemons, polled every 5 ms through d1's status; after each step every daemon of the component
/// is checked to agree. Writes Results/membership-cost-real/membership-cost.csv and meta.json.
///
///     swift run -c release cohort-membership-bench [--daemons 3,13] [--repeats 5]
@main
struct MembershipBenchmark {
    static func main() async throws {
        var sizes = [3, 13]
        var repeats = 5
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--daemons": sizes = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }
            case "--repeats": repeats = Int(arguments.next() ?? "") ?? repeats
            default:
                print("usage: cohort-membership-bench [--daemons 3,13] [--repeats 5]")
                return
            }
        }
        let out = URL(fileURLWithPath: "Results/membership-cost-real")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var rows = ["daemons,repeat,event,milliseconds"]
        var figures: [String: [Double]] = [:]
        let membership = DaemonConfiguration.Membership()
        for size in sizes {
            let cluster = try await LocalCluster.start(
                daemons: size, basePort: try LocalCluster.freePorts(2 * size),
                daemonExecutable: LocalCluster.defaultDaemonExecutable(), faultInjection: true, readyTimeout: .seconds(60))
            let all = Set(cluster.members.map(\.name))
            let last = cluster.members.last!.name
            let rest = all.subtracting([last])
            func record(_ event: String, _ repetition: Int, since start: ContinuousClock.Instant) {
                let elapsed = ContinuousClock.now - start
                let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                rows.append("\(size),\(repetition),\(event),\(String(format: "%.1f", milliseconds))")
                figures["\(size)/\(event)", default: []].append(milliseconds)
                print("\(size) daemons, run \(repetition): \(event) \(String(format: "%.0f", milliseconds)) ms")
            }
            do {
                for repetition in 1...repeats {
                    var start = ContinuousClock.now
                    try await cluster.partition([rest, [last]])
                    try await waitForD1(cluster, in: rest)
                    record("partition", repetition, since: start)
                    try await cluster.waitUntilFormed(rest)
                    try await cluster.waitUntilFormed([last])

                    start = ContinuousClock.now
                    try await cluster.heal()
                    try await waitForD1(cluster, in: all)
                    record("merge", repetition, since: start)
                    try await cluster.waitUntilFormed(all)

                    start = ContinuousClock.now
                    try await cluster.kill(last)
                    try await waitForD1(cluster, in: rest)
                    record("crash", repetition, since: start)
                    try await cluster.waitUntilFormed(rest)

                    start = ContinuousClock.now
                    try await cluster.restart(last)
                    try await waitForD1(cluster, in: all)
                    record("restart", repetition, since: start)
                    try await cluster.waitUntilFormed(all)
                }
            } catch {
                await cluster.stop()
                throw error
            }
            await cluster.stop()
        }
        try (rows.joined(separator: "\n") + "\n").write(to: out.appendingPathComponent("membership-cost.csv"), atomically: true, encoding: .utf8)
        let medians = figures.mapValues { values in values.sorted()[values.count / 2] }
        let meta: [String: Any] = [
            "experiment": "membership-cost-real",
            "revision": revision(),
            "date": ISO8601DateFormatter().string(from: Date()),
            "machine": ["cores": ProcessInfo.processInfo.activeProcessorCount,
                        "loadavg_after": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? ""],
            "parameters": ["daemons": sizes, "repeats": repeats, "poll_ms": 5,
                           "token_loss_ms": membership.tokenLossMilliseconds, "consensus_ms": membership.consensusMilliseconds,
                           "merge_detect_ms": membership.mergeDetectMilliseconds, "join_ms": membership.joinMilliseconds],
            "medians_ms": medians,
        ]
        let data = try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: out.appendingPathComponent("meta.json"))
        for key in medians.keys.sorted() { print("median \(key): \(String(format: "%.0f", medians[key]!)) ms") }
    }

    /// Polls d1 every 5 ms until it is operational in a configuration of exactly `component`.
    static func waitForD1(_ cluster: LocalCluster, in component: Set<String>) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let status = try? await cluster.status(of: "d1"), status.membershipState == "operational",
               status.configurationMemberNames == component {
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ClusterError("d1 did not reach a configuration of \(component.sorted()) within 30 s")
    }

    static func revision() -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        process.arguments = ["rev-parse", "HEAD"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try? process.run()
        process.waitUntilExit()
        let head = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let status = Process()
        status.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        status.arguments = ["status", "--porcelain", "--untracked-files=no", "--", ".", ":!Results"]
        let statusPipe = Pipe()
        status.standardOutput = statusPipe
        try? status.run()
        status.waitUntilExit()
        let dirty = !statusPipe.fileHandleForReading.readDataToEndOfFile().isEmpty
        return head + (dirty ? "-dirty" : "")
    }
}
