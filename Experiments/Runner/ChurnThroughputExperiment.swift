import ArgumentParser
import Cohort
import CohortCluster
import CohortCore
import CohortSecurity
import Foundation
import Synchronization

/// `churn-throughput`: what membership churn costs a flooding group, EVS vs VS. A sender on d1
/// multicasts AGREED messages in batches as fast as flow control allows (in VS it waits out
/// each flush and sends again in the next view); a receiver on every other daemon counts what
/// it gets; a churner on the last daemon joins and leaves the group every `period`. The figure
/// is the slowest receiver's messages per second over the measured seconds.
struct ChurnThroughputExperiment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "churn-throughput",
        abstract: "Throughput of a flooding group under join/leave churn, EVS vs VS (the flush)."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Daemons in the cluster (at least 2).")
    var daemons = 3

    @Option(help: "Payload size in bytes.")
    var size = 1024

    @Option(help: "Comma-separated churn periods in milliseconds between a join and the next leave; 0 = no churn (default 0,200,50,20; quick: 0,50).")
    var periods: String?

    @Option(help: "Seconds measured per run (default 5; quick: 2).")
    var seconds: Double?

    func validate() throws {
        guard (2...64).contains(daemons) else { throw ValidationError("--daemons takes 2 to 64") }
        guard size >= 16 else { throw ValidationError("--size must be at least 16") }
        if let seconds, seconds <= 0 { throw ValidationError("--seconds must be positive") }
        if let periods { _ = try integers(periods, option: "--periods", minimum: 0) }
        guard common.architectures == nil || common.architectures == Architecture.plain.name else {
            throw ValidationError("--architectures: churn-throughput compares EVS with VS, so it runs plain (an architecture that keys views is VS only; its price of a view change is what flush-cost and rekey measure)")
        }
    }

    func run() async throws {
        let executables = try Executables.prepare(build: !common.noBuild)
        let periodList = try periods.map { try integers($0, option: "--periods", minimum: 0) } ?? (common.quick ? [0, 50] : [0, 200, 50, 20])
        let measured = seconds ?? (common.quick ? 2 : 5)
        var output = try ExperimentOutput(
            experiment: "churn-throughput", name: common.resultName("daemons-\(daemons)-\(size)B"), results: common.resultsFolder,
            columns: ["semantics", "period_ms", "msgs_per_second", "mb_per_second", "changes", "refused_sends", "loadavg"])
        var progress = Progress(total: periodList.count * 2)
        var summary: [String: Any] = [:]
        let cluster = try await LocalCluster.start(
            daemons: daemons, basePort: try LocalCluster.freePorts(2 * daemons), daemonExecutable: executables.daemon)
        try await stopping(cluster) {
            for period in periodList {
                for semantics in GroupSemantics.allCases {
                    let run = ChurnRun(cluster: cluster, transport: common.transport, semantics: semantics, size: size, period: period, seconds: measured)
                    let result = try await run.measure()
                    let rate = Double(result.slowest) / measured
                    try output.append([semantics.rawValue, period, Int(rate), String(format: "%.1f", rate * Double(size) / 1e6),
                                       result.changes, result.refused, ExperimentOutput.loadAverage()[0]])
                    summary["\(semantics.rawValue)/\(period)"] = ["msgs_per_second": Int(rate), "changes": result.changes]
                    progress.report(String(format: "%@ churn every %d ms: %.0f msg/s (slowest receiver), %d membership changes, %d sends refused during flushes",
                                           semantics.rawValue, period, rate, result.changes, result.refused))
                }
            }
        }
        try output.finish(
            parameters: ["daemons": daemons, "size": size, "periods_ms": periodList, "seconds": measured, "service": "agreed",
                         "sender_daemon": "d1", "churner_daemon": "d\(daemons)", "transport": common.transport.rawValue, "quick": common.quick,
                         "flush_policy": "automatic"],
            summary: summary)
    }
}

/// One run: receivers, sender and churner for `seconds`.
struct ChurnRun: Sendable {
    let cluster: LocalCluster
    let transport: ClientTransport
    let semantics: GroupSemantics
    let size: Int
    let period: Int
    let seconds: Double

    struct Result: Sendable {
        var slowest: Int
        var changes: Int
        var refused: Int
    }

    private var group: String { "churn-\(semantics.rawValue)-\(period)" }

    private func options(_ name: String) -> ConnectionOptions {
        var options = ConnectionOptions(name: name)
        options.semantics = semantics
        return options
    }

    func measure() async throws -> Result {
        let receivers = Array(cluster.members.dropFirst())
        let ready = DeliveryGate(count: receivers.count)
        let stop = Shared<Bool>(false)
        let changes = Shared<Int>(0)
        return try await withThrowingTaskGroup(of: (counted: Int?, refused: Int?).self) { tasks in
            let start = monotonicNanoseconds() + 2_000_000_000
            let end = start + UInt64(seconds * 1e9)
            for (index, member) in receivers.enumerated() {
                tasks.addTask {
                    try await CohortClient.withConnection(to: member.daemonAddress(over: transport), options: options("receiver\(index)")) { connection in
                        try await connection.join(group)
                        var counted = 0
                        var joined = false
                        for try await event in connection.events {
                            let now = monotonicNanoseconds()
                            switch event {
                            case .view(let view) where !joined && view.members.contains(connection.member):
                                joined = true
                                ready.arrive()
                            case .message:
                                if now >= start && now < end { counted += 1 }
                            default:
                                break
                            }
                            // (The sender's leave at the end is an event too.)
                            if now >= end { return (counted, nil) }
                        }
                        return (counted, nil)
                    }
                }
            }
            tasks.addTask {
                await ready.wait()
                return (nil, try await send(start: start, end: end, stop: stop))
            }
            if period > 0 {
                tasks.addTask {
                    await ready.wait()
                    try await churn(until: end, changes: changes)
                    return (nil, nil)
                }
            }
            var slowest = Int.max
            var refused = 0
            var receiversDone = 0
            while let result = try await tasks.next() {
                if let counted = result.counted {
                    slowest = min(slowest, counted)
                    receiversDone += 1
                    if receiversDone == receivers.count { stop.value.store(true, ordering: .relaxed) }
                }
                if let sent = result.refused { refused = sent }
            }
            return Result(slowest: slowest == .max ? 0 : slowest, changes: changes.value.load(ordering: .relaxed), refused: refused)
        }
    }

    /// Floods until the receivers are done; returns how many sends a flush refused.
    private func send(start: UInt64, end: UInt64, stop: Shared<Bool>) async throws -> Int {
        try await CohortClient.withConnection(to: cluster.members[0].daemonAddress(over: transport), options: options("sender")) { connection in
            let (views, viewArrived) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            try await connection.join(group)
            let reader = Task {
                for try await event in connection.events {
                    if case .view(let view) = event, view.members.contains(connection.member) { viewArrived.yield() }
                }
            }
            defer { reader.cancel() }
            var nextView = views.makeAsyncIterator()
            guard await nextView.next() != nil else { return 0 }
            let payload = [UInt8](repeating: 0x5A, count: size)
            var refused = 0
            while !stop.value.load(ordering: .relaxed) && monotonicNanoseconds() < end + 1_000_000_000 {
                do {
                    let batch = try (0..<64).map { _ in try connection.message(payload, to: [group]) }
                    try await connection.multicast(batch: batch)
                } catch CohortError.virtualSynchrony(.flushing) {
                    refused += 1
                    guard await nextView.next() != nil else { break }
                }
            }
            return refused
        }
    }

    /// Joins and leaves the group every `period` milliseconds until `end`.
    private func churn(until end: UInt64, changes: Shared<Int>) async throws {
        try await CohortClient.withConnection(to: cluster.members[cluster.members.count - 1].daemonAddress(over: transport), options: options("churner")) { connection in
            var events = connection.events.makeAsyncIterator()
            while monotonicNanoseconds() < end {
                try await connection.join(group)
                while let event = try await events.next() {
                    if case .view(let view) = event, view.members.contains(connection.member) { break }
                }
                changes.value.add(1, ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(period))
                try await connection.leave(group)
                while let event = try await events.next() {
                    if case .view(let view) = event, !view.members.contains(connection.member) { break }
                }
                changes.value.add(1, ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(period))
            }
        }
    }
}

/// An atomic value the tasks of a run share.
final class Shared<Value: AtomicRepresentable>: Sendable where Value: Sendable {
    let value: Atomic<Value>
    init(_ initial: Value) { value = Atomic(initial) }
}
