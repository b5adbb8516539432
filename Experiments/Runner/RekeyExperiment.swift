import ArgumentParser
import Cohort
import CohortCluster
import CohortCore
import CohortSecurity
import Foundation
import Synchronization

/// `rekey`: the time from a daemon partition (and from the merge that heals it) until every
/// member of every group has its new view: under Integrated VS a view with its new group key
/// (the daemons agree on K_s after the membership change, then derive one key per group view),
/// under `plain` the VS view alone. The difference between the two at one number of groups is
/// the price of the keys; the source's Fig. 6 and issue 23's goal (≤ 20 ms beyond the membership
/// change at 1000 groups) compare exactly that.
///
/// `members` clients of this process (VS, spread over the daemons round-robin) each join every
/// one of `groups` groups; then, `repeats` times, the last daemon is cut off and healed again
/// (fault injection). Each fault is timed from the request to the daemons until (a) d1 is
/// operational in the new configuration (polled every 5 ms: the membership change) and (b) every
/// member holds the expected view of every group (the last arrival).
struct RekeyExperiment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rekey",
        abstract: "Time from a daemon partition or merge to every group's new (secure) view vs the number of groups."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Daemons in the cluster (at least 2: the last one is cut off).")
    var daemons = 3

    @Option(help: "Comma-separated numbers of groups (default 1,10,100,1000; quick: 1,10).")
    var groups: String?

    @Option(help: "Members of every group (clients of this process, spread over the daemons).")
    var members = 13

    @Option(help: "Partition and merge cycles per number of groups (default 3; quick: 1).")
    var repeats: Int?

    func validate() throws {
        guard (2...64).contains(daemons) else { throw ValidationError("--daemons takes 2 to 64") }
        if let groups { _ = try integers(groups, option: "--groups") }
        guard members >= daemons else { throw ValidationError("--members must be at least --daemons (a member on every daemon)") }
        if let repeats, repeats < 1 { throw ValidationError("--repeats must be positive") }
    }

    func run() async throws {
        let executables = try Executables.prepare(build: !common.noBuild)
        let architectures = try common.selectedArchitectures()
        let groupCounts = try groups.map { try integers($0, option: "--groups") } ?? (common.quick ? [1, 10] : [1, 10, 100, 1000])
        let cycles = repeats ?? (common.quick ? 1 : 3)
        var output = try ExperimentOutput(
            experiment: "rekey", name: common.resultName("daemons-\(daemons)-members-\(members)"), results: common.resultsFolder,
            columns: ["architecture", "groups", "members", "cycle", "event", "membership_ms", "views_ms", "loadavg"])
        var progress = Progress(total: architectures.count * groupCounts.count)
        var figures: [String: [Double]] = [:]
        for architecture in architectures {
            for groupCount in groupCounts {
                // A cluster per point: the groups of the last point do not weigh on this one.
                let cluster = try await LocalCluster.start(
                    daemons: daemons, basePort: try LocalCluster.freePorts(2 * daemons), architecture: architecture.name,
                    daemonExecutable: executables.daemon, faultInjection: true)
                let run = RekeyRun(
                    cluster: cluster, architecture: architecture, transport: common.transport, groups: groupCount,
                    members: members, cycles: cycles)
                let samples = try await stopping(cluster) { try await run.measure() }
                var line: [String] = []
                for sample in samples {
                    try output.append([architecture.name, groupCount, members, sample.cycle, sample.event,
                                       String(format: "%.1f", sample.membership), String(format: "%.1f", sample.views),
                                       ExperimentOutput.loadAverage()[0]])
                    figures["\(architecture.name)/\(groupCount)/\(sample.event)/membership_ms", default: []].append(sample.membership)
                    figures["\(architecture.name)/\(groupCount)/\(sample.event)/views_ms", default: []].append(sample.views)
                }
                for event in ["partition", "merge"] {
                    let views = median(samples.filter { $0.event == event }.map(\.views))
                    let membership = median(samples.filter { $0.event == event }.map(\.membership))
                    line.append(String(format: "%@ %.0f ms (membership %.0f ms)", event, views, membership))
                }
                progress.report("\(architecture.name), \(groupCount) groups of \(members): every new view after " + line.joined(separator: ", "))
            }
        }
        let medians = figures.mapValues { (median($0) * 10).rounded() / 10 }
        try output.finish(
            parameters: ["daemons": daemons, "groups": groupCounts, "members": members, "repeats": cycles,
                         "architectures": architectures.map(\.name), "transport": common.transport.rawValue, "semantics": "vs",
                         "fault": "the last daemon cut off from the others (fault injection), then healed", "poll_ms": 5,
                         "members_placement": "round-robin over the daemons", "quick": common.quick,
                         "clock": "CLOCK_MONOTONIC, from the fault request to d1 operational (membership_ms) and to the last member's view of the last group (views_ms)"],
            summary: ["medians_ms": medians])
        for key in medians.keys.sorted() { print("median \(key): \(medians[key]!) ms") }
    }
}

/// One architecture and number of groups on one cluster: the members join every group, then
/// the partition/merge cycles.
struct RekeyRun: Sendable {
    let cluster: LocalCluster
    let architecture: Architecture
    let transport: ClientTransport
    let groups: Int
    let members: Int
    let cycles: Int

    struct Sample: Sendable {
        var cycle: Int
        var event: String
        var membership: Double
        var views: Double
    }

    private func group(_ index: Int) -> String { "rekey-\(index)" }

    /// The daemon of member `index` (as ``withMembers`` places them).
    private func daemon(of index: Int) -> LocalCluster.Member { cluster.members[index % cluster.members.count] }

    func measure() async throws -> [Sample] {
        let tracker = ViewTracker(members: members, groups: groups, keyed: architecture.sealsClientData)
        let names = (0..<groups).map(group)
        let indexOf = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        // Every member expects a view of all members of every group: its joins are done.
        tracker.expect(Array(repeating: members, count: members))
        return try await withMembers(
            members, of: cluster, over: transport, joining: names,
            options: { index in
                var options = ConnectionOptions(name: "m\(index)")
                options.architecture = architecture
                options.semantics = .virtualSynchrony
                return options
            },
            onView: { index, view in
                if let group = indexOf[view.group.rawValue] { tracker.record(member: index, group: group, view: view, at: monotonicNanoseconds()) }
            },
            timeout: .seconds(180 + cycles * (30 + groups / 10)), what: "rekey with \(groups) groups under \(architecture.name)"
        ) {
            try await cycle(tracker)
        }
    }

    private func cycle(_ tracker: ViewTracker) async throws -> [Sample] {
        _ = try await tracker.wait(timeout: .seconds(120 + groups / 5), what: "the members' joins of \(groups) groups")
        let all = Set(cluster.members.map(\.name))
        let last = cluster.members.last!.name
        let rest = all.subtracting([last])
        // After the partition, a member sees the members on its side of it.
        let apart = (0..<members).filter { daemon(of: $0).name == last }.count
        let split = (0..<members).map { daemon(of: $0).name == last ? apart : members - apart }
        var samples: [Sample] = []
        for number in 1...cycles {
            for (event, component, expected) in [("partition", rest, split), ("merge", all, Array(repeating: members, count: members))] {
                tracker.expect(expected)
                let start = monotonicNanoseconds()
                if event == "partition" { try await cluster.partition([rest, [last]]) } else { try await cluster.heal() }
                async let formed = cluster.waitForD1(in: component)
                let views = try await tracker.wait(timeout: .seconds(60 + groups / 10), what: "every group's view after the \(event)")
                let membership = try await formed
                samples.append(Sample(cycle: number, event: event, membership: Double(membership - start) / 1e6,
                                      views: Double(views - start) / 1e6))
                // The next fault starts from settled daemons.
                try await cluster.waitUntilFormed(component)
                if event == "partition" { try await cluster.waitUntilFormed([last]) }
            }
        }
        return samples
    }
}

/// Which members hold the expected view of which groups, and when the last one arrived.
final class ViewTracker: Sendable {
    private struct State {
        /// Members of the view each member expects, by member.
        var expected: [Int] = []
        /// Member × group pairs that hold their expected view.
        var reached: Set<Int> = []
        var last: UInt64 = 0
        var failure: String?
        var waiter: CheckedContinuation<UInt64, any Error>?
    }

    private let state = Mutex(State())
    private let members: Int
    private let groups: Int
    /// Whether views must carry a group key.
    private let keyed: Bool

    init(members: Int, groups: Int, keyed: Bool) {
        self.members = members
        self.groups = groups
        self.keyed = keyed
    }

    /// Starts waiting for every member to hold, in every group, a view of `expected[member]` members.
    func expect(_ expected: [Int]) {
        state.withLock { state in
            state.expected = expected
            state.reached = []
            state.last = 0
        }
    }

    /// Member `member` got `view` of group `group` at `time`.
    func record(member: Int, group: Int, view: GroupView, at time: UInt64) {
        let waiter = state.withLock { state -> (CheckedContinuation<UInt64, any Error>, Result<UInt64, any Error>)? in
            if keyed && view.key == nil {
                state.failure = "the view \(view.viewID) of \(view.group) reached m\(member) without its group key"
            } else if view.members.count == state.expected[member] {
                state.reached.insert(member * groups + group)
                state.last = max(state.last, time)
            } else {
                state.reached.remove(member * groups + group)
            }
            guard let waiter = state.waiter else { return nil }
            if let failure = state.failure {
                state.waiter = nil
                return (waiter, .failure(ExperimentError(failure)))
            }
            guard state.reached.count == members * groups else { return nil }
            state.waiter = nil
            return (waiter, .success(state.last))
        }
        if let (waiter, result) = waiter { waiter.resume(with: result) }
    }

    /// Waits until every member holds its expected view of every group; returns the time the
    /// last one arrived. Throws after `timeout` (and every wait after it throws too).
    func wait(timeout: Duration, what: String) async throws -> UInt64 {
        let timer = Task {
            try await Task.sleep(for: timeout)
            let waiter = state.withLock { state in
                let missing = members * groups - state.reached.count
                state.failure = "\(what): \(missing) of \(members * groups) member views missing after \(timeout)"
                defer { state.waiter = nil }
                return state.waiter.map { ($0, state.failure!) }
            }
            if let (waiter, failure) = waiter { waiter.resume(throwing: ExperimentError(failure)) }
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let now = state.withLock { state -> Result<UInt64, any Error>? in
                if let failure = state.failure { return .failure(ExperimentError(failure)) }
                if state.reached.count == members * groups { return .success(state.last) }
                state.waiter = continuation
                return nil
            }
            if let now { continuation.resume(with: now) }
        }
    }
}
