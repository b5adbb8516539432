import CohortCore
import Testing
@testable import CohortSimulation

/// A correct history of three daemons: {a, b, c} in configuration 1 with agreed, safe, FIFO
/// and causal traffic; c is partitioned away (transitional {a, b}, then regular 2 = {a, b}); c
/// goes on alone (transitional {c}, regular 3 = {c}).
func goodLogs() -> [String: [EVSEvent]] {
    let c1 = EVSConfiguration(id: "1", members: ["a", "b", "c"], transitional: false)
    let t1ab = EVSConfiguration(id: "1t-ab", members: ["a", "b"], transitional: true)
    let t1c = EVSConfiguration(id: "1t-c", members: ["c"], transitional: true)
    let c2 = EVSConfiguration(id: "2", members: ["a", "b"], transitional: false)
    let c3 = EVSConfiguration(id: "3", members: ["c"], transitional: false)
    let a1 = EVSMessage(sender: "a", sequence: 1, service: .agreed)
    let b1 = EVSMessage(sender: "b", sequence: 1, service: .causal)  // b sends after delivering a1
    let a2 = EVSMessage(sender: "a", sequence: 2, service: .safe)
    let c1m = EVSMessage(sender: "c", sequence: 1, service: .agreed)
    let a3 = EVSMessage(sender: "a", sequence: 3, service: .agreed)
    return [
        "a": [.install(c1), .send(a1), .deliver(a1), .deliver(b1), .send(a2), .deliver(a2), .deliver(c1m),
              .install(t1ab), .install(c2), .send(a3), .deliver(a3)],
        "b": [.install(c1), .deliver(a1), .send(b1), .deliver(b1), .deliver(a2), .deliver(c1m),
              .install(t1ab), .install(c2), .deliver(a3)],
        "c": [.install(c1), .deliver(a1), .deliver(b1), .deliver(a2), .send(c1m), .deliver(c1m),
              .install(t1c), .install(c3)],
    ]
}

@Suite("EVS checker")
struct EVSCheckerTests {
    @Test("a correct history passes every check")
    func correct() {
        #expect(EVSChecker(logs: goodLogs(), quiescent: true).violations() == [])
    }

    /// Applies `change` to process `process`'s log and returns the properties the checker reports.
    func broken(_ process: String, _ change: (inout [EVSEvent]) -> Void) -> Set<String> {
        var logs = goodLogs()
        change(&logs[process]!)
        return Set(EVSChecker(logs: logs, quiescent: true).violations().map(\.property))
    }

    @Test("each checker catches its own deliberate breakage")
    func catchesBreakage() {
        // Duplicated delivery.
        #expect(broken("b") { $0.insert($0[1], at: 2) }.contains("at-most-once"))
        // Two agreed messages reordered at one process (a2 and c1m at b).
        #expect(broken("b") { $0.swapAt(4, 5) }.contains("agreed-order"))
        // A message missing at one process of those moving together (a and b to 2).
        #expect(broken("b") { $0.remove(at: 5) }.contains("failure-atomicity"))
        // Missing at c too: c does not move with a and b, but the safe message a2 was delivered
        // in 1 by a while c, a member of 1 that did not crash, never delivers it.
        #expect(broken("c") { $0.remove(at: 3) } == ["safe"])
        // A wrong transitional set: c in a and b's transitional configuration.
        #expect(broken("a") { $0[7] = .install(EVSConfiguration(id: "1t-ab", members: ["a", "b", "c"], transitional: true)) }
            .contains("configurations"))
        // No transitional configuration between two regular ones.
        #expect(broken("a") { $0.remove(at: 7) }.contains("configurations"))
        // Causal: b1 (sent after b delivered a1) delivered before a1 at c.
        #expect(broken("c") { $0.swapAt(1, 2) }.contains("causal"))
        // FIFO: a's messages out of order at b (a1 after a2).
        #expect(broken("b") {
            let first = $0.remove(at: 1)
            $0.insert(first, at: 4)
        }.contains("fifo"))
        // A message delivered after the configuration it was sent in ended (a3 at b, moved
        // before the change, is delivered in 1).
        #expect(broken("b") {
            let a3 = $0.removeLast()
            $0.insert(a3, at: 6)
        }.contains("sending-configuration"))
        // Never sent; never delivered to its own sender.
        #expect(broken("c") { $0.append(.deliver(EVSMessage(sender: "a", sequence: 9, service: .agreed))) }.contains("integrity"))
        #expect(broken("a") { $0.removeLast() }.contains("self-delivery"))
        // A crashed sender owes no self-delivery.
        #expect(broken("a") {
            $0.removeLast()
            $0.append(.crash)
        }.subtracting(["failure-atomicity"]).isEmpty)
    }

    @Test("a safe message delivered in a transitional configuration binds that configuration's members only")
    func safeInTransitional() {
        // a2 (safe) moved after the change: a and b deliver it in their transitional
        // configuration {a, b}; c, in another component, never does — EVS allows that.
        var logs = goodLogs()
        let a2 = logs["a"]!.remove(at: 5)
        logs["a"]!.insert(a2, at: 7)  // after the transitional install
        logs["b"]!.remove(at: 4)
        logs["b"]!.insert(a2, at: 6)
        logs["c"]!.remove(at: 3)
        #expect(EVSChecker(logs: logs, quiescent: true).violations() == [])
        // But b, a member of the transitional configuration, must deliver it.
        logs["b"]!.remove(at: 6)
        #expect(Set(EVSChecker(logs: logs, quiescent: true).violations().map(\.property)).contains("safe"))
    }

    @Test("JSON lines read back into the same logs; a bad line is a typed error naming it")
    func jsonLines() throws {
        let text = """
            {"process": "a", "event": "install", "id": "1", "members": ["a", "b"], "transitional": false}
            {"process": "a", "event": "send", "sender": "a", "sequence": 1, "service": "safe"}

            {"process": "b", "event": "install", "id": "1", "members": ["a", "b"]}
            {"process": "a", "event": "deliver", "sender": "a", "sequence": 1, "service": "safe"}
            {"process": "b", "event": "deliver", "sender": "a", "sequence": 1, "service": "safe"}
            """
        let logs = try EVSChecker.logs(jsonLines: text)
        #expect(logs["a"]?.count == 3 && logs["b"]?.count == 2)
        #expect(EVSChecker(logs: logs, quiescent: true).violations() == [])
        #expect(throws: EVSChecker.LogError(line: 2, reason: "unknown event 'sent'")) {
            try EVSChecker.logs(jsonLines: "{\"process\": \"a\", \"event\": \"crash\"}\n{\"process\": \"a\", \"event\": \"sent\"}")
        }
        #expect(throws: EVSChecker.LogError.self) { try EVSChecker.logs(jsonLines: "{not json") }
        #expect(throws: EVSChecker.LogError.self) { try EVSChecker.logs(jsonLines: "{\"process\": \"a\", \"event\": \"deliver\", \"sender\": \"b\", \"sequence\": 1, \"service\": \"loud\"}") }
    }
}

@Suite("EVS checker on arbitrary input")
struct EVSCheckerFuzzTests {
    @Test("random logs and random bytes: violations or typed errors, never a trap")
    func arbitrary() {
        var random = SeededRandom(seed: 4)
        let processes = ["a", "b", "c"]
        for _ in 0..<300 {
            var logs: [String: [EVSEvent]] = [:]
            for process in processes {
                logs[process] = (0..<Int.random(in: 0..<12, using: &random)).map { _ in
                    let message = EVSMessage(sender: processes.randomElement(using: &random)!, sequence: UInt64.random(in: 0..<4, using: &random),
                                             service: ServiceLevel.allCases.randomElement(using: &random)!)
                    switch Int.random(in: 0..<4, using: &random) {
                    case 0: return .install(EVSConfiguration(id: "\(Int.random(in: 0..<3, using: &random))",
                                                             members: Set(processes.filter { _ in Bool.random(using: &random) }),
                                                             transitional: Bool.random(using: &random)))
                    case 1: return .send(message)
                    case 2: return .deliver(message)
                    default: return .crash
                    }
                }
            }
            _ = EVSChecker(logs: logs, quiescent: Bool.random(using: &random)).violations()
            let bytes = (0..<Int.random(in: 0..<80, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            _ = try? EVSChecker.logs(jsonLines: String(decoding: bytes, as: UTF8.self))
        }
    }
}
