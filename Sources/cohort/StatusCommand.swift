import ArgumentParser
import Cohort
import CohortCore
import Foundation

/// `cohort status`: what a daemon serves.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show a daemon's name, version, configuration, clients and groups.")

    @OptionGroup var connection: ConnectionArguments

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let options = try connection.options(name: "status", wantsMembership: false)
        let status = try await CohortClient.status(of: try connection.address(), architecture: options.architecture, credentials: options.credentials, tls: options.tls)
        if json {
            var object: [String: Any] = [
                "daemon": status.daemonName, "version": status.version, "architecture": status.architecture,
                "configuration": status.configuration.description, "configuration_members": status.configurationMembers,
                "membership_state": status.membershipState, "dropped_peers": status.droppedPeers,
                "clients": status.clients.map(\.description),
                "groups": status.groups.map { ["group": $0.group.rawValue, "view_id": $0.viewID.description, "members": $0.members.map(\.description)] as [String: Any] },
            ]
            if let epoch = status.daemonKeyEpoch { object["daemon_key"] = epoch }
            emit(EventJSON.line(object))
        } else {
            emit("daemon \(status.daemonName) (cohortd \(status.version), architecture \(status.architecture))")
            emit("configuration \(status.configuration) (\(status.membershipState)): \(status.configurationMembers.joined(separator: " "))")
            if let epoch = status.daemonKeyEpoch { emit("daemon key: \(epoch)") }
            if !status.droppedPeers.isEmpty { emit("fault injection: dropping \(status.droppedPeers.joined(separator: " "))") }
            emit("\(status.clients.count) clients: \(status.clients.map(\.description).joined(separator: " "))")
            emit("\(status.groups.count) groups:")
            for group in status.groups {
                emit("  \(group.group) \(group.viewID): \(group.members.map(\.description).joined(separator: " "))")
            }
        }
    }
}
