import ArgumentParser
import Cohort
import CohortCore
import Foundation

/// `cohort user`: an interactive client like Spread's spuser.
struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Interactive client: join, leave, send, receive, show membership.")

    @OptionGroup var connection: ConnectionArguments

    @Option(help: "Private name (default: generated).")
    var name: String?

    static let help = """
        commands:
          j GROUP            join GROUP
          l GROUP            leave GROUP
          s GROUP TEXT       send TEXT to GROUP (agreed)
          s! SERVICE GROUP TEXT  send with a service: unreliable reliable fifo causal agreed safe
          m [GROUP]          show the last view of GROUP (or of every joined group)
          t                  daemon status
          h                  this help
          q                  quit
        """

    func run() async throws {
        let options = try connection.options(name: name ?? generatedName("user"))
        let lines = StandardInputLines()
        try await CohortClient.withConnection(to: try connection.address(), options: options) { connection in
            emit("connected as \(connection.member) (architecture \(connection.architecture)); h for help")
            let views = ViewBook()
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    for try await event in connection.events {
                        if case .view(let view) = event { views.record(view) }
                        if case .status(let status) = event {
                            emit("daemon \(status.daemonName): \(status.clients.count) clients, \(status.groups.count) groups")
                            for group in status.groups {
                                emit("  \(group.group): \(group.members.map(\.description).joined(separator: " "))")
                            }
                            continue
                        }
                        emit(describe(event))
                    }
                    emit("disconnected")
                }
                tasks.addTask {
                    for await line in lines {
                        guard try await execute(line, connection: connection, views: views) else { break }
                    }
                    try await connection.disconnect()
                }
                try await tasks.next()
                tasks.cancelAll()
            }
        }
    }

    /// Runs one command line; `false` to quit.
    private func execute(_ line: String, connection: CohortConnection, views: ViewBook) async throws -> Bool {
        let words = line.split(separator: " ", maxSplits: 2).map(String.init)
        guard let command = words.first else { return true }
        do {
            switch command {
            case "j" where words.count == 2: try await connection.join(words[1])
            case "l" where words.count == 2: try await connection.leave(words[1])
            case "s" where words.count == 3: try await connection.multicast(words[2], to: words[1])
            case "s!" where words.count == 3:
                let rest = words[2].split(separator: " ", maxSplits: 1).map(String.init)
                guard rest.count == 2 else { emit("usage: s! SERVICE GROUP TEXT"); return true }
                try await connection.multicast(rest[1], to: rest[0], service: try parseService(words[1]))
            case "m":
                let shown = views.views(group: words.count > 1 ? words[1] : nil)
                if shown.isEmpty { emit("no views yet") }
                for view in shown { emit(describe(.view(view))) }
            case "t": try await connection.requestStatus()
            case "h": emit(Self.help)
            case "q": return false
            default: emit("unknown command; h for help")
            }
        } catch let error as CohortError {
            emit("error: \(error)")
        } catch let error as ValidationError {
            emit("error: \(error.message)")
        }
        return true
    }
}

/// The last view of each group, for the `m` command.
final class ViewBook: @unchecked Sendable {
    private var latest: [String: GroupView] = [:]
    private let lock = NSLock()

    func record(_ view: GroupView) { lock.withLock { latest[view.group.rawValue] = view } }

    func views(group: String?) -> [GroupView] {
        lock.withLock {
            if let group { return latest[group].map { [$0] } ?? [] }
            return latest.keys.sorted().compactMap { latest[$0] }.filter { !$0.members.isEmpty }
        }
    }
}

/// Lines of standard input as an async sequence, read on a dedicated thread so that a
/// blocking read never holds a cooperative thread.
struct StandardInputLines: AsyncSequence, Sendable {
    typealias Element = String
    private let stream: AsyncStream<String>

    init() {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        self.stream = stream
        let thread = Thread {
            while let line = readLine() { continuation.yield(line) }
            continuation.finish()
        }
        thread.start()
    }

    func makeAsyncIterator() -> AsyncStream<String>.Iterator { stream.makeAsyncIterator() }
}
