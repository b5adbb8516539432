import Cohort
import CohortCluster
import CohortCore
import CohortSecurity
import Foundation
import Testing

/// Integrated VS over real daemons: the daemons agree on their key, clients on the Unix sockets
/// get keyed VS views and exchange sealed messages; plain TCP is refused.
@Suite("Integrated VS over real daemons", .serialized, .timeLimit(.minutes(3)))
struct IntegratedVSEndToEndTests {
    @Test("two daemons agree on one key; a client's 300 sealed messages, sent in batches, all open at the other, in order")
    func sealedExchange() async throws {
        let cluster = try await LocalCluster.start(
            daemons: 2, basePort: try LocalCluster.freePorts(4), architecture: Architecture.integratedVS.name,
            daemonExecutable: ProcessTests.cohortd)
        defer { Task { await cluster.stop() } }
        var options = ConnectionOptions(name: "a")
        options.architecture = .integratedVS
        // Plain TCP would hand the key out in the clear: refused at connect.
        await #expect(throws: CohortError.self) {
            try await CohortClient.withConnection(to: cluster.members[0].address, options: options) { _ in }
        }
        let count = 300
        let received = try await withThrowingTaskGroup(of: [String].self) { tasks in
            for (index, name) in ["a", "b"].enumerated() {
                var options = ConnectionOptions(name: name)
                options.architecture = .integratedVS
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
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
