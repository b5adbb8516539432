import Cohort
import CohortCore
import CohortDaemon
import CohortTransport
import Foundation
import Testing

@Suite("End to end over real sockets", .timeLimit(.minutes(2)))
struct EndToEndTests {
    @Test("clients over TCP and a Unix socket share a group and one total order")
    func sharedGroup() async throws {
        try await withDaemon { daemon in
            let clients = 4
            let perClient = 200
            let orders = try await withThrowingTaskGroup(of: [String].self) { tasks in
                for index in 0..<clients {
                    let address = index % 2 == 0 ? daemon.tcp : daemon.unix
                    tasks.addTask {
                        try await CohortClient.withConnection(to: address, options: ConnectionOptions(name: "c\(index)")) { connection in
                            try await connection.join("room")
                            var events = connection.events.makeAsyncIterator()
                            let view = try await events.view(of: "room", members: clients)
                            #expect(view.members.contains(connection.member))
                            let batch = try (0..<perClient).map {
                                try connection.message(Array("c\(index):\($0)".utf8), to: ["room"])
                            }
                            try await connection.multicast(batch: batch)
                            let messages = try await events.messages(clients * perClient)
                            // FIFO per sender inside the total order.
                            let mine = messages.filter { $0.sender == connection.member }.map { String(decoding: $0.payload, as: UTF8.self) }
                            #expect(mine == (0..<perClient).map { "c\(index):\($0)" })
                            return messages.map { "\($0.sender)|\(String(decoding: $0.payload, as: UTF8.self))" }
                        }
                    }
                }
                var orders: [[String]] = []
                for try await order in tasks { orders.append(order) }
                return orders
            }
            #expect(orders.count == clients)
            #expect(orders.allSatisfy { $0.count == clients * perClient })
            #expect(Set(orders).count == 1, "every client must see one total order")
        }
    }

    @Test("views report joins, leaves and disconnects in order")
    func views() async throws {
        try await withDaemon { daemon in
            try await CohortClient.withConnection(to: daemon.tcp, options: ConnectionOptions(name: "watcher")) { watcher in
                try await watcher.join("g")
                var events = watcher.events.makeAsyncIterator()
                _ = try await events.view(of: "g", members: 1)
                try await CohortClient.withConnection(to: daemon.unix, options: ConnectionOptions(name: "guest")) { guest in
                    try await guest.join("g")
                    let joined = try await events.view(of: "g", members: 2)
                    #expect(joined.cause == .join)
                    #expect(joined.changed.map(\.name) == ["guest"])
                    #expect(joined.continuing.map(\.name) == ["watcher"])
                    try await guest.leave("g")
                    let left = try await events.view(of: "g", members: 1)
                    #expect(left.cause == .leave)
                    try await guest.join("g")
                    _ = try await events.view(of: "g", members: 2)
                }
                // The guest's connection closed without a leave: a disconnect view.
                let gone = try await events.view(of: "g", members: 1)
                #expect(gone.cause == .disconnect)
                #expect(gone.changed.map(\.name) == ["guest"])
                #expect(gone.viewID > joinedViewID(gone))
            }
        }
    }

    private func joinedViewID(_ view: GroupView) -> GroupViewID {
        GroupViewID(configuration: view.viewID.configuration, sequence: 0)
    }

    @Test("a duplicate private name is a typed rejection")
    func duplicateName() async throws {
        _ = try await withDaemon { daemon in
            try await CohortClient.withConnection(to: daemon.tcp, options: ConnectionOptions(name: "same")) { _ in
                await #expect(throws: CohortError.rejected(.duplicatePrivateName, reason: "private name same is in use")) {
                    try await CohortClient.withConnection(to: daemon.unix, options: ConnectionOptions(name: "same")) { _ in }
                }
            }
        }
    }

    @Test("the client library refuses oversize payloads and invalid names before sending")
    func clientSideChecks() async throws {
        try await withDaemon { daemon in
            try await CohortClient.withConnection(to: daemon.tcp, options: ConnectionOptions(name: "c")) { connection in
                await #expect(throws: CohortError.tooLarge(bytes: 100 * 1024 + 1, max: 100 * 1024)) {
                    try await connection.multicast([UInt8](repeating: 0, count: 100 * 1024 + 1), to: ["g"])
                }
                await #expect(throws: CohortError.self) { try await connection.join("bad name") }
                // The session is still fine.
                try await connection.requestStatus()
                var events = connection.events.makeAsyncIterator()
                guard case .status(let status) = try await events.next() else { Issue.record("no status"); return }
                #expect(status.clients.map(\.name) == ["c"])
            }
            await #expect(throws: CohortError.self) {
                try await CohortClient.withConnection(to: daemon.tcp, options: ConnectionOptions(name: "no#hash")) { _ in }
            }
        }
    }

    @Test("connecting to a daemon that is not there is a typed error")
    func connectFailure() async throws {
        await #expect(throws: CohortError.self) {
            try await CohortClient.withConnection(to: .unix(path: "/nonexistent/cohort.sock"), options: ConnectionOptions(name: "c")) { _ in }
        }
    }

    @Test("daemon status lists clients and groups")
    func status() async throws {
        try await withDaemon { daemon in
            try await CohortClient.withConnection(to: daemon.tcp, options: ConnectionOptions(name: "member")) { connection in
                try await connection.join("alpha")
                var events = connection.events.makeAsyncIterator()
                _ = try await events.view(of: "alpha", members: 1)
                let status = try await CohortClient.status(of: daemon.unix)
                #expect(status.daemonName == "d1")
                #expect(status.architecture == "plain")
                #expect(status.groups.map(\.group.rawValue) == ["alpha"])
                #expect(status.groups[0].members.map(\.name) == ["member"])
            }
        }
    }
}

@Suite("Bad input end to end", .timeLimit(.minutes(2)))
struct BadInputTests {
    /// Each case: raw bytes, then the reject or error the daemon must answer before closing.
    static let cases: [(String, [UInt8], ErrorCode)] = [
        ("frame before handshake", ClientFrame.join(try! GroupName("g")).encoded(), .frameBeforeHandshake),
        ("unknown frame kind", [0, 0, 0, 1, 0x7E], .unknownFrameKind),
        ("oversized frame length", [0x7F, 0xFF, 0xFF, 0xFF, 1], .frameTooLarge),
        ("bad magic", { var f = ClientFrame.connect(ConnectRequest(privateName: "x")).encoded(); f[5] = 0; return f }(), .badMagic),
        ("unsupported version", ClientFrame.connect(ConnectRequest(version: 9, privateName: "x")).encoded(), .unsupportedVersion),
    ]

    @Test("garbage from one client ends only its session", arguments: 0..<cases.count)
    func garbage(index: Int) async throws {
        let (name, bytes, code) = Self.cases[index]
        try await withDaemon { daemon in
            try await CohortClient.withConnection(to: daemon.unix, options: ConnectionOptions(name: "bystander")) { bystander in
                try await bystander.join("g")
                var events = bystander.events.makeAsyncIterator()
                _ = try await events.view(of: "g", members: 1)

                let raw = try RawClient(port: daemon.server.clientPort!)
                raw.send(bytes)
                let (frames, closed) = raw.readUntilClosed()
                #expect(closed, "\(name): the daemon closes the session")
                switch frames.first {
                case .reject(let got, _), .error(let got, _, _): #expect(got == code, "\(name)")
                default: Issue.record("\(name): expected a reject or error, got \(frames)")
                }

                // The bystander is unaffected.
                try await bystander.multicast("still here", to: "g")
                let messages = try await events.messages(1)
                #expect(messages.first?.payload == Array("still here".utf8))
            }
        }
    }

    @Test("bad input after the handshake: error frame, session closed, its groups updated")
    func afterHandshake() async throws {
        try await withDaemon(configure: { $0.limits.payloadBytesMax = 1000 }) { daemon in
            try await CohortClient.withConnection(to: daemon.tcp, options: ConnectionOptions(name: "bystander")) { bystander in
                try await bystander.join("g")
                var events = bystander.events.makeAsyncIterator()
                _ = try await events.view(of: "g", members: 1)

                let raw = try RawClient(port: daemon.server.clientPort!)
                raw.send(ClientFrame.connect(ConnectRequest(privateName: "bad")).encoded())
                raw.send(ClientFrame.join(try GroupName("g")).encoded())
                _ = try await events.view(of: "g", members: 2)
                let oversized = OutgoingMessage(service: .agreed, groups: [try GroupName("g")], payload: [UInt8](repeating: 1, count: 1001))
                raw.send(ClientFrame.multicast(oversized).encoded())
                let (frames, closed) = raw.readUntilClosed()
                #expect(closed)
                #expect(frames.contains { if case .error(.payloadTooLarge, true, _) = $0 { true } else { false } })
                let after = try await events.view(of: "g", members: 1)
                #expect(after.cause == .disconnect)
            }
        }
    }

    @Test("a client that stops reading holds senders back, then is dropped; nothing is lost for the others")
    func slowReceiver() async throws {
        try await withDaemon(configure: {
            $0.clientQueueBytesMax = 1024 * 1024
            // Long enough that the fast reader keeps up on a loaded machine (the simulator tests
            // run beside this one), short enough to see the slow one dropped.
            $0.slowClientTimeout = .seconds(2)
        }) { daemon in
            let slow = try RawClient(port: daemon.server.clientPort!)
            slow.shrinkReceiveBuffer()
            slow.send(ClientFrame.connect(ConnectRequest(privateName: "slow")).encoded())
            slow.send(ClientFrame.join(try GroupName("g")).encoded())
            try await CohortClient.withConnection(to: daemon.tcp, options: ConnectionOptions(name: "fast")) { fast in
                try await fast.join("g")
                var events = fast.events.makeAsyncIterator()
                _ = try await events.view(of: "g", members: 2)
                // 16 MB toward a client that reads nothing: far beyond the kernel's socket
                // buffers plus its 1 MiB queue. The sender is not paced by anything but the
                // daemon's backpressure; every message must still reach the fast reader.
                let payload = [UInt8](repeating: 7, count: 8 * 1024)
                let batches = 64
                let sender = Task {
                    for _ in 0..<batches {
                        try await fast.multicast(batch: try (0..<32).map { _ in try fast.message(payload, to: ["g"]) })
                    }
                }
                var received = 0
                var dropped: GroupView?
                while received < batches * 32, let event = try await events.next() {
                    switch event {
                    case .message: received += 1
                    case .view(let view): dropped = view
                    default: break
                    }
                }
                try await sender.value
                #expect(received == batches * 32)
                #expect(dropped?.cause == .disconnect)
                #expect(dropped?.changed.map(\.name) == ["slow"])
            }
            let status = try await CohortClient.status(of: daemon.unix)
            #expect(!status.clients.map(\.name).contains("slow"))
            _ = slow
        }
    }

    @Test("a reader slower than the sender is held back, not dropped")
    func slowerReader() async throws {
        // The slow-client timeout is not under test here (the test above covers it): a long one
        // keeps a loaded machine (the simulator tests run beside this one) from tripping it.
        try await withDaemon(configure: {
            $0.clientQueueBytesMax = 256 * 1024
            $0.slowClientTimeout = .seconds(120)
        }) { daemon in
            let count = 3000
            var readerOptions = ConnectionOptions(name: "reader")
            readerOptions.inboundReadsBufferedMax = 4
            try await CohortClient.withConnection(to: daemon.unix, options: readerOptions) { reader in
                try await reader.join("g")
                var events = reader.events.makeAsyncIterator()
                _ = try await events.view(of: "g", members: 1)
                let writer = Task {
                    var writerOptions = ConnectionOptions(name: "writer")
                    writerOptions.wantsMembership = false
                    try await CohortClient.withConnection(to: daemon.tcp, options: writerOptions) { writer in
                        let payload = [UInt8](repeating: 1, count: 4096)
                        for _ in 0..<(count / 100) {
                            try await writer.multicast(batch: try (0..<100).map { _ in try writer.message(payload, to: ["g"], service: ServiceType(.agreed, selfDiscard: true)) })
                        }
                        try await writer.disconnect()
                        for try await _ in writer.events {}
                    }
                }
                var received = 0
                while received < count, let event = try await events.next() {
                    if case .message = event {
                        received += 1
                        // Read slowly: the daemon must hold the writer back.
                        if received % 100 == 0 { try await Task.sleep(for: .milliseconds(5)) }
                    }
                }
                try await writer.value
                #expect(received == count)
            }
        }
    }
}
