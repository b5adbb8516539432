import Testing
@testable import CohortCore

/// The flush layer on its own: a few clients fed one total order of EVS views and messages, as
/// one daemon would deliver them (the simulator runs it against faults and many daemons).
@Suite("Virtual Synchrony flush layer")
struct VirtualSynchronyTests {
    static let g = group("g")
    static let configuration = ConfigurationID(epoch: 1, representative: "d1")

    /// Clients over one ordered stream: what each sends is ordered after everything before it
    /// and delivered to every client in the group's current EVS view.
    struct Harness {
        var clients: [MemberID: VirtualSynchrony] = [:]
        /// What each application got, in order.
        var delivered: [MemberID: [VirtualSynchrony.Action]] = [:]
        var evsMembers: [MemberID] = []
        var sequence: UInt64 = 0
        /// Flush-oks and data waiting to be ordered.
        var queue: [DeliveredMessage] = []
        var autoFlush = true

        init(_ names: [String], holdsViews: Bool = false) {
            for name in names {
                clients[member(name)] = VirtualSynchrony(member: member(name), settings: .init(holdsViews: holdsViews))
            }
        }

        func view(_ members: [MemberID], cause: ViewCause = .join, changed: [MemberID] = [], transitional: Bool = false,
                  continuing: [MemberID]? = nil) -> GroupView {
            GroupView(group: g, viewID: GroupViewID(configuration: configuration, sequence: sequence), members: members,
                      cause: cause, changed: changed, transitional: transitional, continuing: continuing ?? members)
        }

        /// The daemon installs an EVS view: every member gets it (and a leaver its own leave).
        mutating func install(_ members: [MemberID], cause: ViewCause = .join, changed: [MemberID] = []) {
            sequence += 1
            let regular = view(members, cause: cause, changed: changed)
            let recipients = members + evsMembers.filter { !members.contains($0) && cause == .leave }
            evsMembers = members
            for recipient in recipients {
                var shown = regular
                if !members.contains(recipient) { shown.members = [] }
                feed(recipient, .view(shown))
            }
        }

        mutating func feed(_ client: MemberID, _ event: VirtualSynchrony.Event) {
            guard clients[client] != nil else { return }
            var actions = clients[client]!.on(event)
            var index = 0
            while index < actions.count {
                switch actions[index] {
                case .send(let message):
                    queue.append(DeliveredMessage(service: message.service, messageType: message.messageType, sender: client,
                                                  groups: message.groups, payload: message.payload))
                case .flushRequest(let group) where autoFlush:
                    actions += clients[client]!.on(.flush(group))
                default:
                    delivered[client, default: []].append(actions[index])
                }
                index += 1
            }
        }

        /// The application of `client` sends `text`; throws what the flush layer throws.
        mutating func send(_ client: MemberID, _ text: String) throws(VSError) {
            let outgoing = OutgoingMessage(service: .agreed, groups: [g], payload: Array(text.utf8))
            let wrapped = try clients[client]!.wrap(outgoing)
            queue.append(DeliveredMessage(service: .agreed, messageType: 0, sender: client, groups: [g], payload: wrapped.payload))
            feed(client, .written(g))
        }

        /// Orders everything queued, delivering it to the current EVS members.
        mutating func run() {
            while !queue.isEmpty {
                let message = queue.removeFirst()
                for recipient in evsMembers { feed(recipient, .message(message)) }
            }
        }

        func views(_ client: MemberID) -> [GroupView] {
            (delivered[client] ?? []).compactMap { if case .view(let view, _) = $0 { view } else { nil } }
        }

        func texts(_ client: MemberID) -> [String] {
            (delivered[client] ?? []).compactMap { if case .message(let message) = $0 { String(decoding: message.payload, as: UTF8.self) } else { nil } }
        }
    }

    @Test("a joiner's flush-ok goes out at once; the view is installed when every member has flushed")
    func joinInstalls() throws {
        let (a, b) = (member("a"), member("b"))
        var harness = Harness(["a", "b"])
        harness.install([a])
        #expect(harness.views(a).isEmpty, "the view waits for a's own flush-ok")
        harness.run()
        #expect(harness.views(a).map(\.members) == [[a]])
        #expect(harness.views(a).first?.semantics == .virtualSynchrony)
        try harness.send(a, "one")
        harness.install([a, b])
        // a was asked to flush (and did, automatically), b's flush-ok was sent at once.
        #expect(throws: VSError.flushing(Self.g)) { try harness.send(a, "too late") }
        harness.run()
        #expect(harness.views(a).map(\.members) == [[a], [a, b]])
        #expect(harness.views(b).map(\.members) == [[a, b]])
        #expect(harness.texts(a) == ["one"], "a delivers its message in the view it sent it in")
        #expect(harness.texts(b).isEmpty, "b was not in the view the message was sent in")
        #expect(harness.views(a).last?.continuing == [a])
        #expect(harness.views(a).last?.changed == [b])
    }

    @Test("with a manual flush the new view waits for the application's flush")
    func manualFlush() throws {
        let (a, b) = (member("a"), member("b"))
        var harness = Harness(["a", "b"])
        harness.install([a])
        harness.run()
        harness.autoFlush = false
        harness.install([a, b])
        harness.run()
        #expect(harness.delivered[a]?.last == .flushRequest(Self.g))
        #expect(harness.clients[a]!.canSend(in: Self.g), "until it flushes the application may still send")
        try harness.send(a, "before the flush")
        harness.run()
        #expect(harness.views(b).isEmpty)
        harness.feed(a, .flush(Self.g))
        #expect(!harness.clients[a]!.canSend(in: Self.g))
        harness.run()
        #expect(harness.views(a).map(\.members) == [[a], [a, b]])
        #expect(harness.views(b).map(\.members) == [[a, b]])
        #expect(harness.texts(a) == ["before the flush"])
    }

    @Test("a change during a flush restarts it under the newer view; the flush converges")
    func cascade() throws {
        let (a, b, c) = (member("a"), member("b"), member("c"))
        var harness = Harness(["a", "b", "c"])
        harness.install([a])
        harness.run()
        harness.install([a, b])
        // Before any flush-ok is ordered, c joins too.
        harness.install([a, b, c])
        harness.run()
        #expect(harness.views(a).map(\.members) == [[a], [a, b, c]], "the intermediate view is skipped")
        #expect(harness.views(b).map(\.members) == [[a, b, c]])
        #expect(harness.views(c).map(\.members) == [[a, b, c]])
        #expect(harness.clients.values.allSatisfy { $0.isSettled })
    }

    @Test("closed groups: a non-member cannot send, and a message without the VS header is not delivered")
    func closedGroups() throws {
        let (a, outsider) = (member("a"), member("x"))
        var harness = Harness(["a", "x"])
        #expect(throws: VSError.notMember(Self.g)) { try harness.send(outsider, "hi") }
        harness.install([a])
        harness.run()
        let plain = DeliveredMessage(service: .agreed, messageType: 0, sender: outsider, groups: [Self.g], payload: Array("evs".utf8))
        harness.feed(a, .message(plain))
        #expect(harness.delivered[a]?.last == .discarded(plain, reason: .notVirtualSynchrony))
        // A well-formed VS message from a sender outside the view.
        var forged = plain
        forged.payload = VSEnvelope.data(viewID: harness.views(a)[0].viewID).encoded(around: Array("forged".utf8))
        harness.feed(a, .message(forged))
        #expect(harness.delivered[a]?.last == .discarded(forged, reason: .notMember))
        #expect(throws: VSError.severalGroups) {
            var client = harness.clients[a]!
            _ = try client.wrap(OutgoingMessage(service: .agreed, groups: [Self.g, group("h")], payload: []))
        }
    }

    @Test("a flush-ok waits until every message tagged before it is written")
    func flushWaitsForWrites() throws {
        let (a, b) = (member("a"), member("b"))
        var client = VirtualSynchrony(member: a)
        let first = GroupView(group: Self.g, viewID: GroupViewID(configuration: Self.configuration, sequence: 1),
                              members: [a], cause: .join, changed: [a], continuing: [a])
        let flushOK = client.on(.view(first))
        #expect(flushOK.count == 1)
        var ok = DeliveredMessage(service: .agreed, messageType: 0, sender: a, groups: [Self.g], payload: [])
        if case .send(let message) = flushOK[0] { ok.payload = message.payload }
        _ = client.on(.message(ok))
        _ = try client.wrap(OutgoingMessage(service: .agreed, groups: [Self.g], payload: [1]))
        var second = first
        second.viewID.sequence = 2
        second.members = [a, b]
        #expect(client.on(.view(second)) == [.flushRequest(Self.g)])
        #expect(client.on(.flush(Self.g)).isEmpty, "the tagged message is not written yet")
        let sent = client.on(.written(Self.g))
        #expect(sent.count == 1)
        if case .send(let message) = sent.first {
            #expect(VSEnvelope.decode(message.payload)?.0 == .flushOK(viewID: second.viewID))
        } else {
            Issue.record("expected the flush-ok, got \(sent)")
        }
    }

    @Test("a held view reaches the application on release, with the attachment and the messages that waited")
    func holdAndRelease() throws {
        let (a, b) = (member("a"), member("b"))
        var harness = Harness(["a", "b"], holdsViews: true)
        harness.install([a, b])
        harness.run()
        #expect(harness.views(a).isEmpty)
        guard case .hold(let held)? = harness.delivered[a]?.last else {
            Issue.record("no hold: \(harness.delivered[a] ?? [])")
            return
        }
        #expect(throws: VSError.flushing(Self.g)) { try harness.send(a, "not yet") }
        // b's security layer is done first; its application sends in the new view.
        harness.feed(b, .release(Self.g, viewID: held.viewID, attachment: [7]))
        try harness.send(b, "early")
        harness.run()
        #expect(harness.texts(a).isEmpty, "kept until a's release")
        harness.feed(a, .release(Self.g, viewID: held.viewID, attachment: [9]))
        #expect(harness.delivered[a]?.suffix(2).first == .view(held, attachment: [9]))
        #expect(harness.texts(a) == ["early"])
        #expect(harness.texts(b) == ["early"])
    }

    @Test("a change before the release abandons the held view: the application never sees it")
    func holdAbandoned() throws {
        let (a, b, c) = (member("a"), member("b"), member("c"))
        var harness = Harness(["a", "b", "c"], holdsViews: true)
        harness.install([a, b])
        harness.run()
        guard case .hold(let held)? = harness.delivered[a]?.last else {
            Issue.record("no hold")
            return
        }
        harness.install([a, b, c])
        #expect(harness.delivered[a]?.contains(.abandoned(held)) == true)
        harness.run()
        for client in [a, b, c] {
            guard case .hold(let newer)? = harness.delivered[client]?.last else {
                Issue.record("no second hold at \(client)")
                return
            }
            #expect(newer.members == [a, b, c])
            harness.feed(client, .release(Self.g, viewID: newer.viewID, attachment: []))
            #expect(harness.views(client).map(\.members) == [[a, b, c]])
        }
    }

    @Test("its own leave is delivered at once and ends the group")
    func ownLeave() throws {
        let (a, b) = (member("a"), member("b"))
        var harness = Harness(["a", "b"])
        harness.install([a, b])
        harness.run()
        harness.install([b], cause: .leave, changed: [a])
        #expect(harness.views(a).last?.members == [])
        #expect(throws: VSError.notMember(Self.g)) { try harness.send(a, "gone") }
        harness.run()
        #expect(harness.views(b).map(\.members) == [[a, b], [b]])
    }

    @Test("the VS header decoder never traps and takes only what it wrote", arguments: [UInt64(1), 2, 3])
    func envelopeFuzz(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let viewID = GroupViewID(configuration: Self.configuration, sequence: 42)
        let valid = VSEnvelope.data(viewID: viewID).encoded(around: [1, 2, 3])
        #expect(VSEnvelope.decode(valid)?.0 == .data(viewID: viewID))
        #expect(VSEnvelope.decode(valid)?.payload == [1, 2, 3])
        for _ in 0..<5_000 {
            var bytes = valid
            switch random.next() % 3 {
            case 0: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
            case 1: bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            default: bytes = VSEnvelope.magic + (0..<Int(random.next() % 40)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            }
            _ = VSEnvelope.decode(bytes)
        }
    }
}
