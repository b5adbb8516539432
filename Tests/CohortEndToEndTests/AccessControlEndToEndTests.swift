import Cohort
import CohortConfiguration
import CohortCore
import CohortCrypto
import CohortDaemon
import CohortSecurity
import Foundation
import Testing

@Suite("Access control: the policy file")
struct AccessPolicyFileTests {
    static let example = """
        # who may do what
        default: deny
        roles:
          alice: [admin]
          "*": [member]
        closedGroups: ["ops-*"]
        rules:
          - allow: [join, leave, send]
            roles: [member]
            groups: ["chat-*", news]
          - deny: [send]
            principals: [anonymous]
            groups: [news]
          - allow: ["*"]
            roles: [admin]
            groups: ["*"]
        """

    @Test("the documented example parses into the policy it describes")
    func example() throws {
        let policy = try AccessPolicyFile.parse(yaml: Self.example)
        #expect(policy.defaultEffect == .deny)
        #expect(policy.roles == ["alice": ["admin"], "*": ["member"]])
        #expect(policy.closedGroups.map(\.text) == ["ops-*"])
        #expect(policy.rules.count == 3)
        #expect(policy.rules[2].operations == Set(AccessOperation.allCases))
        #expect(!policy.decide(.send, group: try GroupName("news"), principal: .anonymous).allowed)
        #expect(policy.decide(.send, group: try GroupName("news"), principal: Principal("bob")).allowed)
    }

    @Test("a bad policy is a typed error naming what is wrong", arguments: [
        ("rules: []", "cannot parse"),
        ("default: maybe", "default must be allow or deny"),
        ("default: deny\nrules:\n  - allow: [fly]\n    principals: ['*']\n    groups: ['*']", "rule 1: unknown operation \"fly\""),
        ("default: deny\nrules:\n  - allow: [join]\n    deny: [send]\n    principals: ['*']\n    groups: ['*']", "rule 1: a rule has exactly one of allow: or deny:"),
        ("default: deny\nrules:\n  - allow: [join]\n    groups: ['*']", "rule 1: a rule must name principals or roles"),
        ("default: deny\nrules:\n  - allow: [join]\n    principals: ['*']\n    groups: ['a b']", "rule 1: invalid group pattern"),
        ("default: deny\nclosedGroups: ['']", "invalid group pattern"),
    ])
    func badPolicies(yaml: String, mentions: String) {
        #expect {
            try AccessPolicyFile.parse(yaml: yaml)
        } throws: { error in
            (error as? AccessPolicyError)?.reason.contains(mentions) == true
        }
    }
}

@Suite("End to end: access control over real sockets", .timeLimit(.minutes(2)))
struct AccessControlEndToEndTests {
    @Test("a denied join and a denied send change nothing for the members; a reload on the fly changes the answer")
    func deniedOperations() async throws {
        let folder = try makeTemporaryFolder("cohort-access")
        defer { try? FileManager.default.removeItem(at: folder) }
        var users = UserTable()
        for user in ["alice", "mallory"] {
            try users.set(SCRAM.Verifier(password: user, salt: Array("\(user)-salt-0123456789".utf8.prefix(16)), iterations: 4096), for: user)
        }
        let usersPath = folder.appendingPathComponent("users").path
        try users.text.write(toFile: usersPath, atomically: true, encoding: .utf8)
        let policyPath = folder.appendingPathComponent("policy.yaml").path
        try """
            default: allow
            rules:
              - deny: [join, send]
                principals: [mallory]
                groups: [board]
            """.write(toFile: policyPath, atomically: true, encoding: .utf8)
        try await withDaemon(configure: { settings in
            settings.authMethods = ["password"]
            settings.usersFile = usersPath
            settings.accessPolicyFile = policyPath
        }) { daemon in
            func options(_ user: String) -> ConnectionOptions {
                var options = ConnectionOptions(name: user)
                options.credentials = .password(user: user, password: user)
                return options
            }
            try await CohortClient.withConnection(to: daemon.tcp, options: options("alice")) { alice in
                try await alice.join("board")
                var aliceEvents = alice.events.makeAsyncIterator()
                let view = try await aliceEvents.view(of: "board", members: 1)
                try await CohortClient.withConnection(to: daemon.unix, options: options("mallory")) { mallory in
                    var malloryEvents = mallory.events.makeAsyncIterator()
                    try await mallory.join("board")
                    #expect(try await malloryEvents.next() == .error(.accessDenied,
                        reason: "join on group board denied for principal mallory (rule 1)"))
                    try await mallory.multicast("forged minutes", to: "board")
                    #expect(try await malloryEvents.next() == .error(.accessDenied,
                        reason: "send on group board denied for principal mallory (rule 1)"))
                    // Alice's next event is her own message: no view change, no forged message.
                    try await alice.multicast("minutes", to: "board")
                    let next = try await aliceEvents.next()
                    guard case .message(let message)? = next else { Issue.record("expected alice's message, got \(String(describing: next))"); return }
                    #expect(message.payload == Array("minutes".utf8))
                    let status = try await CohortClient.status(of: daemon.tcp, credentials: .password(user: "alice", password: "alice"))
                    #expect(status.groups.first { $0.group.rawValue == "board" }?.viewID == view.viewID)

                    // The policy is relaxed and reloaded: mallory may join now, in the same session.
                    try "default: allow\n".write(toFile: policyPath, atomically: true, encoding: .utf8)
                    await daemon.server.reloadSecurity()
                    try await mallory.join("board")
                    _ = try await aliceEvents.view(of: "board", members: 2)
                }
            }
        }
    }
}
