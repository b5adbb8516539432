import ArgumentParser
import Cohort
import CohortCluster
import CohortCore
import CohortSecurity
import Foundation

/// `flush-cost`: what Virtual Synchrony's flush adds to a light-weight group change. For each
/// group size N and semantics (EVS as the daemons give it, VS through the client library's flush
/// layer), N-1 members spread over the daemons sit in a group; a joiner on d1 joins and leaves
/// it `repeats` times. Measured from the join (leave) call: until the joiner has its view, and
/// until every member has the new view. In VS the view waits until every member has flushed (one
/// AGREED flush-ok per member, ordered after the change). All clients are clients of this
/// process, on one monotonic clock; the daemons are processes. Per architecture: one that keys
/// VS views (Integrated VS) measures VS only, and its view carries the group key the daemons
/// derived, so the difference to `plain`'s VS is the price of the keys.
struct FlushCostExperiment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flush-cost",
        abstract: "Join and leave latency of a light-weight group vs its size, EVS vs VS (the flush)."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Daemons in the cluster.")
    var daemons = 3

    @Option(help: "Comma-separated group sizes, the joiner included (default 2,5,10,25,50,100; quick: 2,10).")
    var sizes: String?

    @Option(help: "Join/leave cycles per size and semantics (default 10; quick: 3).")
    var repeats: Int?

    func validate() throws {
        guard (1...64).contains(daemons) else { throw ValidationError("--daemons takes 1 to 64") }
        if let sizes {
            let list = try integers(sizes, option: "--sizes")
            guard list.allSatisfy({ (2...500).contains($0) }) else { throw ValidationError("--sizes: 2 to 500") }
        }
        if let repeats, repeats < 1 { throw ValidationError("--repeats must be positive") }
    }

    func run() async throws {
        let executables = try Executables.prepare(build: !common.noBuild)
        let sizeList = try sizes.map { try integers($0, option: "--sizes") } ?? (common.quick ? [2, 10] : [2, 5, 10, 25, 50, 100])
        let cycles = repeats ?? (common.quick ? 3 : 10)
        var output = try ExperimentOutput(
            experiment: "flush-cost", name: common.resultName("daemons-\(daemons)"), results: common.resultsFolder,
            columns: ["architecture", "semantics", "group_size", "cycle", "join_own_ms", "join_all_ms", "leave_all_ms", "loadavg"])
        let architectures = try common.selectedArchitectures()
        var progress = Progress(total: sizeList.count * architectures.map { $0.semantics.count }.reduce(0, +))
        var summary: [String: Any] = [:]
        for architecture in architectures {
            let cluster = try await LocalCluster.start(
                daemons: daemons, basePort: try LocalCluster.freePorts(2 * daemons), architecture: architecture.name,
                daemonExecutable: executables.daemon)
            try await stopping(cluster) {
                for size in sizeList {
                    for semantics in architecture.semantics {
                        let run = FlushCostRun(
                            cluster: cluster, architecture: architecture, transport: common.transport, semantics: semantics,
                            size: size, cycles: cycles)
                        let samples = try await run.measure()
                        for (cycle, sample) in samples.enumerated() {
                            try output.append([architecture.name, semantics.rawValue, size, cycle + 1, String(format: "%.2f", sample.joinOwn),
                                               String(format: "%.2f", sample.joinAll), String(format: "%.2f", sample.leaveAll),
                                               ExperimentOutput.loadAverage()[0]])
                        }
                        let medians = (median(samples.map(\.joinOwn)), median(samples.map(\.joinAll)), median(samples.map(\.leaveAll)))
                        summary["\(architecture.name)/\(semantics.rawValue)/\(size)"] = [
                            "join_own_ms": medians.0, "join_all_ms": medians.1, "leave_all_ms": medians.2,
                        ]
                        progress.report(String(format: "%@ %@ group of %d: join %.2f ms (own view), %.2f ms (all members), leave %.2f ms (median of %d)",
                                               architecture.name, semantics.rawValue, size, medians.0, medians.1, medians.2, samples.count))
                    }
                }
            }
        }
        try output.finish(
            parameters: ["daemons": daemons, "sizes": sizeList, "repeats": cycles, "transport": common.transport.rawValue, "joiner_daemon": "d1",
                         "architectures": architectures.map(\.name),
                         "members": "spread over the daemons round-robin", "flush_policy": "automatic", "quick": common.quick,
                         "clock": "CLOCK_MONOTONIC, from the join/leave call to the view's arrival at the application"],
            summary: summary)
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }
}

/// One group size and semantics: the members join, then the joiner cycles.
struct FlushCostRun: Sendable {
    let cluster: LocalCluster
    let architecture: Architecture
    let transport: ClientTransport
    let semantics: GroupSemantics
    let size: Int
    let cycles: Int

    struct Sample: Sendable {
        var joinOwn: Double
        var joinAll: Double
        var leaveAll: Double
    }

    /// A view's arrival at one member: how many members it has, and when.
    struct Arrival: Sendable {
        var member: Int
        var count: Int
        var nanoseconds: UInt64
    }

    private var group: String { "flush-\(semantics.rawValue)-\(size)" }

    private func options(_ name: String) -> ConnectionOptions {
        var options = ConnectionOptions(name: name)
        options.architecture = architecture
        options.semantics = semantics
        return options
    }

    func measure() async throws -> [Sample] {
        let (arrivals, arrived) = AsyncStream<Arrival>.makeStream()
        let members = size - 1
        // The members report every view of the group; they stay until the joiner is done.
        return try await withMembers(
            members, of: cluster, over: transport, joining: [group], options: { options("m\($0)-\(group)") },
            onView: { index, view in arrived.yield(Arrival(member: index, count: view.members.count, nanoseconds: monotonicNanoseconds())) },
            timeout: .seconds(120 + 5 * cycles), what: "flush-cost for \(semantics) size \(size)"
        ) {
            try await joinerCycles(arrivals: arrivals, members: members)
        }
    }

    /// Waits until every member has a view of `count` members; returns when the last got it.
    private func lastArrival(
        of count: Int, members: Int, from arrivals: inout AsyncStream<Arrival>.Iterator
    ) async throws -> UInt64 {
        var latest: [Int: (count: Int, at: UInt64)] = [:]
        while let arrival = await arrivals.next() {
            latest[arrival.member] = (arrival.count, arrival.nanoseconds)
            if latest.count == members, latest.values.allSatisfy({ $0.count == count }) {
                return latest.values.map(\.at).max()!
            }
        }
        throw ExperimentError("the members stopped reporting views")
    }

    private func joinerCycles(arrivals: AsyncStream<Arrival>, members: Int) async throws -> [Sample] {
        var arrivals = arrivals.makeAsyncIterator()
        _ = try await lastArrival(of: members, members: members, from: &arrivals)
        return try await CohortClient.withConnection(to: cluster.members[0].daemonAddress(over: transport), options: options("joiner-\(group)")) { connection in
            var events = connection.events.makeAsyncIterator()
            var samples: [Sample] = []
            for _ in 0..<cycles {
                let joinStart = monotonicNanoseconds()
                try await connection.join(group)
                var own: UInt64 = 0
                while let event = try await events.next() {
                    if case .view(let view) = event, view.members.contains(connection.member), view.members.count == members + 1 {
                        own = monotonicNanoseconds()
                        if architecture.sealsClientData && view.key == nil {
                            throw ExperimentError("\(architecture.name) delivered the view \(view.viewID) of \(group) without its group key")
                        }
                        break
                    }
                }
                let all = try await lastArrival(of: members + 1, members: members, from: &arrivals)
                let leaveStart = monotonicNanoseconds()
                try await connection.leave(group)
                // The joiner's own leave view arrives at once; the members' views are what count.
                let left = try await lastArrival(of: members, members: members, from: &arrivals)
                while let event = try await events.next() {
                    if case .view(let view) = event, !view.members.contains(connection.member) { break }
                }
                samples.append(Sample(
                    joinOwn: Double(own - joinStart) / 1e6, joinAll: Double(max(all, own) - joinStart) / 1e6,
                    leaveAll: Double(left - leaveStart) / 1e6))
            }
            return samples
        }
    }
}
