import Testing
@testable import CohortSimulation

/// The VS checker must catch what it claims to: each property broken on purpose in a small
/// history, and a correct history passing.
@Suite("VS checker")
struct VSCheckerTests {
    /// a and b in view v1, both send, both move to v2 together.
    static var correct: [String: [VSEvent]] {
        [
            "a": [
                .install(group: "g", viewID: "v1", members: ["a", "b"], continuing: ["a"]),
                .send(group: "g", sequence: 1, viewID: "v1"),
                .deliver(group: "g", sender: "a", sequence: 1),
                .deliver(group: "g", sender: "b", sequence: 1),
                .install(group: "g", viewID: "v2", members: ["a", "b"], continuing: ["a", "b"]),
            ],
            "b": [
                .install(group: "g", viewID: "v1", members: ["a", "b"], continuing: ["a", "b"]),
                .send(group: "g", sequence: 1, viewID: "v1"),
                .deliver(group: "g", sender: "a", sequence: 1),
                .deliver(group: "g", sender: "b", sequence: 1),
                .install(group: "g", viewID: "v2", members: ["a", "b"], continuing: ["a", "b"]),
            ],
        ]
    }

    static func properties(_ logs: [String: [VSEvent]]) -> Set<String> {
        Set(VSChecker(logs: logs).violations().map(\.property))
    }

    @Test("a correct history passes")
    func correctPasses() {
        #expect(VSChecker(logs: Self.correct).violations().isEmpty)
    }

    @Test("each property is caught when broken")
    func catchesBreakage() {
        var logs = Self.correct
        logs["b"]![4] = .install(group: "g", viewID: "v2", members: ["b", "a"], continuing: ["a", "b"])
        #expect(Self.properties(logs) == ["vs-view-agreement"])

        logs = Self.correct
        logs["b"]!.remove(at: 2)  // b misses a's message, yet moves on with a
        #expect(Self.properties(logs) == ["vs-same-set"])

        logs = Self.correct
        logs["b"]!.remove(at: 3)  // b misses its own message
        #expect(Self.properties(logs).contains("vs-self-delivery"))

        logs = Self.correct
        logs["b"]!.insert(.deliver(group: "g", sender: "x", sequence: 1), at: 2)
        logs["x"] = [.install(group: "g", viewID: "v0", members: ["x"], continuing: ["x"]), .send(group: "g", sequence: 1, viewID: "v0")]
        #expect(Self.properties(logs).isSuperset(of: ["vs-closed-group", "vs-sending-view"]))

        logs = Self.correct
        // b delivers a's message only after moving on: in another view than a did.
        logs["b"]!.remove(at: 2)
        logs["b"]!.append(.deliver(group: "g", sender: "a", sequence: 1))
        #expect(Self.properties(logs).contains("vs-sending-view"))

        logs = Self.correct
        logs["a"]!.insert(.deliver(group: "g", sender: "b", sequence: 1), at: 3)
        #expect(Self.properties(logs) == ["vs-at-most-once"])
    }

    @Test("members that did not move together may deliver different sets")
    func partedMembers() {
        var logs = Self.correct
        logs["b"]!.remove(at: 2)
        // Each says the other did not come along with it.
        logs["a"]![4] = .install(group: "g", viewID: "v2", members: ["a", "b"], continuing: ["a"])
        logs["b"]![3] = .install(group: "g", viewID: "v2", members: ["a", "b"], continuing: ["b"])
        #expect(VSChecker(logs: logs).violations().isEmpty)
    }

    @Test("cohort listen --vs --json lines read into VS events; EVS views are skipped; a message without a number is an error")
    func listenLines() throws {
        let text = """
            {"event":"view","group":"g","view_id":"1.d1/1.5","members":["#a#d1"],"semantics":"evs","transitional":false}
            {"event":"view","group":"g","view_id":"1.d1/1.6","members":["#a#d1","#b#d2"],"continuing":["#a#d1"],"semantics":"vs"}
            {"event":"message","group":"g","sender":"#b#d2","payload":"b:7:hello"}
            {"event":"message","group":"other","sender":"#b#d2","payload":"unnumbered"}
            {"event":"view","group":"g","view_id":"1.d1/1.9","members":["#b#d2"],"semantics":"vs"}
            """
        let events = try VSChecker.events(listenJSONLines: text, member: "#a#d1", group: "g")
        #expect(events == [
            .install(group: "g", viewID: "1.d1/1.6", members: ["#a#d1", "#b#d2"], continuing: ["#a#d1"]),
            .deliver(group: "g", sender: "#b#d2", sequence: 7),
            .left(group: "g"),
        ])
        #expect(throws: EVSChecker.LogError.self) {
            try VSChecker.events(listenJSONLines: #"{"event":"message","group":"g","sender":"x","payload":"nope"}"#, member: "a", group: "g")
        }
    }
}
