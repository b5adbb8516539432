import ArgumentParser
import CohortSecurity
import Foundation

/// `cohort certs`: a test CA with daemon and client certificates, for TLS and method
/// `certificate` in a lab or test deployment.
struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Make a test CA and TLS certificates for daemons and clients (PEM files).",
        discussion: """
            Writes ca.crt, and NAME.crt with NAME.key for every daemon and client, into --dir \
            (keys mode 0600). Daemon certificates name --hosts (DNS names or IP addresses); a \
            client certificate's common name is the client's principal under method \
            certificate. For production use your organisation's CA (docs/authentication.md).
            """)

    @Option(help: "Folder to write into (created if missing).")
    var dir: String

    @Option(parsing: .upToNextOption, help: "Daemon names.")
    var daemons: [String] = ["d1"]

    @Option(parsing: .upToNextOption, help: "Client names (principals).")
    var clients: [String] = []

    @Option(parsing: .upToNextOption, help: "Host names and IP addresses the daemon certificates are valid for.")
    var hosts: [String] = ["127.0.0.1", "localhost"]

    @Option(help: "Days the certificates are valid.")
    var days: Int = 365

    func run() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let authority = try CertificateAuthority(name: "Cohort test CA", days: days)
        try write(try authority.certificatePEM, "ca.crt", mode: 0o644)
        for (names, client) in [(daemons, false), (clients, true)] {
            for name in names {
                let issued = try authority.issue(commonName: name, hosts: client ? [] : hosts, client: client, days: days)
                try write(issued.certificatePEM, "\(name).crt", mode: 0o644)
                try write(issued.privateKeyPEM, "\(name).key", mode: 0o600)
            }
        }
        print("wrote \(dir)/ca.crt and \((daemons + clients).map { "\($0).crt/.key" }.joined(separator: ", "))")
    }

    private func write(_ text: String, _ name: String, mode: Int) throws {
        let path = (dir as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw ValidationError("cannot write \(path)")
        }
    }
}
