import ArgumentParser
import Cohort
import CohortCore
import CohortSecurity
import CohortTransport
import Foundation
import Synchronization

/// `cohort flood`: Spread's spflooder — throughput of one sender (or one receiver).
struct FloodCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flood",
        abstract: "Measure throughput: send --count messages of --size bytes as fast as flow control allows.",
        discussion: """
            The sender joins the group and keeps at most --window-bytes of its messages between \
            sending and their delivery back to it, so it measures ordered delivery, not only \
            sending (spflooder's default). With --write-only it does not join and sends as fast \
            as the daemon's backpressure allows (spflooder's -wo); its figure then ends when the \
            daemon has ordered every message. With --receive-only, it waits for --count messages \
            from others and reports the rate it received them at. MB is 10^6 bytes.
            """)

    @OptionGroup var connection: ConnectionArguments

    @Option(help: "Private name (default: generated).")
    var name: String?

    @Option(help: "Group to flood.")
    var group: String = "flood"

    @Option(help: "Number of messages.")
    var count: Int = 100_000

    @Option(help: "Payload size in bytes.")
    var size: Int = 1024

    @Option(help: "Service: unreliable, reliable, fifo, causal, agreed, safe.")
    var service: String = "agreed"

    @Option(help: "Bytes of own messages in flight before the sender waits for their delivery.")
    var windowBytes: Int = 4 * 1024 * 1024

    @Flag(help: "Receive --count messages from other senders instead of sending.")
    var receiveOnly = false

    @Flag(help: "Send without joining the group; paced by the daemon's backpressure only.")
    var writeOnly = false

    @Flag(help: "Prepare (encode, and seal under a sealing architecture) every message anew, as an application does, instead of repeating one; always so under an architecture that seals. Compares architectures like with like.")
    var prepareEach = false

    @Flag(help: "Join with Virtual Synchrony (the client library's flush layer; always so under an architecture that keys VS views).")
    var vs = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        guard count > 0 else { throw ValidationError("--count must be positive") }
        guard size >= 0 else { throw ValidationError("--size must not be negative") }
        guard windowBytes > 0 else { throw ValidationError("--window-bytes must be positive") }
        guard !(receiveOnly && writeOnly) else { throw ValidationError("--receive-only and --write-only exclude each other") }
    }

    func run() async throws {
        HeapTuning.apply()  // docs/daemon.md, "Heap"
        var options = try connection.options(name: name ?? generatedName("flood"))
        if vs { options.semantics = .virtualSynchrony }
        let service = try parseService(self.service)
        let (count, size, group) = (self.count, self.size, self.group)
        let window = max(16, windowBytes / max(size, 1))
        let receiveOnly = self.receiveOnly
        if writeOnly {
            var options = options
            options.wantsMembership = false
            let elapsed = try await CohortClient.withConnection(to: try connection.address(), options: options) { connection in
                try await writeOnlyFlood(connection: connection, count: count, size: size, group: group, service: service)
            }
            return report(elapsed: elapsed, service: service, mode: "write-only")
        }
        let elapsed = try await CohortClient.withConnection(to: try connection.address(), options: options) { connection in
            try await connection.join(group)
            var events = connection.events.makeAsyncIterator()
            // Wait for our own join, so that our messages come back to us.
            while let event = try await events.next() {
                if case .view(let view) = event, view.group.rawValue == group, view.members.contains(connection.member) { break }
            }
            let result = receiveOnly
                ? try await receive(count: count, events: &events, me: connection.member)
                : try await flood(connection: connection, events: events, count: count, size: size, group: group, service: service, window: window)
            try await connection.disconnect()
            return result
        }
        report(elapsed: elapsed, service: service, mode: receiveOnly ? "receive" : "send")
    }

    /// Messages per write: up to 256, and about 1 MiB at most (larger writes only cost the
    /// sender page faults and copies).
    static func batchSize(_ size: Int) -> Int { max(1, min(256, (1 << 20) / max(size, 1))) }

    private func report(elapsed: Double, service: ServiceType, mode: String) {
        let bytes = count * size
        let result: [String: Any] = [
            "messages": count, "bytes": bytes, "seconds": elapsed,
            "msgs_per_second": Double(count) / elapsed, "mb_per_second": Double(bytes) / elapsed / 1e6,
            "size": size, "service": service.level.description, "mode": mode,
        ]
        if json {
            emit(EventJSON.line(result))
        } else {
            let verb = mode == "receive" ? "received" : "flooded"
            emit(String(format: "%@ %d messages of %d bytes in %.3f s: %.0f msg/s, %.1f MB/s (%@)",
                        verb, count, size, elapsed, Double(count) / elapsed, Double(bytes) / elapsed / 1e6, mode))
        }
    }

    /// Sends without receiving; ends when the daemon closed the session after the disconnect,
    /// that is, once it has ordered every message.
    private func writeOnlyFlood(connection: CohortConnection, count: Int, size: Int, group: String, service: ServiceType) async throws -> Double {
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        let batchSize = Self.batchSize(size)
        let start = ContinuousClock.now
        var sent = 0
        var reused: [PreparedMessage]?
        while sent < count {
            let n = min(batchSize, count - sent)
            try await connection.multicast(batch: try Self.batch(n, of: batchSize, payload, group, service, connection, fresh: fresh(connection), reused: &reused))
            sent += n
        }
        try await connection.disconnect()
        for try await _ in connection.events {}
        return seconds(since: start)
    }

    /// Whether to prepare every message anew: asked for, or the connection's architecture seals.
    private func fresh(_ connection: CohortConnection) -> Bool {
        prepareEach || ((try? Architecture.named(connection.architecture))?.sealsClientData ?? true)
    }

    /// The next `n` messages to send: each prepared anew when `fresh` (as an application does;
    /// always under an architecture that seals — a sealed message sent twice is a replay its
    /// receivers refuse — so its cost is measured too), else one prepared message repeated
    /// (made once, kept in `reused`).
    private static func batch(
        _ n: Int, of batchSize: Int, _ payload: [UInt8], _ group: String, _ service: ServiceType, _ connection: CohortConnection,
        fresh: Bool, reused: inout [PreparedMessage]?
    ) throws -> [PreparedMessage] {
        guard !fresh else {
            return try (0..<n).map { _ in try connection.message(payload, to: [group], service: service) }
        }
        if reused == nil { reused = [PreparedMessage](repeating: try connection.message(payload, to: [group], service: service), count: batchSize) }
        return n == batchSize ? reused! : Array(reused!.prefix(n))
    }

    private func receive(count: Int, events: inout CohortEvents.Iterator, me: MemberID) async throws -> Double {
        var received = 0
        var start: ContinuousClock.Instant?
        while received < count, let event = try await events.next() {
            guard case .message(let message) = event, message.sender != me else { continue }
            if start == nil { start = .now }
            received += 1
        }
        guard received == count, let start else { throw CohortError.disconnected }
        return seconds(since: start)
    }

    private func flood(
        connection: CohortConnection, events: CohortEvents.Iterator, count: Int, size: Int, group: String,
        service: ServiceType, window: Int
    ) async throws -> Double {
        let delivered = DeliveryCounter()
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        let start = ContinuousClock.now
        var events = events
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                let batchSize = min(Self.batchSize(size), window)
                var sent = 0
                var reused: [PreparedMessage]?
                while sent < count {
                    await delivered.wait(atLeast: sent + batchSize - window)
                    let n = min(batchSize, count - sent)
                    try await connection.multicast(batch: try Self.batch(n, of: batchSize, payload, group, service, connection, fresh: fresh(connection), reused: &reused))
                    sent += n
                }
            }
            // Receive in this task: the event iterator has one consumer.
            var own = 0
            while own < count, let event = try await events.next() {
                if case .message(let message) = event, message.sender == connection.member {
                    own += 1
                    if own % 64 == 0 || own == count { delivered.set(own) }
                } else if case .error(let code, let reason) = event {
                    // A message the daemon dropped (e.g. overloaded) never comes back: say so.
                    throw CohortError.daemonError(code, reason: reason)
                }
            }
            guard own == count else { throw CohortError.disconnected }
            try await tasks.waitForAll()
        }
        return seconds(since: start)
    }
}

/// A count that tasks can wait on: the flood sender waits for its own messages to come back,
/// demo clients wait for each other.
final class DeliveryCounter: Sendable {
    private struct State {
        var count = 0
        var waiters: [(threshold: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let state = Mutex(State())

    /// Sets the count.
    func set(_ count: Int) { update { $0 = count } }

    /// Adds one to the count.
    func increment() { update { $0 += 1 } }

    private func update(_ change: (inout Int) -> Void) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            change(&state.count)
            let count = state.count
            let ready = state.waiters.filter { $0.threshold <= count }.map(\.continuation)
            state.waiters.removeAll { $0.threshold <= count }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once the count is at least `threshold`.
    func wait(atLeast threshold: Int) async {
        if state.withLock({ $0.count >= threshold }) { return }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if state.count >= threshold { return true }
                state.waiters.append((threshold, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }
}
