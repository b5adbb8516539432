import Testing
@testable import CohortCore

/// Refuses every message whose payload starts with 0xFF (and, not being `plain`'s engine, runs
/// every delivery through the security stage).
struct RefusingEngine: DaemonSecurityEngine {
    var architectureName: String { "refusing" }
    func admit(_ message: inout OutgoingMessage, from sender: MemberID, now: Instant) throws(ArchitectureError) -> [DaemonSecurityAction] {
        if message.payload.first == 0xFF { throw ArchitectureError("no 0xFF") }
        return []
    }
}

/// Drives a core and records what each session receives.
struct CoreHarness {
    var core: DaemonCore
    var now = Instant(nanoseconds: 0)
    var received: [SessionID: [DaemonFrame]] = [:]
    var closed: [SessionID: String] = [:]
    var timers: [(DaemonCore.Timer, Duration)] = []

    /// Protocol messages the daemon sent itself, delivered after the current event.
    var loopback: [PeerMessage] = []
    var installs: [RingConfiguration] = []
    var droppedPeers: Set<String> = []
    var denials: [AccessDenial] = []
    var securityReports: [DaemonSecurityReport] = []

    /// A core on a ring of one daemon, started and settled (its idle token held).
    init(
        settings: DaemonCore.Settings = DaemonCore.Settings(daemonName: "d1"), security: any DaemonSecurityEngine = PlainDaemonSecurity(),
        authentication: [any AuthenticationMethod] = [NoAuthentication()], accessControl: any AccessControl = AllowEverything()
    ) {
        core = try! DaemonCore(settings: settings, security: security, authentication: authentication, accessControl: accessControl)
        feed(.start)
        precondition(core.groups.isStable, "a daemon alone forms its ring at once")
    }

    mutating func feed(_ event: DaemonCore.Event) {
        record(core.on(event, now: now))
        while !loopback.isEmpty {
            record(core.on(.peer(loopback.removeFirst()), now: now))
        }
    }

    /// Records what the sessions receive (client timers only; the ring's are not fired here).
    mutating func record(_ actions: [DaemonCore.Action]) {
        for action in actions {
            switch action {
            case .send(let frame, let session): received[session, default: []].append(frame)
            case .deliver(let frame, let sessions): for session in sessions { received[session, default: []].append(frame) }
            case .close(let session, let reason, _): closed[session] = reason
            case .armTimer(.ring, _): break
            case .armTimer(let timer, let delay): timers.append((timer, delay))
            case .pauseIntake, .broadcastToPeers: break
            case .sendToPeer(let message, let to):
                precondition(to == core.daemon, "a daemon alone sends only to itself")
                loopback.append(message)
            case .configurationInstalled(let configuration): installs.append(configuration)
            case .dropPeers(let peers): droppedPeers = peers
            case .authenticated, .authenticationFailed: break
            case .accessDenied(_, let denial): denials.append(denial)
            case .security(let report): securityReports.append(report)
            }
        }
    }

    /// Opens a session and completes its handshake: with method `none`, or, given a
    /// `principal`, with the test method that lets the client claim one.
    @discardableResult
    mutating func connect(_ number: UInt64, name: String, membership: Bool = true, principal: String? = nil) -> SessionID {
        let session = SessionID(number)
        feed(.sessionOpened(session, .test()))
        let request = principal.map {
            ConnectRequest(privateName: name, wantsMembership: membership, authMethod: "claim", authData: Array($0.utf8))
        } ?? ConnectRequest(privateName: name, wantsMembership: membership)
        feed(.frame(session, .connect(request)))
        return session
    }

    mutating func take(_ session: SessionID) -> [DaemonFrame] {
        defer { received[session] = [] }
        return received[session] ?? []
    }

    func messages(_ session: SessionID) -> [DeliveredMessage] {
        (received[session] ?? []).compactMap { if case .message(let m) = $0 { m } else { nil } }
    }
}

@Suite("Daemon core: handshake")
struct HandshakeTests {
    @Test("a connect is accepted with the member's identity")
    func accept() {
        var harness = CoreHarness()
        let session = harness.connect(1, name: "alice")
        #expect(harness.take(session) == [.accept(ConnectAccept(version: WireProtocol.version, member: member("alice"), architecture: "plain", principal: .anonymous))])
        #expect(harness.timers.count == 1)
    }

    @Test("a duplicate private name is rejected and the first session keeps going")
    func duplicateName() {
        var harness = CoreHarness()
        let first = harness.connect(1, name: "alice")
        let second = harness.connect(2, name: "alice")
        guard case .reject(.duplicatePrivateName, _) = harness.take(second).first else { Issue.record("no reject"); return }
        #expect(harness.closed[second] != nil)
        #expect(harness.closed[first] == nil)
        #expect(harness.core.member(of: first) == member("alice"))
    }

    @Test("a session under the name of one whose disconnect is not yet ordered is accepted once it is, in no group")
    func nameWaitsForDeparture() {
        var harness = CoreHarness()
        let first = harness.connect(1, name: "alice")
        harness.feed(.frame(first, .join(group("g"))))
        // A message leaves with the token, which the daemon forwards to itself; until that token
        // is processed (it is not, here), what is submitted waits for it.
        let message = OutgoingMessage(service: .agreed, groups: [group("g")], payload: [1])
        harness.record(harness.core.on(.frame(first, .multicast(message)), now: harness.now))
        #expect(!harness.loopback.isEmpty)
        // The session ends; the ring has not yet ordered its disconnect.
        harness.record(harness.core.on(.sessionClosed(first), now: harness.now))
        #expect(harness.core.groups.table.groupCount(of: member("alice")) == 1)
        let second = SessionID(2)
        harness.record(harness.core.on(.sessionOpened(second, .test()), now: harness.now))
        harness.record(harness.core.on(.frame(second, .connect(ConnectRequest(privateName: "alice", wantsMembership: true))), now: harness.now))
        #expect(harness.take(second).isEmpty, "answered before the old session departed")
        // A third session under the name meanwhile is a duplicate.
        let third = harness.connect(3, name: "alice")
        guard case .reject(.duplicatePrivateName, _) = harness.take(third).first else { Issue.record("no reject"); return }
        // Once the disconnect is ordered, the waiting session is accepted, and the old session's
        // group and message never reach it.
        while !harness.loopback.isEmpty {
            harness.record(harness.core.on(.peer(harness.loopback.removeFirst()), now: harness.now))
        }
        guard case .accept = harness.take(second).first else { Issue.record("no accept"); return }
        #expect(harness.take(second).isEmpty)
        #expect(harness.core.groups.table.groupCount(of: member("alice")) == 0)
    }

    @Test("a session waiting for its name's departure times out like any handshake")
    func departureWaitTimesOut() {
        var harness = CoreHarness()
        let first = harness.connect(1, name: "alice")
        harness.record(harness.core.on(.frame(first, .join(group("g"))), now: harness.now))
        harness.record(harness.core.on(.sessionClosed(first), now: harness.now))
        let second = SessionID(2)
        harness.record(harness.core.on(.sessionOpened(second, .test()), now: harness.now))
        harness.record(harness.core.on(.frame(second, .connect(ConnectRequest(privateName: "alice", wantsMembership: true))), now: harness.now))
        harness.now = harness.now.advanced(by: harness.core.settings.handshakeTimeout)
        harness.record(harness.core.on(.timerFired(.handshake(second)), now: harness.now))
        guard case .reject(.handshakeTimeout, _) = harness.take(second).first else { Issue.record("no timeout"); return }
    }

    @Test("an unsupported version is rejected")
    func version() {
        var harness = CoreHarness()
        harness.feed(.sessionOpened(SessionID(1), .test()))
        harness.feed(.frame(SessionID(1), .connect(ConnectRequest(version: 99, privateName: "a"))))
        guard case .reject(.unsupportedVersion, _) = harness.take(SessionID(1)).first else { Issue.record("no reject"); return }
        #expect(harness.closed[SessionID(1)] != nil)
    }

    @Test("an invalid private name is rejected", arguments: ["", "a#b", "with space", String(repeating: "n", count: 33)])
    func invalidName(name: String) {
        var harness = CoreHarness()
        let session = harness.connect(1, name: name)
        guard case .reject(.invalidPrivateName, _) = harness.take(session).first else { Issue.record("no reject"); return }
    }

    @Test("an authentication method that is not offered is rejected")
    func authMethod() {
        var harness = CoreHarness()
        harness.feed(.sessionOpened(SessionID(1), .test()))
        harness.feed(.frame(SessionID(1), .connect(ConnectRequest(privateName: "a", authMethod: "password"))))
        guard case .reject(.authMethodNotOffered, _) = harness.take(SessionID(1)).first else { Issue.record("no reject"); return }
    }

    @Test("frames before the handshake are rejected", arguments: [ClientFrame.join(group("g")), .statusRequest, .disconnect])
    func frameBeforeHandshake(frame: ClientFrame) {
        var harness = CoreHarness()
        harness.feed(.sessionOpened(SessionID(1), .test()))
        harness.feed(.frame(SessionID(1), frame))
        guard case .reject(.frameBeforeHandshake, _) = harness.take(SessionID(1)).first else { Issue.record("no reject"); return }
        #expect(harness.closed[SessionID(1)] != nil)
        #expect(harness.core.establishedSessionCount == 0)
    }

    @Test("a second connect ends the session")
    func secondConnect() {
        var harness = CoreHarness()
        let session = harness.connect(1, name: "a")
        _ = harness.take(session)
        harness.feed(.frame(session, .connect(ConnectRequest(privateName: "a"))))
        #expect(harness.take(session).first == .error(.unexpectedHandshake, fatal: true, reason: "session is already established"))
        #expect(harness.closed[session] != nil)
    }

    @Test("a handshake that stalls times out; one that completed does not")
    func handshakeTimeout() {
        var harness = CoreHarness()
        harness.feed(.sessionOpened(SessionID(1), .test()))
        let done = harness.connect(2, name: "b")
        _ = harness.take(done)
        harness.now = harness.now.advanced(by: .seconds(10))
        harness.feed(.timerFired(.handshake(SessionID(1))))
        harness.feed(.timerFired(.handshake(done)))
        guard case .reject(.handshakeTimeout, _) = harness.take(SessionID(1)).first else { Issue.record("no reject"); return }
        #expect(harness.take(done).isEmpty)
        #expect(harness.closed[done] == nil)
    }

    @Test("the client limit is enforced")
    func clientLimit() {
        var settings = DaemonCore.Settings(daemonName: "d1")
        settings.clientsMax = 1
        var harness = CoreHarness(settings: settings)
        harness.connect(1, name: "a")
        let second = harness.connect(2, name: "b")
        guard case .reject(.tooManyClients, _) = harness.take(second).first else { Issue.record("no reject"); return }
    }

    @Test("malformed input ends only that session")
    func malformed() {
        var harness = CoreHarness()
        let good = harness.connect(1, name: "a")
        let bad = harness.connect(2, name: "b")
        harness.feed(.frame(good, .join(group("g"))))
        harness.feed(.frame(bad, .join(group("g"))))
        _ = harness.take(good)
        _ = harness.take(bad)
        harness.feed(.malformedFrame(bad, .payloadTooLarge(bytes: 10, max: 5)))
        guard case .error(.payloadTooLarge, fatal: true, _) = harness.take(bad).first else { Issue.record("no error"); return }
        #expect(harness.closed[bad] != nil)
        // The good member sees the bad one leave, and keeps working.
        guard case .view(let view) = harness.take(good).first else { Issue.record("no view"); return }
        #expect(view.cause == .disconnect && view.members == [member("a")])
        harness.feed(.frame(good, .multicast(OutgoingMessage(service: .agreed, groups: [group("g")], payload: [1]))))
        #expect(harness.messages(good).count == 1)
    }
}

@Suite("Daemon core: groups and delivery")
struct DeliveryTests {
    @Test("members see each other's joins and messages in one order")
    func totalOrder() {
        var harness = CoreHarness()
        let a = harness.connect(1, name: "a")
        let b = harness.connect(2, name: "b")
        harness.feed(.frame(a, .join(group("g"))))
        harness.feed(.frame(b, .join(group("g"))))
        for i in 0..<10 {
            let sender = i % 2 == 0 ? a : b
            harness.feed(.frame(sender, .multicast(OutgoingMessage(service: .agreed, groups: [group("g")], payload: [UInt8(i)]))))
        }
        #expect(harness.messages(a).map(\.payload) == (0..<10).map { [UInt8($0)] })
        #expect(harness.messages(a) == harness.messages(b))
        #expect(harness.messages(a)[1].sender == member("b"))
    }

    @Test("recipients follow joins, leaves, disconnects and reconnects between messages (the caches of a group's local members and their sessions are renewed)")
    func recipientsFollowChanges() {
        var harness = CoreHarness()
        let a = harness.connect(1, name: "a")
        let sender = harness.connect(9, name: "s", membership: false)
        func send(_ byte: UInt8) {
            harness.feed(.frame(sender, .multicast(OutgoingMessage(service: .agreed, groups: [group("g")], payload: [byte]))))
        }
        harness.feed(.frame(a, .join(group("g"))))
        send(1)
        let b = harness.connect(2, name: "b")
        harness.feed(.frame(b, .join(group("g"))))
        send(2)
        harness.feed(.frame(a, .leave(group("g"))))
        send(3)
        harness.feed(.sessionClosed(b))
        send(4)
        // A new session under b's name: the member is the same, its session is not.
        let b2 = harness.connect(3, name: "b")
        harness.feed(.frame(b2, .join(group("g"))))
        send(5)
        #expect(harness.messages(a).map(\.payload) == [[1], [2]])
        #expect(harness.messages(b).map(\.payload) == [[2], [3]])
        #expect(harness.messages(b2).map(\.payload) == [[5]])
        #expect(harness.messages(sender).isEmpty)
    }

    @Test("open groups: a non-member may send and does not receive")
    func openGroup() {
        var harness = CoreHarness()
        let member = harness.connect(1, name: "m")
        let outsider = harness.connect(2, name: "o")
        harness.feed(.frame(member, .join(group("g"))))
        harness.feed(.frame(outsider, .multicast(OutgoingMessage(service: .reliable, groups: [group("g")], payload: [7]))))
        #expect(harness.messages(member).map(\.payload) == [[7]])
        #expect(harness.messages(outsider).isEmpty)
    }

    @Test("SELF_DISCARD keeps a message from its sender")
    func selfDiscard() {
        var harness = CoreHarness()
        let a = harness.connect(1, name: "a")
        let b = harness.connect(2, name: "b")
        harness.feed(.frame(a, .join(group("g"))))
        harness.feed(.frame(b, .join(group("g"))))
        harness.feed(.frame(a, .multicast(OutgoingMessage(service: ServiceType(.agreed, selfDiscard: true), groups: [group("g")], payload: [1]))))
        #expect(harness.messages(a).isEmpty)
        #expect(harness.messages(b).count == 1)
    }

    @Test("a message to several groups reaches each member once")
    func multiGroup() {
        var harness = CoreHarness()
        let a = harness.connect(1, name: "a")
        let b = harness.connect(2, name: "b")
        harness.feed(.frame(a, .join(group("g1"))))
        harness.feed(.frame(a, .join(group("g2"))))
        harness.feed(.frame(b, .join(group("g2"))))
        harness.feed(.frame(b, .multicast(OutgoingMessage(service: .agreed, groups: [group("g1"), group("g2")], payload: [1]))))
        #expect(harness.messages(a).count == 1)
        #expect(harness.messages(b).count == 1)
        #expect(harness.messages(a)[0].groups == [group("g1"), group("g2")])
    }

    @Test("private messages reach one client")
    func privateMessage() {
        var harness = CoreHarness()
        let a = harness.connect(1, name: "a")
        let b = harness.connect(2, name: "b")
        let c = harness.connect(3, name: "c")
        harness.feed(.frame(a, .multicast(OutgoingMessage(service: .fifo, groups: [member("b").privateGroup], payload: [9]))))
        #expect(harness.messages(b).map(\.payload) == [[9]])
        #expect(harness.messages(c).isEmpty)
        #expect(harness.messages(a).isEmpty)
        // To an unknown client: nobody receives it, nobody is harmed.
        harness.feed(.frame(a, .multicast(OutgoingMessage(service: .fifo, groups: [member("zed").privateGroup], payload: [1]))))
        #expect(harness.closed.isEmpty)
    }

    @Test("private groups cannot be joined or left")
    func joinPrivate() {
        var harness = CoreHarness()
        let a = harness.connect(1, name: "a")
        _ = harness.take(a)
        harness.feed(.frame(a, .join(member("b").privateGroup)))
        guard case .error(.invalidGroupName, fatal: true, _) = harness.take(a).first else { Issue.record("no error"); return }
    }

    @Test("clients that did not ask for membership get no views")
    func membershipFlag() {
        var harness = CoreHarness()
        let quiet = harness.connect(1, name: "q", membership: false)
        _ = harness.take(quiet)
        harness.feed(.frame(quiet, .join(group("g"))))
        #expect(harness.take(quiet).isEmpty)
        harness.feed(.frame(quiet, .multicast(OutgoingMessage(service: .agreed, groups: [group("g")], payload: [1]))))
        #expect(harness.messages(quiet).count == 1)
    }

    @Test("the per-client group limit is enforced")
    func groupLimit() {
        var settings = DaemonCore.Settings(daemonName: "d1")
        settings.limits.groupsPerClientMax = 2
        var harness = CoreHarness(settings: settings)
        let a = harness.connect(1, name: "a")
        harness.feed(.frame(a, .join(group("g1"))))
        harness.feed(.frame(a, .join(group("g2"))))
        harness.feed(.frame(a, .join(group("g2"))))  // already a member: not counted twice
        #expect(harness.closed[a] == nil)
        _ = harness.take(a)
        harness.feed(.frame(a, .join(group("g3"))))
        guard case .error(.tooManyGroupsJoined, fatal: true, _) = harness.take(a).first else { Issue.record("no error"); return }
        #expect(harness.closed[a] != nil)
    }

    @Test("a message the architecture refuses is answered with a non-fatal error and not delivered")
    func architectureRefusal() {
        var harness = CoreHarness(security: RefusingEngine())
        let a = harness.connect(1, name: "a")
        harness.feed(.frame(a, .join(group("g"))))
        _ = harness.take(a)
        harness.feed(.frame(a, .multicast(OutgoingMessage(service: .agreed, groups: [group("g")], payload: [0xFF]))))
        #expect(harness.take(a) == [.error(.architectureRefused, fatal: false, reason: "no 0xFF")])
        #expect(harness.closed[a] == nil)
    }

    @Test("a disconnect frame ends the session and members see the leave")
    func disconnect() {
        var harness = CoreHarness()
        let a = harness.connect(1, name: "a")
        let b = harness.connect(2, name: "b")
        harness.feed(.frame(a, .join(group("g"))))
        harness.feed(.frame(b, .join(group("g"))))
        _ = harness.take(a)
        harness.feed(.frame(b, .disconnect))
        #expect(harness.closed[b] != nil)
        guard case .view(let view) = harness.take(a).first else { Issue.record("no view"); return }
        #expect(view.cause == .disconnect && view.changed == [member("b")])
        // The closed notification later changes nothing more.
        harness.feed(.sessionClosed(b))
        #expect(harness.take(a).isEmpty)
    }

    @Test("status lists clients and groups")
    func status() {
        var harness = CoreHarness()
        let a = harness.connect(1, name: "a")
        harness.feed(.frame(a, .join(group("g"))))
        _ = harness.take(a)
        harness.feed(.frame(a, .statusRequest))
        guard case .status(let status) = harness.take(a).first else { Issue.record("no status"); return }
        #expect(status.clients == [member("a")])
        #expect(status.groups.map(\.group) == [group("g")])
        #expect(status.daemonName == "d1")
    }

    @Test("shutdown tells every client and closes every session")
    func shutdown() {
        var harness = CoreHarness()
        let a = harness.connect(1, name: "a")
        harness.feed(.sessionOpened(SessionID(2), .test()))
        _ = harness.take(a)
        harness.feed(.shutdown)
        guard case .error(.shuttingDown, fatal: true, _) = harness.take(a).first else { Issue.record("no error"); return }
        guard case .reject(.shuttingDown, _) = harness.take(SessionID(2)).first else { Issue.record("no reject"); return }
        #expect(harness.closed.count == 2)
        harness.feed(.sessionOpened(SessionID(3), .test()))
        guard case .reject(.shuttingDown, _) = harness.take(SessionID(3)).first else { Issue.record("no reject"); return }
    }

    @Test("a backlogged client pauses all intake; draining resumes it")
    func backpressure() {
        var harness = CoreHarness()
        let slow = harness.connect(1, name: "slow")
        let other = harness.connect(2, name: "other")
        #expect(harness.core.on(.backlogged(slow), now: harness.now).contains { if case .pauseIntake(true) = $0 { true } else { false } })
        // A second backlogged client changes nothing more; intake resumes when both drained.
        #expect(!harness.core.on(.backlogged(other), now: harness.now).contains { if case .pauseIntake = $0 { true } else { false } })
        #expect(harness.core.on(.drained(slow), now: harness.now).isEmpty)
        #expect(harness.core.on(.drained(other), now: harness.now).contains { if case .pauseIntake(false) = $0 { true } else { false } })
        // A deadline for a client that drained in time does nothing.
        harness.now = harness.now.advanced(by: .seconds(60))
        #expect(harness.core.on(.timerFired(.slowClient(slow)), now: harness.now).isEmpty)
    }

    @Test("a client backlogged past the timeout is dropped, its queue discarded, and intake resumes")
    func slowClientDropped() {
        var harness = CoreHarness()
        let slow = harness.connect(1, name: "slow")
        let other = harness.connect(2, name: "other")
        harness.feed(.frame(slow, .join(group("g"))))
        harness.feed(.frame(other, .join(group("g"))))
        _ = harness.take(other)
        let paused = harness.core.on(.backlogged(slow), now: harness.now)
        #expect(paused.contains { if case .armTimer(.slowClient(slow), after: .seconds(5)) = $0 { true } else { false } })
        harness.now = harness.now.advanced(by: .seconds(4))
        #expect(harness.core.on(.timerFired(.slowClient(slow)), now: harness.now).isEmpty)
        harness.now = harness.now.advanced(by: .seconds(1))
        let actions = harness.core.on(.timerFired(.slowClient(slow)), now: harness.now)
        #expect(actions.contains { if case .close(slow, _, discardQueued: true) = $0 { true } else { false } })
        #expect(actions.contains { if case .pauseIntake(false) = $0 { true } else { false } })
        // No error frame is queued behind a full queue; the others see the disconnect.
        #expect(!actions.contains { if case .send(_, to: slow) = $0 { true } else { false } })
        #expect(actions.contains { if case .deliver(.view(let view), let to) = $0 { view.cause == .disconnect && to == [other] } else { false } })
    }

    @Test("a backlogged client that disconnects resumes intake")
    func backloggedDisconnect() {
        var harness = CoreHarness()
        let slow = harness.connect(1, name: "slow")
        _ = harness.core.on(.backlogged(slow), now: harness.now)
        #expect(harness.core.on(.sessionClosed(slow), now: harness.now).contains { if case .pauseIntake(false) = $0 { true } else { false } })
    }

    @Test("the buffer-appending form of `on` does what the returning form does")
    func appendingForm() {
        var random = SeededGenerator(seed: 5)
        var left = CoreHarness()
        var right = CoreHarness()
        var buffer: [DaemonCore.Action] = [.pauseIntake(true)]
        for number in 1...4 as ClosedRange<UInt64> {
            left.connect(number, name: "c\(number)")
            right.connect(number, name: "c\(number)")
        }
        for _ in 0..<500 {
            let session = SessionID(UInt64.random(in: 1...5, using: &random))
            let frame: ClientFrame
            switch Int.random(in: 0..<4, using: &random) {
            case 0: frame = .join(group("g\(Int.random(in: 0..<3, using: &random))"))
            case 1: frame = .leave(group("g\(Int.random(in: 0..<3, using: &random))"))
            default: frame = .multicast(OutgoingMessage(
                service: ServiceType(.agreed, selfDiscard: Bool.random(using: &random)),
                groups: [group("g\(Int.random(in: 0..<3, using: &random))")], payload: [UInt8.random(in: 0...255, using: &random)]))
            }
            let returned = left.core.on(.frame(session, frame), now: left.now)
            let before = buffer.count
            right.core.on(.frame(session, frame), now: right.now, into: &buffer)
            #expect("\(returned)" == "\(buffer[before...])")
        }
        #expect("\(buffer.first!)" == "\(DaemonCore.Action.pauseIntake(true))", "appends, never replaces")
    }

    @Test("invalid settings are refused")
    func invalidSettings() {
        #expect(throws: WireError.self) { try DaemonCore(settings: DaemonCore.Settings(daemonName: "bad name")) }
        var settings = DaemonCore.Settings(daemonName: "d1")
        settings.limits.groupNameBytesMax = 300
        #expect(throws: WireError.self) { try DaemonCore(settings: settings) }
    }
}
