import Cohort
import CohortCluster
import CohortConfiguration
import CohortCore
import CohortSecurity
import Foundation
import Testing

/// Integrated VS over real daemons: the daemons agree on their key, clients on the Unix sockets
/// get keyed VS views and exchange sealed messages; plain TCP is refused.
@Suite("Integrated VS over real daemons", .serialized, .timeLimit(.minutes(3)))
struct IntegratedVSEndToEndTests {
    /// Two integrated-vs daemons (`adjust` changes their configuration).
    static func cluster(adjust: (inout DaemonConfiguration) -> Void = { _ in }) async throws -> LocalCluster {
        try await LocalCluster.start(
            daemons: 2, basePort: try LocalCluster.freePorts(4), architecture: Architecture.integratedVS.name,
            daemonExecutable: ProcessTests.cohortd, adjust: adjust)
    }

    /// Client `name`'s integrated-vs options.
    static func options(_ name: String) -> ConnectionOptions {
        var options = ConnectionOptions(name: name)
        options.architecture = .integratedVS
        return options
    }

    @Test("two daemons agree on one key; a client's 300 sealed messages, sent in batches, all open at the other, in order")
    func sealedExchange() async throws {
        let cluster = try await Self.cluster()
        defer { Task { await cluster.stop() } }
        let options = Self.options("a")
        // Plain TCP would hand the key out in the clear: refused at connect.
        await #expect(throws: CohortError.self) {
            try await CohortClient.withConnection(to: cluster.members[0].address, options: options) { _ in }
        }
        let count = 300
        let received = try await withThrowingTaskGroup(of: [String].self) { tasks in
            for (index, name) in ["a", "b"].enumerated() {
                let options = Self.options(name)
                let address = cluster.members[index].localAddress
                tasks.addTask {
                    try await CohortClient.withConnection(to: address, options: options) { connection in
                        try await connection.join("secure")
                        var events = connection.events.makeAsyncIterator()
                        while let event = try await events.next() {
                            if case .view(let view) = event, view.members.count == 2 {
                                #expect(view.semantics == .virtualSynchrony)
                                #expect(view.key != nil && view.key?.secret.isEmpty == true, "the application sees the key id only")
                                break
                            }
                        }
                        // Both installed the VS view of two: what a sends in it reaches b in it.
                        if name == "a" {
                            for chunk in stride(from: 0, to: count, by: 128) {
                                let batch = try (chunk..<min(chunk + 128, count)).map {
                                    try connection.message(Array("m\($0)".utf8), to: ["secure"])
                                }
                                try await connection.multicast(batch: batch)
                            }
                        }
                        var texts: [String] = []
                        while texts.count < count, let event = try await events.next() {
                            switch event {
                            case .message(let message): texts.append(String(decoding: message.payload, as: UTF8.self))
                            case .error(let code, let reason): Issue.record("\(name): error \(code): \(reason)")
                            default: break
                            }
                        }
                        return texts
                    }
                }
            }
            var all: [[String]] = []
            for try await texts in tasks { all.append(texts) }
            return all
        }
        for texts in received { #expect(texts == (0..<count).map { "m\($0)" }) }
        let epochs = try await cluster.members.asyncMap { try await cluster.status(of: $0.name).daemonKeyEpoch }
        #expect(epochs[0] != nil && epochs[0] == epochs[1], "\(epochs)")
    }

    @Test("a refresh by time-out: every member gets a rekey view of the same members with a new key id, and messages before and after it all open, in order")
    func refreshByTimeOut() async throws {
        let cluster = try await Self.cluster(adjust: { $0.daemonKeyMaxAgeSeconds = 1 })
        defer { Task { await cluster.stop() } }
        let before = try await cluster.status(of: "d1").daemonKeyEpoch
        let half = 50
        let outcomes = try await withThrowingTaskGroup(of: (keyIDs: [UInt32], rekeys: Int, texts: [String]).self) { tasks in
            for (index, name) in ["a", "b"].enumerated() {
                let options = Self.options(name)
                let address = cluster.members[index].localAddress
                tasks.addTask {
                    try await CohortClient.withConnection(to: address, options: options) { connection in
                        try await connection.join("secure")
                        var keyIDs: [UInt32] = []
                        var rekeys = 0
                        var texts: [String] = []
                        func send(_ range: Range<Int>) async throws {
                            try await connection.multicast(batch: try range.map { try connection.message(Array("m\($0)".utf8), to: ["secure"]) })
                        }
                        var events = connection.events.makeAsyncIterator()
                        while texts.count < 2 * half || rekeys == 0, let event = try await events.next() {
                            switch event {
                            case .view(let view) where view.members.count == 2:
                                if let id = view.key?.keyID { keyIDs.append(id) }
                                if view.cause == .rekey {
                                    #expect(view.changed.isEmpty && view.continuing.count == 2, "a rekey view keeps its members")
                                    rekeys += 1
                                    if name == "a", rekeys == 1 { try await send(half..<(2 * half)) }
                                } else if name == "a", keyIDs.count == 1 {
                                    try await send(0..<half)
                                }
                            case .message(let message):
                                texts.append(String(decoding: message.payload, as: UTF8.self))
                            case .error(let code, let reason):
                                Issue.record("\(name): error \(code): \(reason)")
                            default:
                                break
                            }
                        }
                        return (keyIDs, rekeys, texts)
                    }
                }
            }
            var all: [(keyIDs: [UInt32], rekeys: Int, texts: [String])] = []
            for try await outcome in tasks { all.append(outcome) }
            return all
        }
        for outcome in outcomes {
            #expect(outcome.texts == (0..<(2 * half)).map { "m\($0)" })
            #expect(outcome.rekeys >= 1 && outcome.keyIDs.count >= 2)
            #expect(zip(outcome.keyIDs, outcome.keyIDs.dropFirst()).allSatisfy { $0 != $1 }, "each view has a key of its own: \(outcome.keyIDs)")
        }
        let after = try await cluster.members.asyncMap { try await cluster.status(of: $0.name).daemonKeyEpoch }
        #expect(after[0] == after[1] && after[0] != before, "\(String(describing: before)) then \(after)")
        #expect(after[0]?.contains("(refresh ") == true, "\(after)")
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
