/// The pure core of one daemon: client sessions, the handshake, light-weight groups and the
/// ordering of client operations.
///
/// Driven by ``Event``s and answering with ``Action``s; the SwiftNIO shell only moves bytes and
/// timers. With one daemon, ordering is a local sequencer: every accepted operation gets the
/// next position of the total order at once, which satisfies every service level from
/// UNRELIABLE to SAFE. Across daemons, ``GroupService`` orders the same operations on the Totem
/// ring and applies them to the same ``GroupTable`` (`docs/membership.md`); the multi-daemon
/// runtime puts it in place of this sequencer.
public struct DaemonCore: Sendable {
    /// Configuration of the core; validated by ``init(settings:hooks:)``.
    public struct Settings: Sendable {
        /// This daemon's name (part of every local client's private group).
        public var daemonName: String
        /// Software version reported by status requests.
        public var version: String = "0"
        /// Distinguishes this run of the daemon from earlier ones (start time, from the shell).
        public var incarnation: UInt64 = 0
        /// Bounds on client input.
        public var limits = Limits()
        /// Authentication methods offered to clients, in order of preference.
        public var authMethods: [String] = ["none"]
        /// Most clients served at once.
        public var clientsMax: Int = 10_000
        /// Time a client has to complete the handshake.
        public var handshakeTimeout: Duration = .seconds(10)
        /// How long a client may stay backlogged (its queue above the limit) before it is
        /// disconnected. While any client is backlogged, the daemon takes no client input.
        public var slowClientTimeout: Duration = .seconds(5)

        /// Settings with defaults for everything but the daemon's name.
        public init(daemonName: String) { self.daemonName = daemonName }
    }

    /// Inputs of the core.
    public enum Event: Sendable {
        /// A client connection was accepted.
        case sessionOpened(SessionID)
        /// A complete frame arrived from a client.
        case frame(SessionID, ClientFrame)
        /// A client sent bytes that do not decode.
        case malformedFrame(SessionID, WireError)
        /// A client's queue at the daemon is above the limit after a flush: it reads more
        /// slowly than the group sends.
        case backlogged(SessionID)
        /// A backlogged client's queue drained below the limit again.
        case drained(SessionID)
        /// The connection is gone.
        case sessionClosed(SessionID)
        /// A timer armed by ``Action/armTimer(_:after:)`` fired.
        case timerFired(Timer)
        /// The daemon is shutting down: tell every client and close every session.
        case shutdown
    }

    /// Timers the core asks the shell to arm.
    public enum Timer: Hashable, Sendable {
        /// Deadline for a session's handshake.
        case handshake(SessionID)
        /// Deadline for a backlogged client to drain its queue.
        case slowClient(SessionID)
    }

    /// Outputs of the core, performed by the shell in order.
    public enum Action: Sendable {
        /// Send one frame to one session.
        case send(DaemonFrame, to: SessionID)
        /// Send one frame to several sessions (the shell encodes it once).
        case deliver(DaemonFrame, to: [SessionID])
        /// Close a session; `reason` is for the log. With `discardQueued`, what is still queued
        /// for the client is dropped and the connection reset (it does not read anyway);
        /// otherwise the frames sent before are written first.
        case close(SessionID, reason: String, discardQueued: Bool = false)
        /// Fire ``Event/timerFired(_:)`` after `after`.
        case armTimer(Timer, after: Duration)
        /// Stop (`true`) or resume (`false`) reading input from clients: backpressure from
        /// the slowest reader to every sender.
        case pauseIntake(Bool)
    }

    private enum SessionState: Sendable {
        case awaitingConnect(openedAt: Instant)
        case established(member: MemberID, wantsMembership: Bool)
        case closing
    }

    /// The settings the core runs with.
    public let settings: Settings
    private var hooks: any DaemonSecurityHooks
    private var sessions: [SessionID: SessionState] = [:]
    private var sessionByMember: [MemberID: SessionID] = [:]
    /// The light-weight groups.
    public private(set) var table: GroupTable
    /// Position of the last operation in the total order.
    public private(set) var sequence: UInt64 = 0
    /// Local sessions per group, in join order; rebuilt when the group's view changes.
    private var localRecipients: [GroupName: [SessionID]] = [:]
    private var isShuttingDown = false
    /// Backlogged clients and since when; intake is paused while this is not empty.
    private var backlogged: [SessionID: Instant] = [:]

    /// A core with no sessions; throws if `settings` are inconsistent.
    public init(settings: Settings, hooks: any DaemonSecurityHooks) throws(WireError) {
        try settings.limits.validate()
        guard MemberID.isValidPart(settings.daemonName, bytesMax: settings.limits.daemonNameBytesMax) else {
            throw .invalidDaemonName(settings.daemonName)
        }
        guard settings.clientsMax > 0 else { throw .invalidValue("clientsMax must be positive") }
        self.settings = settings
        self.hooks = hooks
        self.table = GroupTable(configuration: ConfigurationID(
            epoch: settings.incarnation, representative: settings.daemonName))
    }

    /// Number of sessions that completed the handshake.
    public var establishedSessionCount: Int { sessionByMember.count }

    /// The member a session authenticated as, if it completed the handshake.
    public func member(of session: SessionID) -> MemberID? {
        if case .established(let member, _) = sessions[session] { return member }
        return nil
    }

    // MARK: - Events

    /// Handles one event at time `now`, appending what the shell must do to `actions`. Drivers
    /// that reuse one buffer use this form: a client's multicast — the event of the message
    /// path — then allocates no action array of its own.
    public mutating func on(_ event: Event, now: Instant, into actions: inout [Action]) {
        if case .frame(let session, .multicast(let message)) = event,
           case .established(let member, _)? = sessions[session] {
            submit(message, from: member, session: session, into: &actions)
        } else {
            actions += on(event, now: now)
        }
    }

    /// Handles one event at time `now` and returns what the shell must do.
    public mutating func on(_ event: Event, now: Instant) -> [Action] {
        switch event {
        case .sessionOpened(let session):
            return onSessionOpened(session, now: now)
        case .frame(let session, let frame):
            return onFrame(frame, from: session)
        case .malformedFrame(let session, let error):
            return fail(session, error.errorCode, error.description)
        case .backlogged(let session):
            return onBacklogged(session, now: now)
        case .drained(let session):
            return endBacklog(of: session)
        case .sessionClosed(let session):
            return onSessionClosed(session)
        case .timerFired(.handshake(let session)):
            return onHandshakeDeadline(session, now: now)
        case .timerFired(.slowClient(let session)):
            return onSlowClientDeadline(session, now: now)
        case .shutdown:
            return onShutdown()
        }
    }

    // MARK: - Session lifecycle

    private mutating func onSessionOpened(_ session: SessionID, now: Instant) -> [Action] {
        sessions[session] = .awaitingConnect(openedAt: now)
        if isShuttingDown { return reject(session, .shuttingDown, "daemon is shutting down") }
        return [.armTimer(.handshake(session), after: settings.handshakeTimeout)]
    }

    private mutating func onHandshakeDeadline(_ session: SessionID, now: Instant) -> [Action] {
        guard case .awaitingConnect(let openedAt) = sessions[session],
              now >= openedAt.advanced(by: settings.handshakeTimeout)
        else { return [] }
        return reject(session, .handshakeTimeout, "no connect frame within \(settings.handshakeTimeout)")
    }

    private mutating func onSessionClosed(_ session: SessionID) -> [Action] {
        let resume = endBacklog(of: session)
        guard let state = sessions.removeValue(forKey: session) else { return resume }
        guard case .established(let member, _) = state else { return resume }
        sessionByMember[member] = nil
        return order(.disconnect(member)) + resume
    }

    // MARK: - Flow control

    /// A client reads more slowly than the group sends: stop taking input from every client
    /// until it catches up, and give it `slowClientTimeout` to do so.
    private mutating func onBacklogged(_ session: SessionID, now: Instant) -> [Action] {
        guard sessions[session] != nil, backlogged[session] == nil else { return [] }
        let wasPaused = !backlogged.isEmpty
        backlogged[session] = now
        var actions: [Action] = [.armTimer(.slowClient(session), after: settings.slowClientTimeout)]
        if !wasPaused { actions.append(.pauseIntake(true)) }
        return actions
    }

    private mutating func endBacklog(of session: SessionID) -> [Action] {
        guard backlogged.removeValue(forKey: session) != nil, backlogged.isEmpty else { return [] }
        return [.pauseIntake(false)]
    }

    private mutating func onSlowClientDeadline(_ session: SessionID, now: Instant) -> [Action] {
        guard let since = backlogged[session], now >= since.advanced(by: settings.slowClientTimeout) else { return [] }
        let resume = endBacklog(of: session)
        return drop(session, reason: "client queue overflow: backlogged for \(settings.slowClientTimeout)", discardQueued: true) + resume
    }

    private mutating func onShutdown() -> [Action] {
        isShuttingDown = true
        var actions: [Action] = []
        for session in sessions.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            switch sessions[session] {
            case .awaitingConnect:
                actions += reject(session, .shuttingDown, "daemon is shutting down")
            case .established:
                actions += fail(session, .shuttingDown, "daemon is shutting down")
            case .closing, nil:
                break
            }
        }
        return actions
    }

    // MARK: - Frames

    private mutating func onFrame(_ frame: ClientFrame, from session: SessionID) -> [Action] {
        switch sessions[session] {
        case nil, .closing:
            return []
        case .awaitingConnect:
            guard case .connect(let request) = frame else {
                return reject(session, .frameBeforeHandshake, "the first frame must be connect")
            }
            return onConnect(request, from: session)
        case .established(let member, _):
            switch frame {
            case .connect, .authResponse:
                return fail(session, .unexpectedHandshake, "session is already established")
            case .join(let group):
                return onJoin(group, by: member, session: session)
            case .leave(let group):
                guard !group.isPrivate else {
                    return fail(session, .invalidGroupName, "cannot leave private group \(group)")
                }
                return order(.leave(member, group))
            case .multicast(let message):
                var actions: [Action] = []
                submit(message, from: member, session: session, into: &actions)
                return actions
            case .statusRequest:
                return [.send(.status(status()), to: session)]
            case .disconnect:
                return drop(session, reason: "client disconnected")
            }
        }
    }

    private mutating func onConnect(_ request: ConnectRequest, from session: SessionID) -> [Action] {
        // 1. Protocol version.
        guard request.version == WireProtocol.version else {
            return reject(session, .unsupportedVersion,
                          "client speaks version \(request.version), daemon speaks \(WireProtocol.version)")
        }
        // 2. Identity: a valid private name, unique on this daemon.
        let member: MemberID
        do {
            member = try MemberID(name: request.privateName, daemon: settings.daemonName, limits: settings.limits)
        } catch {
            return reject(session, .invalidPrivateName, error.description)
        }
        guard sessionByMember[member] == nil else {
            return reject(session, .duplicatePrivateName, "private name \(request.privateName) is in use")
        }
        guard sessionByMember.count < settings.clientsMax else {
            return reject(session, .tooManyClients, "daemon serves its maximum of \(settings.clientsMax) clients")
        }
        // 3. Authentication: the method must be offered. `none` completes at once; the
        //    authentication issue adds methods with challenges (`authChallenge`/`authResponse`).
        guard settings.authMethods.contains(request.authMethod) else {
            return reject(session, .authMethodNotOffered,
                          "method \(request.authMethod) not offered; offered: \(settings.authMethods.joined(separator: ", "))")
        }
        guard request.authMethod == "none" else {
            return reject(session, .authMethodNotOffered, "method \(request.authMethod) is not implemented by this daemon")
        }
        sessions[session] = .established(member: member, wantsMembership: request.wantsMembership)
        sessionByMember[member] = session
        return [.send(.accept(ConnectAccept(
            version: WireProtocol.version, member: member, architecture: hooks.architectureName)), to: session)]
    }

    private mutating func onJoin(_ group: GroupName, by member: MemberID, session: SessionID) -> [Action] {
        guard !group.isPrivate else { return fail(session, .invalidGroupName, "cannot join private group \(group)") }
        if table.members(of: group).contains(member) { return [] }
        guard table.groupCount(of: member) < settings.limits.groupsPerClientMax else {
            return fail(session, .tooManyGroupsJoined,
                        "already in \(settings.limits.groupsPerClientMax) groups, the maximum")
        }
        return order(.join(member, group))
    }

    // MARK: - Ordering and delivery

    /// A client's message: the architecture admits it, it gets the next position of the total
    /// order and is delivered to the local members of its groups.
    private mutating func submit(_ message: OutgoingMessage, from member: MemberID, session: SessionID, into actions: inout [Action]) {
        var message = message
        do {
            try hooks.admit(&message, from: member)
        } catch {
            actions.append(.send(.error(.architectureRefused, fatal: false, reason: error.reason), to: session))
            return
        }
        sequence += 1
        deliver(DeliveredMessage(
            service: message.service, messageType: message.messageType, sender: member,
            groups: message.groups, payload: message.payload), into: &actions)
    }

    /// Delivers an ordered message to the local members of its groups.
    private mutating func deliver(_ message: DeliveredMessage, into actions: inout [Action]) {
        let recipients = localRecipients(of: message)
        guard !recipients.isEmpty else { return }
        var message = message
        hooks.prepareDelivery(&message)
        actions.append(.deliver(.message(message), to: recipients))
    }

    /// Gives `operation` the next position of the total order and applies it.
    private mutating func order(_ operation: OrderedOperation) -> [Action] {
        sequence += 1
        return apply(operation, sequence: sequence)
    }

    /// Applies an operation at its position of the total order: views for membership changes,
    /// deliveries for messages, to local sessions only.
    private mutating func apply(_ operation: OrderedOperation, sequence: UInt64) -> [Action] {
        if case .message(let message) = operation {
            var actions: [Action] = []
            deliver(message, into: &actions)
            return actions
        }
        var actions: [Action] = []
        for var change in table.apply(operation, sequence: sequence) {
            rebuildLocalRecipients(of: change.view.group)
            hooks.prepareView(&change.view)
            let targets = change.recipients.compactMap { member -> SessionID? in
                guard let session = sessionByMember[member],
                      case .established(_, let wantsMembership) = self.sessions[session], wantsMembership
                else { return nil }
                return session
            }
            if !targets.isEmpty { actions.append(.deliver(.view(change.view), to: targets)) }
        }
        return actions
    }

    private mutating func rebuildLocalRecipients(of group: GroupName) {
        let sessions = table.members(of: group).compactMap { sessionByMember[$0] }
        localRecipients[group] = sessions.isEmpty ? nil : sessions
    }

    /// Local sessions that receive `message`: each member of the union of its groups once,
    /// less the sender under SELF_DISCARD.
    private func localRecipients(of message: DeliveredMessage) -> [SessionID] {
        let discard = message.service.selfDiscard ? sessionByMember[message.sender] : nil
        if message.groups.count == 1 {
            let group = message.groups[0]
            var recipients: [SessionID]
            if let member = group.privateMember {
                recipients = sessionByMember[member].map { [$0] } ?? []
            } else {
                recipients = localRecipients[group] ?? []
            }
            if let discard { recipients.removeAll { $0 == discard } }
            return recipients
        }
        var seen: Set<SessionID> = []
        var recipients: [SessionID] = []
        for group in message.groups {
            let sessions: [SessionID]
            if let member = group.privateMember {
                sessions = sessionByMember[member].map { [$0] } ?? []
            } else {
                sessions = localRecipients[group] ?? []
            }
            for session in sessions where session != discard && seen.insert(session).inserted {
                recipients.append(session)
            }
        }
        return recipients
    }

    private func status() -> DaemonStatus {
        DaemonStatus(
            daemonName: settings.daemonName, version: settings.version, architecture: hooks.architectureName,
            configuration: table.configuration, configurationMembers: [settings.daemonName],
            clients: sessionByMember.keys.sorted(),
            groups: table.groups.keys.sorted().map { name in
                let group = table.groups[name]!
                return .init(group: name, viewID: group.viewID, members: group.members)
            })
    }

    // MARK: - Ending sessions

    /// Rejects a handshake: a typed reject, then close.
    private mutating func reject(_ session: SessionID, _ code: ErrorCode, _ reason: String) -> [Action] {
        sessions[session] = .closing
        return [.send(.reject(code, reason: reason), to: session),
                .close(session, reason: "handshake rejected: \(code): \(reason)")]
    }

    /// Ends an established session on an error: a typed error frame, then close.
    private mutating func fail(_ session: SessionID, _ code: ErrorCode, _ reason: String) -> [Action] {
        guard let state = sessions[session] else { return [] }
        if case .awaitingConnect = state { return reject(session, code, reason) }
        if case .closing = state { return [] }
        return [.send(.error(code, fatal: true, reason: reason), to: session)] + drop(session, reason: "\(code): \(reason)")
    }

    /// Closes a session and removes its member from every group (views go out at once).
    private mutating func drop(_ session: SessionID, reason: String, discardQueued: Bool = false) -> [Action] {
        guard let state = sessions[session] else { return [] }
        sessions[session] = .closing
        var actions: [Action] = []
        if case .established(let member, _) = state {
            sessionByMember[member] = nil
            actions += order(.disconnect(member))
        }
        actions.append(.close(session, reason: reason, discardQueued: discardQueued))
        return actions
    }
}
