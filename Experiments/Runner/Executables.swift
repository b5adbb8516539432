import Cohort
import CohortCluster
import CohortCore
import Foundation

/// The `cohortd` and `cohort` executables an experiment starts as processes.
struct Executables {
    /// The daemon.
    var daemon: URL
    /// The CLI (`cohort flood` is the load generator of the throughput experiment).
    var client: URL

    /// The executables of this runner's own build (`.build/release` when it runs in release),
    /// or `$COHORTD` and `$COHORT` to measure another build. Unless `build` is false or both
    /// are given, brings them up to date first (`swift build --product ...`, seconds when
    /// nothing changed): `swift run cohort-experiments` builds only the runner, and an
    /// experiment must not measure stale daemons.
    static func prepare(build: Bool) throws -> Executables {
        let environment = ProcessInfo.processInfo.environment
        let folder = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let daemon = environment["COHORTD"].map { URL(fileURLWithPath: $0) } ?? folder.appendingPathComponent("cohortd")
        let client = environment["COHORT"].map { URL(fileURLWithPath: $0) } ?? folder.appendingPathComponent("cohort")
        let configuration = folder.lastPathComponent == "debug" ? "debug" : "release"
        if configuration == "debug" {
            print("note: a debug build; figures of a debug build say little (swift run -c release cohort-experiments ...)")
        }
        if build && (environment["COHORTD"] == nil || environment["COHORT"] == nil) {
            for product in ["cohortd", "cohort"] {
                let status = try run("/usr/bin/env", ["swift", "build", "-c", configuration, "--product", product])
                guard status == 0 else { throw ExperimentError("`swift build -c \(configuration) --product \(product)` failed (exit \(status))") }
            }
        }
        for executable in [daemon, client] where !FileManager.default.isExecutableFile(atPath: executable.path) {
            throw ExperimentError("\(executable.path) not found: build it (swift build -c release) or set COHORTD/COHORT")
        }
        return Executables(daemon: daemon, client: client)
    }

    /// Runs a command to its end with this process's output; returns its exit status.
    private static func run(_ path: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// A child process with a short standard output (read once it exits: it must fit the pipe's
/// 64 KiB), awaited with a deadline.
final class ChildProcess: @unchecked Sendable {
    private let process = Process()
    private let output = Pipe()
    private let finished: AsyncStream<Void>

    /// Starts `executable` with `arguments`; its standard error goes to this process's.
    init(_ executable: URL, _ arguments: [String]) throws {
        let signalFinished: AsyncStream<Void>.Continuation
        (finished, signalFinished) = AsyncStream<Void>.makeStream()
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = output
        process.terminationHandler = { [signalFinished] _ in signalFinished.finish() }
        try process.run()
    }

    /// Waits for the process to exit and returns its output; kills it and throws after `timeout`.
    func result(timeout: Duration, what: String) async throws -> String {
        let exited = await withTaskGroup(of: Bool.self) { tasks in
            tasks.addTask { [finished] in
                for await _ in finished {}
                return true
            }
            tasks.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await tasks.next()!
            tasks.cancelAll()
            return first
        }
        guard exited else {
            process.terminate()
            throw ExperimentError("\(what) did not finish within \(timeout)")
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw ExperimentError("\(what) failed (exit \(process.terminationStatus)): \(text)")
        }
        return text
    }

    /// Kills the process if it still runs.
    func kill() {
        if process.isRunning { process.terminate() }
    }
}

/// Runs `body` and stops `cluster` afterwards, whether `body` throws or not.
func stopping<Result>(_ cluster: LocalCluster, _ body: () async throws -> Result) async throws -> Result {
    do {
        let result = try await body()
        await cluster.stop()
        return result
    } catch {
        await cluster.stop()
        throw error
    }
}

extension LocalCluster {
    /// Polls d1 every 5 ms until it is operational in a configuration of exactly `component`;
    /// returns the CLOCK_MONOTONIC time it saw that.
    func waitForD1(in component: Set<String>) async throws -> UInt64 {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let status = try? await status(of: "d1"), status.membershipState == "operational",
               status.configurationMemberNames == component {
                return monotonicNanoseconds()
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ExperimentError("d1 did not reach a configuration of \(component.sorted()) within 30 s")
    }
}

/// Runs `members` clients of `cluster` (client i on daemon i mod n, with `options(i)`) that join
/// `groups` and read their events until `driver` returns — reading, their flush layers run — and
/// hand `onView` every view that names them; returns what `driver` returned, or throws after
/// `timeout`. The clients are of this process, on one monotonic clock.
func withMembers<Result: Sendable>(
    _ members: Int, of cluster: LocalCluster, over transport: ClientTransport, joining groups: [String],
    options: @escaping @Sendable (Int) -> ConnectionOptions, onView: @escaping @Sendable (Int, GroupView) -> Void,
    timeout: Duration, what: String, driver: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Result?.self) { tasks in
        let done = DeliveryGate(count: 1)
        for index in 0..<members {
            let daemon = cluster.members[index % cluster.members.count]
            tasks.addTask {
                try await CohortClient.withConnection(to: daemon.daemonAddress(over: transport), options: options(index)) { connection in
                    let reader = Task {
                        for try await event in connection.events {
                            if case .view(let view) = event, view.members.contains(connection.member) { onView(index, view) }
                        }
                    }
                    for group in groups { try await connection.join(group) }
                    await done.wait()
                    reader.cancel()
                }
                return nil
            }
        }
        tasks.addTask {
            defer { done.arrive() }
            return try await driver()
        }
        tasks.addTask {
            try await Task.sleep(for: timeout)
            throw ExperimentError("\(what) did not finish within \(timeout)")
        }
        while let result = try await tasks.next() {
            if let result {
                tasks.cancelAll()
                return result
            }
        }
        throw ExperimentError("\(what) ended without a result")
    }
}

/// An experiment could not run; the message says why.
struct ExperimentError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
