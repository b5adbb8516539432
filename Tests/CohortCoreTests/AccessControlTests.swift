import Testing
@testable import CohortCore

/// A test method: the client names its principal in the authentication data (tests only).
struct ClaimedPrincipal: AuthenticationMethod {
    var name: String { "claim" }
    func start(_ firstMessage: [UInt8], origin: ClientOrigin) -> AuthenticationStep {
        .accepted(Principal(String(decoding: firstMessage, as: UTF8.self)), finalData: [])
    }
}

private func pattern(_ text: String) -> GroupPattern { try! GroupPattern(text) }

/// The policy of the table-driven tests:
///  1. allow join, leave, send  for role member        on chat-*, news
///  2. deny  send               for principal anonymous on news
///  3. allow *                  for role admin         on *
///  4. deny  join               for principal mallory  on *
///  5. allow private-send       for everyone           on #*
/// alice is admin; everyone is member; ops-* is closed.
let policy = AccessPolicy(
    defaultEffect: .deny,
    roles: ["alice": ["admin"], "*": ["member"]],
    closedGroups: [pattern("ops-*")],
    rules: [
        try! .init(.allow, [.join, .leave, .send], roles: ["member"], groups: [pattern("chat-*"), pattern("news")]),
        try! .init(.deny, [.send], principals: ["anonymous"], groups: [pattern("news")]),
        try! .init(.allow, Set(AccessOperation.allCases), roles: ["admin"], groups: [pattern("*")]),
        try! .init(.deny, [.join], principals: ["mallory"], groups: [pattern("*")]),
        try! .init(.allow, [.privateSend], principals: ["*"], groups: [pattern("#*")]),
    ])

@Suite("Access control: policy decisions")
struct AccessPolicyTests {
    @Test("group patterns: exact, prefix, wildcards anywhere", arguments: [
        ("news", "news", true), ("news", "newsx", false), ("news", "new", false),
        ("chat-*", "chat-", true), ("chat-*", "chat-room", true), ("chat-*", "chat", false),
        ("*", "anything", true), ("*-admin", "ops-admin", true), ("*-admin", "ops-admins", false),
        ("team-?", "team-a", true), ("team-?", "team-ab", false), ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYY", false),
        ("#*", "#bob#d1", true), ("#*#d2", "#bob#d1", false), ("**", "", true),
    ])
    func patterns(pattern text: String, name: String, matches: Bool) {
        #expect(pattern(text).matches(name) == matches)
    }

    @Test("invalid patterns are refused", arguments: ["", "with space", String(repeating: "x", count: 101), "caf\u{E9}"])
    func invalidPatterns(text: String) {
        #expect(throws: AccessPolicyError.self) { try GroupPattern(text) }
    }

    @Test("decisions: roles, principals, deny wins, the default stance", arguments: [
        (AccessOperation.join, "chat-a", "bob", true, "rule 1"),
        (.send, "news", "bob", true, "rule 1"),
        (.send, "news", "anonymous", false, "rule 2"),        // deny wins over rule 1
        (.join, "news", "anonymous", true, "rule 1"),
        (.join, "secret", "bob", false, "default"),
        (.join, "secret", "alice", true, "rule 3"),
        (.send, "news", "alice", true, "rule 1"),             // the first allowing rule is named
        (.join, "chat-a", "mallory", false, "rule 4"),        // deny wins over rules 1 and 3
        (.send, "chat-a", "mallory", true, "rule 1"),
        (.privateSend, "#bob#d1", "anonymous", true, "rule 5"),
        (.leave, "secret", "bob", false, "default"),
    ])
    func decisions(operation: AccessOperation, group: String, principal: String, allowed: Bool, reason: String) throws {
        let decision = policy.decide(operation, group: try GroupName(group), principal: Principal(principal))
        #expect(decision.allowed == allowed)
        #expect(decision.reason == reason)
    }

    @Test("a default of allow allows what no rule covers; a deny rule still wins")
    func defaultAllow() throws {
        let open = AccessPolicy(defaultEffect: .allow, rules: [try .init(.deny, [.send], principals: ["*"], groups: [pattern("ro-*")])])
        #expect(open.decide(.join, group: try GroupName("x"), principal: .anonymous).allowed)
        #expect(!open.decide(.send, group: try GroupName("ro-news"), principal: .anonymous).allowed)
    }

    @Test("a rule without operations, subjects or groups is refused")
    func incompleteRules() {
        #expect(throws: AccessPolicyError.self) { try AccessPolicy.Rule(.allow, [], principals: ["*"], groups: [pattern("*")]) }
        #expect(throws: AccessPolicyError.self) { try AccessPolicy.Rule(.allow, [.join], groups: [pattern("*")]) }
        #expect(throws: AccessPolicyError.self) { try AccessPolicy.Rule(.allow, [.join], principals: ["*"], groups: []) }
    }
}

@Suite("Access control: enforced by the daemon core")
struct AccessEnforcementTests {
    /// A harness whose clients claim their principal, under `policy`.
    func harness(_ control: any AccessControl = policy) -> CoreHarness {
        CoreHarness(authentication: [ClaimedPrincipal()], accessControl: control)
    }

    @Test("a denied join changes nothing: no view for the members, a typed non-fatal error for the client")
    func deniedJoin() {
        var harness = harness()
        let bob = harness.connect(1, name: "bob", principal: "bob")
        let mallory = harness.connect(2, name: "mal", principal: "mallory")
        harness.feed(.frame(bob, .join(group("chat-a"))))
        _ = harness.take(bob)
        harness.feed(.frame(mallory, .join(group("chat-a"))))
        guard case .error(.accessDenied, fatal: false, let reason)? = harness.take(mallory).last else { Issue.record("no denial"); return }
        #expect(reason == "join on group chat-a denied for principal mallory (rule 4)")
        #expect(harness.take(bob).isEmpty, "the member sees no view change")
        #expect(harness.core.table.members(of: group("chat-a")) == [member("bob")])
        #expect(harness.denials.map(\.decision.label) == ["rule"])
        #expect(harness.closed[mallory] == nil, "the session goes on")
        // The denied client can still do what it may.
        harness.feed(.frame(mallory, .multicast(OutgoingMessage(service: .agreed, groups: [group("chat-a")], payload: [1]))))
        #expect(harness.messages(bob).map(\.payload) == [[1]])
    }

    @Test("a denied send is delivered to no one; a message to several groups is denied whole")
    func deniedSend() {
        var harness = harness()
        let bob = harness.connect(1, name: "bob", principal: "bob")
        let anonymous = harness.connect(2, name: "anon", principal: "anonymous")
        harness.feed(.frame(bob, .join(group("news"))))
        harness.feed(.frame(bob, .join(group("chat-a"))))
        _ = harness.take(bob)
        harness.feed(.frame(anonymous, .multicast(OutgoingMessage(service: .agreed, groups: [group("news")], payload: [1]))))
        harness.feed(.frame(anonymous, .multicast(OutgoingMessage(service: .agreed, groups: [group("chat-a"), group("news")], payload: [2]))))
        harness.feed(.frame(anonymous, .multicast(OutgoingMessage(service: .agreed, groups: [group("chat-a")], payload: [3]))))
        #expect(harness.messages(bob).map(\.payload) == [[3]])
        let errors = harness.take(anonymous).filter { if case .error(.accessDenied, false, _) = $0 { true } else { false } }
        #expect(errors.count == 2)
    }

    @Test("closed groups: members may send, non-members may not, even when a rule allows sending")
    func closedGroups() {
        var harness = harness()
        let alice = harness.connect(1, name: "alice", principal: "alice")
        let carol = harness.connect(2, name: "carol", principal: "alice")
        harness.feed(.frame(alice, .join(group("ops-x"))))
        harness.feed(.frame(alice, .multicast(OutgoingMessage(service: .agreed, groups: [group("ops-x")], payload: [1]))))
        harness.feed(.frame(carol, .multicast(OutgoingMessage(service: .agreed, groups: [group("ops-x")], payload: [2]))))
        #expect(harness.messages(alice).map(\.payload) == [[1]])
        guard case .error(.accessDenied, _, let reason)? = harness.take(carol).last else { Issue.record("no denial"); return }
        #expect(reason.contains("closed group"))
        #expect(harness.denials.map(\.decision.label) == ["closed_group"])
    }

    @Test("private sends and leaves are decided too; disconnects always leave")
    func privateSendAndLeave() {
        var harness = harness(AccessPolicy(defaultEffect: .deny, rules: [
            try! .init(.allow, [.join], principals: ["*"], groups: [pattern("g")]),
        ]))
        let a = harness.connect(1, name: "a", principal: "a")
        let b = harness.connect(2, name: "b", principal: "b")
        harness.feed(.frame(a, .join(group("g"))))
        harness.feed(.frame(b, .join(group("g"))))
        harness.feed(.frame(a, .multicast(OutgoingMessage(service: .agreed, groups: [try! GroupName("#b#d1")], payload: [9]))))
        #expect(harness.messages(b).isEmpty)
        harness.feed(.frame(a, .leave(group("g"))))
        #expect(harness.core.table.members(of: group("g")).count == 2, "the leave was denied")
        #expect(harness.denials.map(\.operation) == [.privateSend, .leave])
        harness.feed(.sessionClosed(a))
        #expect(harness.core.table.members(of: group("g")) == [member("b")], "a disconnect is never denied")
    }

    @Test("a reloaded policy decides every later operation; sessions stay")
    func reload() {
        var harness = harness(AccessPolicy(defaultEffect: .deny))
        let a = harness.connect(1, name: "a", principal: "a")
        harness.feed(.frame(a, .join(group("g"))))
        #expect(harness.core.table.members(of: group("g")).isEmpty)
        harness.feed(.accessControlChanged(AllowEverything()))
        harness.feed(.frame(a, .join(group("g"))))
        #expect(harness.core.table.members(of: group("g")) == [member("a")])
        #expect(harness.core.member(of: a) != nil)
    }
}
