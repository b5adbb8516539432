import ArgumentParser
import Cohort
import CohortCore
import CohortCluster
import CohortDaemon
import CohortSecurity
import CohortTransport
import Foundation

/// `cohort demo`: the one command a newcomer runs.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a local cluster, join clients to a group, exchange messages, check the order, print throughput.")

    @Option(help: "Number of daemons (clients are spread over them).")
    var daemons: Int = 3

    @Option(help: "Number of clients.")
    var clients: Int = 4

    @Option(help: "Messages each client sends.")
    var messages: Int = 2000

    @Option(help: "Payload size in bytes.")
    var size: Int = 256

    @Option(help: "First client port of the cluster (default: a free port).")
    var basePort: Int?

    @Option(help: "Group semantics of the clients: evs (the daemons' Extended Virtual Synchrony) or vs (Virtual Synchrony through the client library's flush layer). Default: vs under an architecture that keys VS views, else evs.")
    var semantics: String?

    @Option(help: "Security architecture of the daemons and clients: \(Architecture.registered.map(\.name).joined(separator: ", ")).")
    var architecture: String = Architecture.integratedVS.name

    /// The semantics asked for, or the architecture's own.
    private func chosenSemantics() throws -> GroupSemantics {
        do {
            return try Architecture.named(architecture).semantics(named: semantics)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func validate() throws {
        guard clients >= 1, clients <= 200 else { throw ValidationError("--clients must be 1...200") }
        guard messages >= 1 else { throw ValidationError("--messages must be positive") }
        guard size >= 16 else { throw ValidationError("--size must be at least 16") }
        _ = try chosenSemantics()
    }

    func run() async throws {
        emit("starting \(daemons) daemon(s), architecture \(architecture)...")
        let cluster = try await LocalCluster.start(
            daemons: daemons, basePort: try basePort ?? LocalCluster.freePorts(2 * daemons), architecture: architecture)
        do {
            try await exchange(cluster: cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
        emit("cluster stopped")
    }

    private func exchange(cluster: LocalCluster) async throws {
        for member in cluster.members { emit("  \(member.name): \(member.clientAddress) \(member.socketAddress)") }
        let (clients, messages, size) = (self.clients, self.messages, self.size)
        let semantics = try chosenSemantics()
        let architecture = try Architecture.named(self.architecture)
        // An architecture that hands clients keys serves them over TLS or the Unix socket only:
        // the demo's clients then all use the sockets (plain TCP would be refused).
        let keysOnLinks = architecture.sealsClientData
        if keysOnLinks { emit("  (\(architecture.name) hands out group keys: every client connects over its daemon's Unix socket)") }
        let group = "demo"
        let total = clients * messages
        let allJoined = DeliveryCounter()
        let start = ContinuousClock.now
        // Every client: join, wait until all have joined, send, receive everything, and return
        // a digest of the order in which it received the messages.
        let digests = try await withThrowingTaskGroup(of: (Int, UInt64, Double).self) { tasks in
            for index in 0..<clients {
                let daemon = cluster.members[index % cluster.members.count]
                // Alternate transports so the demo exercises both.
                let addressText = index % 2 == 0 && !keysOnLinks ? daemon.clientAddress : daemon.socketAddress
                let address = try DaemonAddress(parsing: addressText)
                tasks.addTask {
                    let name = "client\(index + 1)"
                    var options = ConnectionOptions(name: name)
                    options.semantics = semantics
                    options.architecture = architecture
                    return try await CohortClient.withConnection(to: address, options: options) { connection in
                        try await connection.join(group)
                        var events = connection.events.makeAsyncIterator()
                        while let event = try await events.next() {
                            if case .error = event { emit("  \(name): \(describe(event))") }
                            guard case .view(let view) = event else { continue }
                            if index == 0 { emit("  \(describe(event))") }
                            if view.members.count == clients { break }
                        }
                        allJoined.increment()
                        await allJoined.wait(atLeast: clients)
                        let sendStart = ContinuousClock.now
                        let payloads = (1...messages).map { numberedPayload(name: name, sequence: $0, text: nil, size: size) }
                        let sender = Task {
                            for chunk in stride(from: 0, to: payloads.count, by: 128) {
                                let batch = try payloads[chunk..<min(chunk + 128, payloads.count)].map {
                                    try connection.message($0, to: [group])
                                }
                                try await connection.multicast(batch: batch)
                            }
                        }
                        var digest: UInt64 = 0xcbf2_9ce4_8422_2325
                        var received = 0
                        while received < total, let event = try await events.next() {
                            if case .error = event { emit("  \(name): \(describe(event))") }
                            guard case .message(let message) = event else { continue }
                            received += 1
                            for byte in message.sender.description.utf8 + message.payload.prefix(24) {
                                digest = (digest ^ UInt64(byte)) &* 0x100_0000_01b3
                            }
                        }
                        try await sender.value
                        return (received, digest, seconds(since: sendStart))
                    }
                }
            }
            var results: [(Int, UInt64, Double)] = []
            for try await result in tasks { results.append(result) }
            return results
        }
        let elapsed = seconds(since: start)
        let complete = digests.allSatisfy { $0.0 == total }
        let sameOrder = Set(digests.map(\.1)).count == 1
        let slowest = digests.map(\.2).max() ?? elapsed
        emit("\(clients) clients each sent \(messages) messages of \(size) bytes (AGREED, \(semantics == .virtualSynchrony ? "Virtual Synchrony" : "EVS"), \(architecture.name)) and received \(total)")
        emit("  every client received every message: \(complete ? "yes" : "NO")")
        if keysOnLinks {
            // The daemons' shared key in force (its configuration and fingerprint), from each daemon.
            var epochs: [String] = []
            for member in cluster.members {
                let status = try await CohortClient.status(of: try DaemonAddress(parsing: member.socketAddress), architecture: architecture)
                epochs.append("\(member.name) \(status.daemonKeyEpoch ?? "none")")
            }
            emit("  daemon key: \(epochs.joined(separator: "; "))")
        }
        emit("  every client saw one total order:    \(sameOrder ? "yes" : "NO") (digest \(String(digests.first?.1 ?? 0, radix: 16)))")
        emit(String(format: "  delivered %.0f msg/s to each client (%.1f MB/s), %.2f s in all",
                    Double(total) / slowest, Double(total * size) / slowest / 1e6, elapsed))
        guard complete, sameOrder else { throw ExitCode.failure }
    }
}

