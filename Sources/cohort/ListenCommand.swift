import ArgumentParser
import Cohort
import CohortCore
import CohortTransport
import Foundation

/// `cohort listen`: joins groups and prints every event.
struct ListenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Join groups and print every message and view (one JSON object per line with --json).")

    @OptionGroup var connection: ConnectionArguments

    @Option(help: "Private name (default: generated).")
    var name: String?

    @Option(help: "Group to join (repeat for several).")
    var group: [String] = []

    @Option(help: "Exit after this many messages.")
    var count: Int?

    @Option(help: "Exit after this many seconds.")
    var timeout: Double?

    @Flag(help: "Print one JSON object per line per event.")
    var json = false

    @Flag(help: "Join with Virtual Synchrony (the client library's flush layer): closed groups, a flush before each view, messages delivered in the view they were sent in.")
    var vs = false

    func validate() throws {
        guard !group.isEmpty else { throw ValidationError("give at least one --group") }
        if let count, count < 1 { throw ValidationError("--count must be positive") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        HeapTuning.apply()  // docs/daemon.md, "Heap"
        let options = try connection.options(name: name ?? generatedName("listen"))
        let json = self.json
        let count = self.count
        let groups = self.group
        let semantics: GroupSemantics = vs ? .virtualSynchrony : .extendedVirtualSynchrony
        try await CohortClient.withConnection(to: try connection.address(), options: options) { connection in
            for group in groups { try await connection.join(group, semantics: semantics) }
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    var messages = 0
                    for try await event in connection.events {
                        if json {
                            if let object = EventJSON.object(for: event) { emit(EventJSON.line(object)) }
                        } else {
                            emit(describe(event))
                        }
                        if case .message = event {
                            messages += 1
                            if let count, messages >= count { return }
                        }
                        // A denied join leaves nothing to listen to.
                        if case .error(.accessDenied, let reason) = event { throw CohortError.daemonError(.accessDenied, reason: reason) }
                    }
                }
                if let timeout {
                    tasks.addTask { try await Task.sleep(for: .milliseconds(Int64(timeout * 1000))) }
                }
                try await tasks.next()
                tasks.cancelAll()
            }
        }
    }
}
