import ArgumentParser
import CohortDaemon
import Foundation

/// `cohort cluster`: a local server group of real `cohortd` processes.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Start N cohortd processes on loopback, print their client addresses, run until Ctrl-C/SIGTERM.")

    @Option(help: "Number of daemons (1 until the multi-daemon runtime lands).")
    var daemons: Int = 1

    @Option(help: "First client port; daemon i listens for clients on P+2i and for peers on P+2i+1.")
    var basePort: Int = 4803

    @Option(help: "Folder for the configuration file, sockets and logs (default: a new temporary folder).")
    var dir: String?

    @Option(help: "Security architecture of every daemon.")
    var architecture: String = "plain"

    func run() async throws {
        StopSignal.install()
        let cluster = try await LocalCluster.start(
            daemons: daemons, basePort: basePort, directory: dir.map { URL(fileURLWithPath: $0) }, architecture: architecture)
        for member in cluster.members {
            emit("\(member.name) \(member.clientAddress) \(member.socketAddress)")
        }
        emit("cluster running (config and logs in \(cluster.directory.path)); Ctrl-C stops it")
        // Poll, so that a daemon that dies ends the cluster too.
        while cluster.isRunning, !StopSignal.received {
            try? await Task.sleep(for: .milliseconds(100))
        }
        let crashed = !cluster.isRunning
        await cluster.stop()
        emit("cluster stopped")
        if crashed { throw ClusterError("a daemon exited; its log is in \(cluster.directory.path)") }
    }
}

