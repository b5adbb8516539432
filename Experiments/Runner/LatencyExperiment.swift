import ArgumentParser
import Cohort
import CohortCluster
import CohortCore
import CohortSecurity
import Foundation
import Histogram
import Synchronization

/// `latency`: one-way delivery latency at fixed offered loads. A sender on d1 multicasts at a
/// fixed rate (open loop: message i is due at start + i/rate and carries that due time, so a
/// sender held back by backpressure shows up as latency instead of hiding it — no coordinated
/// omission); a receiver on every other daemon (on d1 with one daemon) records, for every
/// message after the warm-up, the time from its due time to its delivery in an HdrHistogram
/// (3 significant digits). Sender and receivers are clients of this process, on one monotonic
/// clock; the daemons are processes.
struct LatencyExperiment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "One-way delivery latency percentiles at fixed offered loads; sender on d1, a receiver on each other daemon, AGREED."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Daemons in the cluster.")
    var daemons = 3

    @Option(help: "Payload size in bytes (at least 16).")
    var size = 1024

    @Option(help: "Comma-separated offered loads in messages per second (default 1000,10000,50000; quick: 10000).")
    var rates: String?

    @Option(help: "Seconds measured per load (default 10; quick: 2), after the warm-up.")
    var seconds: Double?

    @Option(help: "Seconds of warm-up per load, not recorded.")
    var warmup = 1.0

    @Option(help: "Service: agreed, safe, fifo, causal, reliable.")
    var service = "agreed"

    func validate() throws {
        guard (1...64).contains(daemons) else { throw ValidationError("--daemons takes 1 to 64") }
        guard size >= 16 else { throw ValidationError("--size must be at least 16 (the due time and sequence number)") }
        if let rates { _ = try integers(rates, option: "--rates") }
        if let seconds, seconds <= 0 { throw ValidationError("--seconds must be positive") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard ServiceLevel(name: service) != nil, service != "unreliable" else {
            throw ValidationError("--service: reliable, fifo, causal, agreed or safe")
        }
    }

    func run() async throws {
        let executables = try Executables.prepare(build: !common.noBuild)
        let architectures = try common.architectureNames()
        let rateList = try rates.map { try integers($0, option: "--rates") } ?? (common.quick ? [10_000] : [1_000, 10_000, 50_000])
        let measured = seconds ?? (common.quick ? 2 : 10)
        let warmupSeconds = common.quick ? min(warmup, 0.5) : warmup
        let level = ServiceLevel(name: service)!
        var output = try ExperimentOutput(
            experiment: "latency", name: common.resultName("daemons-\(daemons)-\(size)B-\(service)"), results: common.resultsFolder,
            columns: ["architecture", "rate", "size", "receiver", "messages", "sender_msgs_per_second",
                      "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "loadavg"])
        var progress = Progress(total: architectures.count * rateList.count)
        var summary: [String: Any] = [:]
        for architecture in architectures {
            let cluster = try await LocalCluster.start(
                daemons: daemons, basePort: try LocalCluster.freePorts(2 * daemons), architecture: architecture,
                daemonExecutable: executables.daemon)
            try await stopping(cluster) {
                for rate in rateList {
                    let run = LatencyRun(
                        cluster: cluster, architecture: try Architecture.named(architecture), transport: common.transport, rate: rate, size: size,
                        service: ServiceType(level), warmupMessages: Int(Double(rate) * warmupSeconds),
                        measuredMessages: Int(Double(rate) * measured))
                    let result = try await run.measure()
                    var worst: (p50: Double, p99: Double) = (0, 0)
                    for (receiver, histogram) in result.histograms.sorted(by: { $0.key < $1.key }) {
                        func us(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
                        try output.append([architecture, rate, size, receiver, histogram.totalCount, Int(result.senderRate),
                                           String(format: "%.1f", us(50)), String(format: "%.1f", us(90)), String(format: "%.1f", us(99)),
                                           String(format: "%.1f", us(99.9)), String(format: "%.1f", Double(histogram.max) / 1000),
                                           ExperimentOutput.loadAverage()[0]])
                        worst = (max(worst.p50, us(50)), max(worst.p99, us(99)))
                    }
                    summary["\(architecture)/\(rate)"] = ["p50_us": worst.p50, "p99_us": worst.p99, "sender_msgs_per_second": Int(result.senderRate)]
                    progress.report(String(format: "%@ %d msg/s offered (%.0f sent): p50 %.0f µs, p99 %.0f µs (slowest receiver)",
                                           architecture, rate, result.senderRate, worst.p50, worst.p99))
                }
            }
        }
        try output.finish(
            parameters: ["daemons": daemons, "size": size, "rates": rateList, "seconds": measured, "warmup_seconds": warmupSeconds,
                         "service": service, "architectures": architectures, "transport": common.transport.rawValue, "sender_daemon": "d1",
                         "sender": "a non-member of the group; a member where the architecture seals (it must hold the view's key)",
                         "receivers": max(1, daemons - 1), "quick": common.quick,
                         "clock": "CLOCK_MONOTONIC, from each message's due time (open loop) to its delivery"],
            summary: summary)
    }
}

/// One load: the receivers join, the sender sends `warmupMessages + measuredMessages` on
/// schedule, every receiver records the latency of the measured ones.
struct LatencyRun: Sendable {
    let cluster: LocalCluster
    let architecture: Architecture
    let transport: ClientTransport
    let rate: Int
    let size: Int
    let service: ServiceType
    let warmupMessages: Int
    let measuredMessages: Int

    struct Result {
        var histograms: [String: Histogram<UInt64>]
        var senderRate: Double
    }

    private var group: String { "latency-\(rate)" }
    private var total: Int { warmupMessages + measuredMessages }

    func measure() async throws -> Result {
        let receivers = cluster.members.count == 1 ? [cluster.members[0]] : Array(cluster.members.dropFirst())
        let ready = DeliveryGate(count: receivers.count)
        return try await withThrowingTaskGroup(of: (String, Histogram<UInt64>?, Double?).self) { tasks in
            for member in receivers {
                tasks.addTask { (member.name, try await receive(at: member, ready: ready), nil) }
            }
            tasks.addTask {
                await ready.wait()
                return ("sender", nil, try await send())
            }
            var result = Result(histograms: [:], senderRate: 0)
            let deadline = ContinuousClock.now + .seconds(60) + .seconds(Double(total) / Double(rate))
            tasks.addTask {
                try await Task.sleep(until: deadline)
                throw ExperimentError("the latency run at \(rate) msg/s did not finish by its deadline")
            }
            while let (name, histogram, senderRate) = try await tasks.next() {
                if let histogram { result.histograms[name] = histogram }
                if let senderRate { result.senderRate = senderRate }
                if result.histograms.count == receivers.count && result.senderRate > 0 {
                    tasks.cancelAll()
                    break
                }
            }
            return result
        }
    }

    /// Joins the group on `member`'s daemon and records the latency of every measured message.
    private func receive(at member: LocalCluster.Member, ready: DeliveryGate) async throws -> Histogram<UInt64> {
        var options = ConnectionOptions(name: "latency-\(member.name)")
        options.architecture = architecture
        return try await CohortClient.withConnection(to: member.daemonAddress(over: transport), options: options) { connection in
            var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            var events = connection.events.makeAsyncIterator()
            try await connection.join(group)
            // The view that names this receiver: its join is ordered, so the sender's messages,
            // sent after every receiver's view, reach it.
            while let event = try await events.next() {
                if case .view(let view) = event, view.group.rawValue == group, view.members.contains(connection.member) { break }
            }
            ready.arrive()
            var received = 0
            while received < total, let event = try await events.next() {
                guard case .message(let message) = event, message.payload.count >= 16 else { continue }
                let now = monotonicNanoseconds()
                let (due, sequence) = message.payload.withUnsafeBytes { ($0.loadUnaligned(as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
                received += 1
                if sequence >= UInt64(warmupMessages) { _ = histogram.record(now &- due) }
            }
            guard received == total else { throw ExperimentError("the receiver on \(member.name) got \(received) of \(total) messages") }
            return histogram
        }
    }

    /// Sends on schedule; returns the rate achieved.
    private func send() async throws -> Double {
        var options = ConnectionOptions(name: "latency-sender")
        options.architecture = architecture
        // A sender under an architecture that seals must be a member: it seals under the view's key.
        let joins = architecture.sealsClientData
        options.wantsMembership = joins
        let interval = 1e9 / Double(rate)
        return try await CohortClient.withConnection(to: cluster.members[0].daemonAddress(over: transport), options: options) { connection in
            var drain: Task<Void, Never>?
            defer { drain?.cancel() }
            if joins {
                try await connection.join(group)
                var events = connection.events.makeAsyncIterator()
                while let event = try await events.next() {
                    if case .view(let view) = event, view.group.rawValue == group, view.members.contains(connection.member) { break }
                }
                // Its own messages come back to it: read them, or the daemon holds the group back.
                drain = Task { [events] in
                    var events = events
                    while (try? await events.next()) != nil {}
                }
            }
            var payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
            let start = monotonicNanoseconds() + 1_000_000
            var sent = 0
            var batch: [PreparedMessage] = []
            while sent < total {
                let now = monotonicNanoseconds()
                let due = now < start ? 0 : min(total, Int(Double(now - start) / interval) + 1)
                if due > sent {
                    batch.removeAll(keepingCapacity: true)
                    while sent < due && batch.count < 256 {
                        let dueTime = start + UInt64(Double(sent) * interval)
                        payload.withUnsafeMutableBytes {
                            $0.storeBytes(of: dueTime, as: UInt64.self)
                            $0.storeBytes(of: UInt64(sent), toByteOffset: 8, as: UInt64.self)
                        }
                        batch.append(try connection.message(payload, to: [group], service: service))
                        sent += 1
                    }
                    try await connection.multicast(batch: batch)
                } else {
                    let next = start + UInt64(Double(sent) * interval)
                    try await Task.sleep(for: .nanoseconds(Int64(next > now ? next - now : 0)))
                }
            }
            return Double(total) / (Double(monotonicNanoseconds() - start) / 1e9)
        }
    }
}

/// Nanoseconds of CLOCK_MONOTONIC: one clock for every client of this process.
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// Lets tasks wait until `count` others have arrived.
final class DeliveryGate: Sendable {
    private let state: Mutex<(arrived: Int, waiters: [CheckedContinuation<Void, Never>])>
    private let count: Int

    init(count: Int) {
        self.count = count
        state = Mutex((0, []))
    }

    func arrive() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.arrived += 1
            guard state.arrived >= count else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.arrived >= count { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}
