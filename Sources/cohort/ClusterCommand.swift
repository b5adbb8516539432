import ArgumentParser
import CohortCluster
import CohortDaemon
import Foundation

/// `cohort cluster`: a local server group of real `cohortd` processes.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Start N cohortd processes on loopback, print their client addresses, run until Ctrl-C/SIGTERM.")

    @Option(help: "Number of daemons (they form one server group).")
    var daemons: Int = 3

    @Option(help: "First client port; daemon i listens for clients on P+2i and for peers on P+2i+1.")
    var basePort: Int = 4803

    @Option(help: "Folder for the configuration file, sockets and logs (default: a new temporary folder).")
    var dir: String?

    @Option(help: "Security architecture of every daemon.")
    var architecture: String = "plain"

    @Option(help: "Log level of the daemons (their logs are in the cluster folder).")
    var logLevel: String = "notice"

    @Flag(help: "Let clients inject faults into the daemons (`cohort fault`); for testing applications under partitions.")
    var faultInjection = false

    func run() async throws {
        StopSignal.install()
        let cluster = try await LocalCluster.start(
            daemons: daemons, basePort: basePort, directory: dir.map { URL(fileURLWithPath: $0) }, architecture: architecture,
            logLevel: logLevel, faultInjection: faultInjection)
        for member in cluster.members {
            emit("\(member.name) \(member.clientAddress) \(member.socketAddress) pid \(cluster.pid(of: member.name).map(String.init) ?? "-")")
        }
        emit("cluster running (config and logs in \(cluster.directory.path)); Ctrl-C stops it")
        // Poll, so that a daemon that dies ends the cluster too — unless faults are the point:
        // then a killed daemon may be restarted by hand (`cohortd --config ... --name ...`).
        var reported: Set<String> = []
        while cluster.isRunning || faultInjection, !StopSignal.received {
            for name in cluster.members.map(\.name) where cluster.pid(of: name) == nil && reported.insert(name).inserted {
                emit("\(name) is not running; restart it with: \(LocalCluster.defaultDaemonExecutable().path) --config \(cluster.directory.path)/cohort.yaml --name \(name) --fault-injection")
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let crashed = !cluster.isRunning && !faultInjection
        await cluster.stop()
        emit("cluster stopped")
        if crashed { throw ClusterError("a daemon exited; its log is in \(cluster.directory.path)") }
    }
}

