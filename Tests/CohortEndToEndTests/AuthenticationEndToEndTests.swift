import Cohort
import CohortCore
import CohortCrypto
import CohortDaemon
import CohortSecurity
import Foundation
import Testing

/// A users file with `user` and `password`, at the minimum iteration count (fast tests).
private func usersFile(_ entries: [(user: String, password: String)]) throws -> String {
    var table = UserTable()
    for (user, password) in entries {
        try table.set(SCRAM.Verifier(password: password, salt: Array("\(user)-salt-0123456789".utf8.prefix(16)), iterations: 4096), for: user)
    }
    return table.text
}

@Suite("End to end: client authentication over real sockets", .timeLimit(.minutes(2)))
struct AuthenticationEndToEndTests {
    @Test("password: the right password connects as its principal; wrong, unknown and unoffered methods are typed rejects that create nothing")
    func password() async throws {
        let folder = try makeTemporaryFolder("cohort-auth")
        defer { try? FileManager.default.removeItem(at: folder) }
        let users = folder.appendingPathComponent("users").path
        try usersFile([("alice", "wonderland")]).write(toFile: users, atomically: true, encoding: .utf8)
        try await withDaemon(configure: { settings in
            settings.authMethods = ["password"]
            settings.usersFile = users
        }) { daemon in
            func options(_ name: String, _ credentials: Credentials) -> ConnectionOptions {
                var options = ConnectionOptions(name: name)
                options.credentials = credentials
                return options
            }
            let alice = Credentials.password(user: "alice", password: "wonderland")
            // Wrong password, unknown user, method not offered: each a typed reject.
            for (credentials, code) in [
                (Credentials.password(user: "alice", password: "nope"), ErrorCode.authFailed),
                (.password(user: "mallory", password: "x"), .authFailed),
                (.none, .authMethodNotOffered),
            ] {
                await #expect(throws: CohortError.rejected(code, reason: code == .authFailed ? "wrong user name or password"
                    : "method none not offered; offered: password")) {
                    try await CohortClient.withConnection(to: daemon.tcp, options: options("x", credentials)) { _ in }
                }
            }
            try await CohortClient.withConnection(to: daemon.unix, options: options("a1", alice)) { connection in
                #expect(connection.principal == Principal("alice"))
                try await connection.join("g")
                var events = connection.events.makeAsyncIterator()
                _ = try await events.view(of: "g", members: 1)
                // The failed attempts created no session and no member.
                let status = try await CohortClient.status(of: daemon.tcp, credentials: alice)
                #expect(status.clients.map(\.name).filter { $0 != "a1" }.allSatisfy { $0.hasPrefix("status-") })
                #expect(status.groups.map(\.members) == [[connection.member]])

                // A reload adds bob; alice's session goes on.
                try usersFile([("alice", "wonderland"), ("bob", "builder")]).write(toFile: users, atomically: true, encoding: .utf8)
                await daemon.server.reloadSecurity()
                let bob = Credentials.password(user: "bob", password: "builder")
                try await CohortClient.withConnection(to: daemon.tcp, options: options("b1", bob)) { connection in
                    #expect(connection.principal == Principal("bob"))
                }
                try await connection.multicast("still here", to: "g")
                #expect(try await events.messages(1).first?.payload == Array("still here".utf8))

                // A reload of a broken file keeps the previous table.
                try "alice\n".write(toFile: users, atomically: true, encoding: .utf8)
                await daemon.server.reloadSecurity()
                try await CohortClient.withConnection(to: daemon.tcp, options: options("b2", bob)) { _ in }
            }
        }
    }

    @Test("peer-credentials: a Unix-socket client is the local user it runs as; a TCP client is refused")
    func peerCredentials() async throws {
        try await withDaemon(configure: { $0.authMethods = ["peer-credentials"] }) { daemon in
            var options = ConnectionOptions(name: "local")
            options.credentials = .peerCredentials
            let expected = getpwuid(getuid()).map { String(cString: $0.pointee.pw_name) } ?? "uid:\(getuid())"
            try await CohortClient.withConnection(to: daemon.unix, options: options) { connection in
                #expect(connection.principal == Principal(expected))
            }
            await #expect(throws: CohortError.rejected(.authFailed, reason: "method peer-credentials works only over the daemon's Unix socket")) {
                try await CohortClient.withConnection(to: daemon.tcp, options: options) { _ in }
            }
        }
    }
}
