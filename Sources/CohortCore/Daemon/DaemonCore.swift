/// The pure core of one daemon: client sessions, the handshake, light-weight groups and the
/// ordering of client operations.
///
/// Driven by ``Event``s and answering with ``Action``s; the SwiftNIO shell only moves bytes and
/// timers. Client operations are ordered by ``GroupService`` on the Totem ring of the daemons
/// (`docs/membership.md`): joins, leaves and messages are ring items, applied in one order by
/// every daemon to the same ``GroupTable``. A daemon alone is a ring of one: its token loops
/// back to itself, and an operation submitted while the idle token is held is ordered and
/// delivered within the same event.
public struct DaemonCore: Sendable {
    /// Configuration of the core; validated by ``init(settings:security:authentication:accessControl:)``.
    public struct Settings: Sendable {
        /// This daemon's name (part of every local client's private group).
        public var daemonName: String
        /// Software version reported by status requests.
        public var version: String = "0"
        /// Distinguishes this run of the daemon from earlier ones (start time, from the shell).
        public var incarnation: UInt64 = 0
        /// Bounds on client input.
        public var limits = Limits()
        /// How repeated authentication failures from one source are slowed down.
        public var throttle = AuthenticationThrottle.Settings()
        /// Methods every client must also pass, whichever it picked: offered methods that need
        /// no exchange (e.g. `certificate`, `peer-credentials`), run on the same connection;
        /// each must accept the same principal as the picked method.
        public var requiredAuthMethods: [String] = []
        /// Most clients served at once.
        public var clientsMax: Int = 10_000
        /// Time a client has to complete the handshake.
        public var handshakeTimeout: Duration = .seconds(10)
        /// How long a client may stay backlogged (its queue above the limit) before it is
        /// disconnected. While any client is backlogged, the daemon takes no client input.
        public var slowClientTimeout: Duration = .seconds(5)
        /// Timing and bounds of the membership and ordering protocol; its `daemon` is replaced
        /// by this daemon's name and incarnation.
        public var ring: TotemRing.Settings
        /// Whether clients may send fault-injection commands (``ClientFrame/dropPeers(_:)``).
        public var faultInjection = false

        /// Settings with defaults for everything but the daemon's name.
        public init(daemonName: String) {
            self.daemonName = daemonName
            ring = TotemRing.Settings(daemon: DaemonID(name: daemonName, incarnation: 0))
        }
    }

    /// Inputs of the core.
    public enum Event: Sendable {
        /// A client connection was accepted from `origin`.
        case sessionOpened(SessionID, ClientOrigin)
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
        /// Start the membership protocol (once, when the peer links are ready).
        case start
        /// A message from a peer daemon (or one this daemon sent itself, looped back).
        case peer(PeerMessage)
        /// The authentication methods were reloaded (e.g. a users file on SIGHUP): new
        /// handshakes use these; exchanges under way finish with the method they began with.
        case authenticationMethodsChanged([any AuthenticationMethod])
        /// The access-control policy was reloaded: every later operation is decided by it.
        case accessControlChanged(any AccessControl)
    }

    /// Timers the core asks the shell to arm.
    public enum Timer: Hashable, Sendable {
        /// Deadline for a session's handshake.
        case handshake(SessionID)
        /// Deadline for a backlogged client to drain its queue.
        case slowClient(SessionID)
        /// A timer of the membership protocol.
        case ring(TotemRing.Timer)
        /// A timer of the security architecture (its token).
        case security(UInt64)
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
        /// the slowest reader, or from the ring, to every sender.
        case pauseIntake(Bool)
        /// Send a protocol message to every peer daemon that can hear this one (not to itself).
        case broadcastToPeers(PeerMessage)
        /// Send a protocol message to one daemon; when it is this daemon, loop it back as
        /// ``Event/peer(_:)`` after the current event.
        case sendToPeer(PeerMessage, to: DaemonID)
        /// A daemon configuration was installed (regular or transitional): for the log and
        /// the metrics.
        case configurationInstalled(RingConfiguration)
        /// Drop every protocol message to and from these peer daemons from now on (fault
        /// injection; empty heals).
        case dropPeers(Set<String>)
        /// The security architecture reports (for the log and the shared metrics).
        indirect case security(DaemonSecurityReport)
        /// A client authenticated as `principal` with `method` (for the audit log and metrics).
        /// (Rare actions with large payloads are `indirect`, so that every action of the message
        /// path stays small to copy.)
        indirect case authenticated(SessionID, principal: Principal, method: String, origin: ClientOrigin)
        /// A client failed to authenticate (for the audit log and metrics); the session is
        /// rejected by the actions that follow.
        indirect case authenticationFailed(SessionID, method: String, refusal: AuthenticationRefusal, origin: ClientOrigin)
        /// Access control denied a client's operation (for the audit log and metrics); the
        /// client is told by the non-fatal error that follows, and nothing else changes.
        indirect case accessDenied(SessionID, AccessDenial)
    }

    /// The handshake states are `indirect` (boxed): their payloads are large, and the message
    /// path copies a session's state out of the table for every message.
    private enum SessionState: Sendable {
        indirect case awaitingConnect(openedAt: Instant, origin: ClientOrigin)
        /// The client picked a method that challenged it; its response is awaited.
        indirect case authenticating(Authenticating, exchange: any AuthenticationExchange)
        /// Authenticated, under a private name whose last session's disconnect the ring has not
        /// ordered yet: accepted once it is (else the old session's views would reach it).
        indirect case awaitingDeparture(Admitted)
        case established(member: MemberID, wantsMembership: Bool, principal: Principal)
        case closing
    }

    /// A handshake that passed authentication, and what its accept says.
    private struct Admitted: Sendable {
        var state: Authenticating
        var principal: Principal
        var finalData: [UInt8]
    }

    /// A handshake whose connect frame passed every check but authentication.
    private struct Authenticating: Sendable {
        var openedAt: Instant
        var origin: ClientOrigin
        var request: ConnectRequest
        var member: MemberID
    }

    /// The settings the core runs with.
    public let settings: Settings
    /// The security architecture's daemon side, between the group service and the clients.
    public private(set) var security: SecureDelivery
    /// The authentication methods offered, in the order the daemon prefers them.
    private var authenticationMethods: [any AuthenticationMethod]
    private var throttle: AuthenticationThrottle
    /// Decides joins, leaves and sends (``AllowEverything`` without a policy).
    private var accessControl: any AccessControl {
        didSet { enforcesAccess = accessControl.enforces }
    }
    /// `accessControl.enforces`, kept in a plain field: the message path reads it per message.
    private var enforcesAccess: Bool
    private var sessions: [SessionID: SessionState] = [:]
    private var sessionByMember: [MemberID: SessionID] = [:] {
        didSet { lastTargets = nil }
    }
    /// Members whose session ended and whose disconnect the ring has not ordered yet: a new
    /// session under such a name waits for it (in ``parked``).
    private var departing: Set<MemberID> = []
    /// Sessions in ``SessionState/awaitingDeparture(_:)``, by member.
    private var parked: [MemberID: SessionID] = [:]
    /// The sessions the last message went to, and the members they were found for: a stream of
    /// messages to one group maps the same members (the same array) to the same sessions.
    private var lastTargets: (members: [MemberID], sessions: [SessionID])?
    /// The groups, ordered on the ring.
    public private(set) var groups: GroupService
    private var isShuttingDown = false
    /// Backlogged clients and since when; intake is paused while one is.
    private var backlogged: [SessionID: Instant] = [:]
    /// The ring has too many operations waiting for the token; intake is paused meanwhile.
    private var ringBacklogged = false
    /// Whether intake is paused (the last ``Action/pauseIntake(_:)`` said so).
    private var intakePaused = false
    /// Peers dropped by fault injection.
    private var droppedPeers: Set<String> = []
    /// The group service's actions for one event, reused.
    private var groupActions: [GroupService.Action] = []

    /// A core with no sessions, running the architecture `security` (`plain` by default),
    /// offering `authentication` to clients (method `none` alone by default) and deciding their
    /// operations with `accessControl` (everything allowed by default); throws if `settings` are
    /// inconsistent.
    public init(
        settings: Settings, security: any DaemonSecurityEngine = PlainDaemonSecurity(),
        authentication: [any AuthenticationMethod] = [NoAuthentication()],
        accessControl: any AccessControl = AllowEverything()
    ) throws(WireError) {
        try settings.limits.validate()
        try Self.validate(authentication)
        for name in settings.requiredAuthMethods where !authentication.contains(where: { $0.name == name }) {
            throw .invalidValue("required authentication method \(name) is not offered")
        }
        guard MemberID.isValidPart(settings.daemonName, bytesMax: settings.limits.daemonNameBytesMax) else {
            throw .invalidDaemonName(settings.daemonName)
        }
        guard settings.clientsMax > 0 else { throw .invalidValue("clientsMax must be positive") }
        var ring = settings.ring
        ring.daemon = DaemonID(name: settings.daemonName, incarnation: settings.incarnation)
        self.settings = settings
        self.authenticationMethods = authentication
        self.throttle = AuthenticationThrottle(settings: settings.throttle)
        self.accessControl = accessControl
        self.enforcesAccess = accessControl.enforces
        let groups = try GroupService(ring: ring, limits: settings.limits)
        self.groups = groups
        self.security = SecureDelivery(engine: security, epoch: groups.table.configuration)
    }

    /// The registered name of the architecture this daemon runs.
    public var architectureName: String { security.engine.architectureName }

    /// This daemon in the membership protocol: its name and incarnation.
    public var daemon: DaemonID { groups.ring.settings.daemon }

    /// The light-weight groups.
    public var table: GroupTable { groups.table }

    /// Number of sessions that completed the handshake.
    public var establishedSessionCount: Int { sessionByMember.count }

    /// The member a session is, if it completed the handshake.
    public func member(of session: SessionID) -> MemberID? {
        if case .established(let member, _, _) = sessions[session] { return member }
        return nil
    }

    /// The principal a session authenticated as, if it completed the handshake.
    public func principal(of session: SessionID) -> Principal? {
        if case .established(_, _, let principal) = sessions[session] { return principal }
        return nil
    }

    /// The names of the authentication methods offered, in order of preference.
    public var offeredAuthenticationMethods: [String] { authenticationMethods.map(\.name) }

    private static func validate(_ methods: [any AuthenticationMethod]) throws(WireError) {
        guard !methods.isEmpty else { throw .invalidValue("at least one authentication method must be offered") }
        guard Set(methods.map(\.name)).count == methods.count else {
            throw .invalidValue("authentication methods offered twice: \(methods.map(\.name).joined(separator: ", "))")
        }
    }

    // MARK: - Events

    /// Handles one event at time `now`, appending what the shell must do to `actions`. Drivers
    /// that reuse one buffer use this form: a client's multicast and a peer's message — the
    /// events of the message path — then allocate no action array of their own.
    public mutating func on(_ event: Event, now: Instant, into actions: inout [Action]) {
        switch event {
        case .frame(let session, .multicast(let message)):
            if case .established(let member, _, _)? = sessions[session] {
                submit(message, from: member, session: session, now: now, into: &actions)
            } else {
                actions += on(event, now: now)
            }
        case .peer(let message):
            drive(.peer(message), now: now, into: &actions)
        case .timerFired(.ring(let timer)):
            drive(.timerFired(timer), now: now, into: &actions)
        default:
            actions += on(event, now: now)
        }
    }

    /// Handles one event at time `now` and returns what the shell must do.
    public mutating func on(_ event: Event, now: Instant) -> [Action] {
        switch event {
        case .sessionOpened(let session, let origin):
            return onSessionOpened(session, origin: origin, now: now)
        case .frame(let session, let frame):
            return onFrame(frame, from: session, now: now)
        case .malformedFrame(let session, let error):
            return fail(session, error.errorCode, error.description, now: now)
        case .backlogged(let session):
            return onBacklogged(session, now: now)
        case .drained(let session):
            return endBacklog(of: session)
        case .sessionClosed(let session):
            return onSessionClosed(session, now: now)
        case .timerFired(.handshake(let session)):
            return onHandshakeDeadline(session, now: now)
        case .timerFired(.slowClient(let session)):
            return onSlowClientDeadline(session, now: now)
        case .timerFired(.ring(let timer)):
            return drive(.timerFired(timer), now: now)
        case .timerFired(.security(let token)):
            var released: [GroupService.Action] = []
            var effects = SecureDelivery.Effects()
            security.timerFired(token, now: now, into: &released, effects: &effects)
            var actions: [Action] = []
            dispatch(&released, effects: effects, now: now, into: &actions)
            return actions
        case .shutdown:
            return onShutdown(now: now)
        case .start:
            return drive(.start, now: now)
        case .peer(let message):
            return drive(.peer(message), now: now)
        case .authenticationMethodsChanged(let methods):
            // A reload that offers nothing (or a name twice) is refused by the shell, which
            // validates with the same rule; here it keeps the methods it has.
            if (try? Self.validate(methods)) != nil { authenticationMethods = methods }
            return []
        case .accessControlChanged(let control):
            accessControl = control
            return []
        }
    }

    // MARK: - Session lifecycle

    private mutating func onSessionOpened(_ session: SessionID, origin: ClientOrigin, now: Instant) -> [Action] {
        sessions[session] = .awaitingConnect(openedAt: now, origin: origin)
        if isShuttingDown { return reject(session, .shuttingDown, "daemon is shutting down") }
        return [.armTimer(.handshake(session), after: settings.handshakeTimeout)]
    }

    private mutating func onHandshakeDeadline(_ session: SessionID, now: Instant) -> [Action] {
        switch sessions[session] {
        case .awaitingConnect(let openedAt, _) where now >= openedAt.advanced(by: settings.handshakeTimeout):
            return reject(session, .handshakeTimeout, "no connect frame within \(settings.handshakeTimeout)")
        case .authenticating(let state, _) where now >= state.openedAt.advanced(by: settings.handshakeTimeout):
            return reject(session, .handshakeTimeout, "authentication not completed within \(settings.handshakeTimeout)")
        case .awaitingDeparture(let admitted) where now >= admitted.state.openedAt.advanced(by: settings.handshakeTimeout):
            return reject(session, .handshakeTimeout,
                          "the last session of private name \(admitted.state.member.name) did not depart within \(settings.handshakeTimeout)")
        default:
            return []
        }
    }

    private mutating func onSessionClosed(_ session: SessionID, now: Instant) -> [Action] {
        let resume = endBacklog(of: session)
        guard let state = sessions.removeValue(forKey: session) else { return resume }
        if case .awaitingDeparture(let admitted) = state { parked[admitted.state.member] = nil }
        guard case .established(let member, _, _) = state else { return resume }
        sessionByMember[member] = nil
        departing.insert(member)
        return drive(.disconnect(member), now: now) + resume
    }

    // MARK: - Flow control

    /// A client reads more slowly than the group sends: stop taking input from every client
    /// until it catches up, and give it `slowClientTimeout` to do so.
    private mutating func onBacklogged(_ session: SessionID, now: Instant) -> [Action] {
        guard sessions[session] != nil, backlogged[session] == nil else { return [] }
        backlogged[session] = now
        var actions: [Action] = [.armTimer(.slowClient(session), after: settings.slowClientTimeout)]
        updateIntake(into: &actions)
        return actions
    }

    private mutating func endBacklog(of session: SessionID) -> [Action] {
        guard backlogged.removeValue(forKey: session) != nil else { return [] }
        var actions: [Action] = []
        updateIntake(into: &actions)
        return actions
    }

    /// Pauses intake while a client is backlogged or the ring has too much waiting; resumes it
    /// when neither holds.
    private mutating func updateIntake(into actions: inout [Action]) {
        let paused = ringBacklogged || !backlogged.isEmpty
        guard paused != intakePaused else { return }
        intakePaused = paused
        actions.append(.pauseIntake(paused))
    }

    private mutating func onSlowClientDeadline(_ session: SessionID, now: Instant) -> [Action] {
        guard let since = backlogged[session], now >= since.advanced(by: settings.slowClientTimeout) else { return [] }
        let resume = endBacklog(of: session)
        return drop(session, reason: "client queue overflow: backlogged for \(settings.slowClientTimeout)", discardQueued: true, now: now) + resume
    }

    private mutating func onShutdown(now: Instant) -> [Action] {
        isShuttingDown = true
        var actions: [Action] = []
        for session in sessions.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            switch sessions[session] {
            case .awaitingConnect, .authenticating, .awaitingDeparture:
                actions += reject(session, .shuttingDown, "daemon is shutting down")
            case .established:
                actions += fail(session, .shuttingDown, "daemon is shutting down", now: now)
            case .closing, nil:
                break
            }
        }
        return actions
    }

    // MARK: - Frames

    private mutating func onFrame(_ frame: ClientFrame, from session: SessionID, now: Instant) -> [Action] {
        switch sessions[session] {
        case nil, .closing:
            return []
        case .awaitingConnect(let openedAt, let origin):
            guard case .connect(let request) = frame else {
                return reject(session, .frameBeforeHandshake, "the first frame must be connect")
            }
            return onConnect(request, from: session, origin: origin, openedAt: openedAt, now: now)
        case .authenticating(let state, let exchange):
            guard case .authResponse(let response) = frame else {
                return refuse(session, method: state.request.authMethod, origin: state.origin, now: now, AuthenticationRefusal(
                    .authMalformed, reason: "expected an authResponse frame during authentication", label: "out_of_turn"))
            }
            return proceed(session, state, exchange.next(response), now: now)
        case .awaitingDeparture:
            return reject(session, .frameBeforeHandshake, "no frame may come before the accept")
        case .established(let member, _, let principal):
            switch frame {
            case .connect, .authResponse:
                return fail(session, .unexpectedHandshake, "session is already established", now: now)
            case .join(let group):
                return onJoin(group, by: member, principal: principal, session: session, now: now)
            case .leave(let group):
                guard !group.isPrivate else {
                    return fail(session, .invalidGroupName, "cannot leave private group \(group)", now: now)
                }
                if let denial = denial(of: .leave, on: group, by: member, principal: principal) {
                    return deny(denial, session: session)
                }
                return drive(.leave(member, group), now: now)
            case .multicast(let message):
                var actions: [Action] = []
                submit(message, from: member, session: session, now: now, into: &actions)
                return actions
            case .statusRequest:
                return [.send(.status(status()), to: session)]
            case .disconnect:
                return drop(session, reason: "client disconnected", now: now)
            case .dropPeers(let names):
                guard settings.faultInjection else {
                    return [.send(.error(.notPermitted, fatal: false,
                                         reason: "fault injection is disabled (start the daemon with --fault-injection)"), to: session)]
                }
                droppedPeers = Set(names).subtracting([settings.daemonName])
                return [.dropPeers(droppedPeers), .send(.status(status()), to: session)]
            }
        }
    }

    private mutating func onConnect(
        _ request: ConnectRequest, from session: SessionID, origin: ClientOrigin, openedAt: Instant, now: Instant
    ) -> [Action] {
        // 1. Protocol version.
        guard request.version == WireProtocol.version else {
            return reject(session, .unsupportedVersion,
                          "client speaks version \(request.version), daemon speaks \(WireProtocol.version)")
        }
        // 2. The link: an architecture that hands clients keys takes only confidential ones.
        if let reason = security.refusal(of: origin) { return reject(session, .insecureLink, reason) }
        // 3. Identity: a valid private name, unique on this daemon.
        let member: MemberID
        do {
            member = try MemberID(name: request.privateName, daemon: settings.daemonName, limits: settings.limits)
        } catch {
            return reject(session, .invalidPrivateName, error.description)
        }
        if let refusal = admissionRefusal(of: member) { return reject(session, refusal.code, refusal.reason) }
        // 4. Authentication: an offered method, unless the source failed too often lately.
        guard let index = authenticationMethods.firstIndex(where: { $0.name == request.authMethod }) else {
            return reject(session, .authMethodNotOffered,
                          "method \(request.authMethod) not offered; offered: \(offeredAuthenticationMethods.joined(separator: ", "))")
        }
        if let wait = throttle.wait(for: origin.source, now: now) {
            return reject(session, .authThrottled,
                          "too many failed authentications from \(origin.source); retry in \(Self.wholeSeconds(wait)) s")
        }
        let step = authenticationMethods[index].start(request.authData, origin: origin)
        return proceed(session, Authenticating(openedAt: openedAt, origin: origin, request: request, member: member), step, now: now)
    }

    /// Why `member` cannot be admitted now (its name in use, or the daemon full), if it cannot.
    private func admissionRefusal(of member: MemberID) -> (code: ErrorCode, reason: String)? {
        if sessionByMember[member] != nil || parked[member] != nil {
            return (.duplicatePrivateName, "private name \(member.name) is in use")
        }
        if sessionByMember.count >= settings.clientsMax {
            return (.tooManyClients, "daemon serves its maximum of \(settings.clientsMax) clients")
        }
        return nil
    }

    /// Acts on an authentication method's answer: challenge the client again, establish the
    /// session, or refuse it.
    private mutating func proceed(_ session: SessionID, _ state: Authenticating, _ step: AuthenticationStep, now: Instant) -> [Action] {
        let method = state.request.authMethod
        switch step {
        case .challenge(let data, let exchange):
            guard data.count <= settings.limits.authDataBytesMax else {
                return reject(session, .authFailed, "the authentication method produced an oversized challenge")
            }
            sessions[session] = .authenticating(state, exchange: exchange)
            return [.send(.authChallenge(method: method, data: data), to: session)]
        case .refused(let refusal):
            return refuse(session, method: method, origin: state.origin, now: now, refusal)
        case .accepted(let principal, let finalData):
            // Methods required on top of the picked one must vouch for the same principal.
            for name in settings.requiredAuthMethods where name != method {
                guard var required = authenticationMethods.first(where: { $0.name == name }) else { continue }
                guard case .accepted(let vouched, _) = required.start([], origin: state.origin), vouched == principal else {
                    return refuse(session, method: method, origin: state.origin, now: now, AuthenticationRefusal(
                        .authFailed, reason: "method \(name) is also required, for the same principal", label: "required_method",
                        detail: "\(method) accepted \(principal), \(name) did not vouch for it"))
                }
            }
            // The name may have been taken, or the daemon filled up, during a long exchange.
            if let refusal = admissionRefusal(of: state.member) { return reject(session, refusal.code, refusal.reason) }
            let admitted = Admitted(state: state, principal: principal, finalData: finalData)
            guard !departing.contains(state.member) else {
                sessions[session] = .awaitingDeparture(admitted)
                parked[state.member] = session
                return []
            }
            return establish(session, admitted)
        }
    }

    /// Accepts an authenticated session.
    private mutating func establish(_ session: SessionID, _ admitted: Admitted) -> [Action] {
        let state = admitted.state
        sessions[session] = .established(
            member: state.member, wantsMembership: state.request.wantsMembership, principal: admitted.principal)
        sessionByMember[state.member] = session
        return [
            .authenticated(session, principal: admitted.principal, method: state.request.authMethod, origin: state.origin),
            .send(.accept(ConnectAccept(
                version: WireProtocol.version, member: state.member, architecture: architectureName,
                principal: admitted.principal, authData: admitted.finalData)), to: session),
        ]
    }

    /// `member`'s last disconnect is ordered: a session waiting for its name is accepted now.
    private mutating func onDeparted(_ member: MemberID, into actions: inout [Action]) {
        departing.remove(member)
        guard let session = parked.removeValue(forKey: member), case .awaitingDeparture(let admitted) = sessions[session] else { return }
        if let refusal = admissionRefusal(of: member) {
            actions += reject(session, refusal.code, refusal.reason)
        } else {
            actions += establish(session, admitted)
        }
    }

    /// A failed authentication: counted against its source, reported, rejected.
    private mutating func refuse(
        _ session: SessionID, method: String, origin: ClientOrigin, now: Instant, _ refusal: AuthenticationRefusal
    ) -> [Action] {
        throttle.recordFailure(of: origin.source, now: now)
        return [.authenticationFailed(session, method: method, refusal: refusal, origin: origin)]
            + reject(session, refusal.code, refusal.reason)
    }

    /// `duration` in seconds, rounded up.
    private static func wholeSeconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return max(0, seconds + (attoseconds > 0 ? 1 : 0))
    }

    private mutating func onJoin(
        _ group: GroupName, by member: MemberID, principal: Principal, session: SessionID, now: Instant
    ) -> [Action] {
        guard !group.isPrivate else { return fail(session, .invalidGroupName, "cannot join private group \(group)", now: now) }
        if let denial = denial(of: .join, on: group, by: member, principal: principal) { return deny(denial, session: session) }
        if table.members(of: group).contains(member) { return [] }
        guard table.groupCount(of: member) < settings.limits.groupsPerClientMax else {
            return fail(session, .tooManyGroupsJoined,
                        "already in \(settings.limits.groupsPerClientMax) groups, the maximum", now: now)
        }
        return drive(.join(member, group), now: now)
    }

    // MARK: - Ordering and delivery

    /// A client's message: access control and the architecture admit it, and it goes to the
    /// ring to be ordered. A message to several groups is denied whole if one of them is denied.
    private mutating func submit(
        _ message: OutgoingMessage, from member: MemberID, session: SessionID, now: Instant, into actions: inout [Action]
    ) {
        if enforcesAccess, let denial = sendDenial(of: message, by: member, session: session) {
            actions += deny(denial, session: session)
            return
        }
        var message = message
        if !security.passesThrough {
            // (Kept off `plain`'s message path, which needs no buffers for it.)
            var released: [GroupService.Action] = []
            var effects = SecureDelivery.Effects()
            do {
                try security.admit(&message, from: member, now: now, into: &released, effects: &effects)
            } catch {
                actions.append(.send(.error(.architectureRefused, fatal: false, reason: error.reason), to: session))
                return
            }
            if !released.isEmpty || !effects.isEmpty { dispatch(&released, effects: effects, now: now, into: &actions) }
        }
        drive(.multicast(DeliveredMessage(
            service: message.service, messageType: message.messageType, sender: member,
            groups: message.groups, payload: message.payload)), now: now, into: &actions)
    }

    // MARK: - Access control

    /// Why access control refuses `operation` on `group`, if it does: the policy's decision,
    /// then, for a send, whether the group is closed to non-members.
    private func denial(of operation: AccessOperation, on group: GroupName, by member: MemberID, principal: Principal) -> AccessDenial? {
        guard enforcesAccess else { return nil }
        var decision = accessControl.decide(operation, group: group, principal: principal)
        if decision.allowed, operation == .send, accessControl.isClosed(group), !table.members(of: group).contains(member) {
            decision = AccessDecision(allowed: false, reason: "closed group: only members may send", label: "closed_group")
        }
        guard !decision.allowed else { return nil }
        return AccessDenial(operation: operation, group: group, principal: principal, member: member, decision: decision)
    }

    /// Why access control refuses a message, if it does: the first of its groups denied.
    /// Out of line: the message path without a policy never enters it.
    @inline(never)
    private func sendDenial(of message: OutgoingMessage, by member: MemberID, session: SessionID) -> AccessDenial? {
        guard let principal = principal(of: session) else { return nil }
        for group in message.groups {
            if let denial = denial(of: group.isPrivate ? .privateSend : .send, on: group, by: member, principal: principal) {
                return denial
            }
        }
        return nil
    }

    /// Answers a denial to its client alone (a non-fatal error) and reports it.
    private func deny(_ denial: AccessDenial, session: SessionID) -> [Action] {
        [.accessDenied(session, denial), .send(.error(.accessDenied, fatal: false, reason: denial.description), to: session)]
    }

    private mutating func drive(_ event: GroupService.Event, now: Instant) -> [Action] {
        var actions: [Action] = []
        drive(event, now: now, into: &actions)
        return actions
    }

    /// Runs the group service on `event` and turns what it answers into the shell's actions,
    /// through the security stage (which may hold deliveries while keys are made).
    private mutating func drive(_ event: GroupService.Event, now: Instant, into actions: inout [Action]) {
        var groupActions = self.groupActions
        self.groupActions = []
        groups.on(event, now: now, into: &groupActions)
        defer {
            groupActions.removeAll(keepingCapacity: true)
            self.groupActions = groupActions
        }
        var effects = SecureDelivery.Effects()
        security.filter(&groupActions, now: now, effects: &effects)
        dispatch(&groupActions, effects: effects, now: now, into: &actions)
    }

    /// Turns the group service's actions (past the security stage) into the shell's: protocol
    /// messages and timers pass through, views and messages go to local sessions. Then the
    /// security stage's effects: its reports and timers, and its messages to the daemons, which
    /// go to the ring after everything of this event.
    private mutating func dispatch(
        _ groupActions: inout [GroupService.Action], effects: SecureDelivery.Effects, now: Instant, into actions: inout [Action]
    ) {
        defer {
            if !effects.isEmpty {
                for report in effects.reports { actions.append(.security(report)) }
                for timer in effects.timers { actions.append(.armTimer(.security(timer.token), after: timer.after)) }
                for bytes in effects.broadcasts { drive(.security(bytes), now: now, into: &actions) }
                if effects.renewViews { drive(.renewViews, now: now, into: &actions) }
            }
        }
        for index in groupActions.indices {
            // Taken out of the buffer (a swap moves it): iterating would copy every message.
            var action = GroupService.Action.pauseIntake(false)
            swap(&action, &groupActions[index])
            switch action {
            case .broadcast(let message):
                actions.append(.broadcastToPeers(message))
            case .send(let message, let to):
                actions.append(.sendToPeer(message, to: to))
            case .armTimer(let timer, let after):
                actions.append(.armTimer(.ring(timer), after: after))
            case .pauseIntake(let paused):
                ringBacklogged = paused
                updateIntake(into: &actions)
            case .view(let view, let members):
                let targets = members.compactMap { member -> SessionID? in
                    guard let session = sessionByMember[member],
                          case .established(_, let wantsMembership, _) = sessions[session], wantsMembership
                    else { return nil }
                    return session
                }
                if !targets.isEmpty { actions.append(.deliver(.view(view), to: targets)) }
            case .message(var message, let members, _):
                let targets: [SessionID]
                if let last = lastTargets, last.members == members {
                    targets = last.sessions
                } else {
                    targets = members.compactMap { sessionByMember[$0] }
                    lastTargets = (members, targets)
                }
                guard !targets.isEmpty else { continue }
                security.prepareDelivery(&message)
                actions.append(.deliver(.message(message), to: targets))
            case .configuration(let configuration):
                actions.append(.configurationInstalled(configuration))
            case .refused(let member):
                if let session = sessionByMember[member] {
                    actions.append(.send(.error(.overloaded, fatal: false,
                                                reason: "too many operations wait for the daemons' ring; this one was dropped"), to: session))
                }
            case .departed(let member):
                onDeparted(member, into: &actions)
            case .security:
                // Consumed by the security stage.
                break
            case .droppedItem, .ordered:
                // A malformed item is counted by the group service (`droppedItems`); the order
                // report is for checkers.
                break
            }
        }
    }

    private func status() -> DaemonStatus {
        let ring = groups.ring
        return DaemonStatus(
            daemonName: settings.daemonName, version: settings.version, architecture: architectureName,
            configuration: table.configuration,
            configurationMembers: (ring.configuration?.members ?? [daemon]).map(\.description),
            membershipState: ring.phaseName, droppedPeers: droppedPeers.sorted(),
            clients: sessionByMember.keys.sorted(),
            groups: table.groups.keys.sorted().map { name in
                let group = table.groups[name]!
                return .init(group: name, viewID: group.viewID, members: group.members)
            },
            daemonKeyEpoch: security.engine.keyEpochDescription)
    }

    // MARK: - Ending sessions

    /// Rejects a handshake: a typed reject, then close.
    private mutating func reject(_ session: SessionID, _ code: ErrorCode, _ reason: String) -> [Action] {
        if case .awaitingDeparture(let admitted) = sessions[session] { parked[admitted.state.member] = nil }
        sessions[session] = .closing
        return [.send(.reject(code, reason: reason), to: session),
                .close(session, reason: "handshake rejected: \(code): \(reason)")]
    }

    /// Ends an established session on an error: a typed error frame, then close.
    private mutating func fail(_ session: SessionID, _ code: ErrorCode, _ reason: String, now: Instant) -> [Action] {
        guard let state = sessions[session] else { return [] }
        switch state {
        case .awaitingConnect, .authenticating, .awaitingDeparture: return reject(session, code, reason)
        case .closing: return []
        case .established: break
        }
        return [.send(.error(code, fatal: true, reason: reason), to: session)] + drop(session, reason: "\(code): \(reason)", now: now)
    }

    /// Closes a session and removes its member from every group (an ordered disconnect: the
    /// other members see it leave once the ring orders it).
    private mutating func drop(_ session: SessionID, reason: String, discardQueued: Bool = false, now: Instant) -> [Action] {
        guard let state = sessions[session] else { return [] }
        sessions[session] = .closing
        var actions: [Action] = []
        if case .established(let member, _, _) = state {
            sessionByMember[member] = nil
            departing.insert(member)
            actions += drive(.disconnect(member), now: now)
        }
        actions.append(.close(session, reason: reason, discardQueued: discardQueued))
        return actions
    }
}

