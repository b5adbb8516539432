import CohortCore
import Logging
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Performs the pure ``DaemonCore``'s actions on real channels. Confined to the daemon's one
/// event loop: every client channel, timer and the core live on it, so nothing here locks.
///
/// Backpressure: a client whose queue is above the limit after a flush is reported to the core
/// as backlogged; the core pauses reading from every client until it drains (or drops it after
/// `slowClientTimeout`).
///
/// Writes are batched: each frame is encoded once and appended to a per-client buffer; one task
/// per event-loop tick writes and flushes each client's buffer, so a burst of reads costs one
/// pipeline write and one syscall per client, not one per message and recipient.
final class DaemonRuntime {
    private var core: DaemonCore
    private let eventLoop: any EventLoop
    private let logger: Logger
    private let metrics = DaemonMetrics()
    /// One client connection and the bytes gathered for it during the current tick. A class, so
    /// that one dictionary lookup reaches both and the buffer is appended to in place. The
    /// buffer is kept across ticks and cleared after its flush: once NIO has written it, its
    /// storage is ours alone again and is reused instead of reallocated.
    private final class SessionIO {
        let session: SessionID
        let channel: any Channel
        var outgoing = ByteBuffer()
        init(session: SessionID, channel: any Channel) {
            self.session = session
            self.channel = channel
        }
    }

    private var channels: [SessionID: SessionIO] = [:]
    private var nextSessionNumber: UInt64 = 1
    /// Sessions with gathered bytes this tick, in the order they were first written to.
    private var dirty: [SessionIO] = []
    private var flushScheduled = false
    /// Scratch space for the core's actions, reused for every event.
    private var actionBuffer: [DaemonCore.Action] = []
    /// Whether client input is paused (a client is backlogged).
    private var intakePaused = false
    /// Encoding scratch space, reused for every frame.
    private var scratch = WireWriter(capacity: 128 * 1024)
    /// The links to the other daemons.
    let links: PeerLinks
    /// The ring's timers: the deadline the core asked for last, and the task scheduled for it.
    /// The ring re-arms some timers at every token visit; a later deadline only moves the
    /// wanted time, and the task scheduled for the earlier one reschedules itself when it fires.
    private var ringTimers: [TotemRing.Timer: (wanted: NIODeadline, scheduled: NIODeadline)] = [:]
    /// When the membership change under way began (the daemon left the operational state, or
    /// started), for `cohort_membership_change_duration_seconds`.
    private var membershipChangeStarted: Instant?
    /// Local clients' joins and leaves waiting for their view, for
    /// `cohort_group_view_change_duration_seconds`.
    private var viewRequests: [SessionID: [GroupName: Instant]] = [:]
    /// Samples the queue depths once a second.
    private var queueSampler: Scheduled<Void>?

    init(core: DaemonCore, links: PeerLinks, eventLoop: any EventLoop, logger: Logger) {
        self.core = core
        self.links = links
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// Starts the links and the membership protocol.
    func start() {
        eventLoop.preconditionInEventLoop()
        links.onMessage = { [unowned self] message in handle(.peer(message)) }
        links.start()
        membershipChangeStarted = now
        handle(.start)
        sampleQueues()
    }

    /// Records the queue depths now and again in a second, and publishes the counts of a
    /// daemon that wrote nothing to its clients since (they are published at flushes).
    private func sampleQueues() {
        publishTally()
        metrics.ringPendingItems.record(core.groups.ring.pendingCount)
        metrics.peerLinksBacklogged.record(links.backloggedCount)
        metrics.clientsBacklogged.record(channels.values.reduce(0) { $0 + ($1.channel.isWritable ? 0 : 1) })
        queueSampler = eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { [self] in sampleQueues() }
    }

    /// Current time for the core, from NIO's monotonic clock.
    var now: Instant { Instant(nanoseconds: NIODeadline.now().uptimeNanoseconds) }

    // MARK: - Sessions

    /// Time a client has for its handshake (the shell also bounds a stalled TLS handshake).
    var handshakeTimeout: Duration { core.settings.handshakeTimeout }

    /// Registers a new client channel and returns its session; `certificatePrincipal` is what
    /// a verified TLS client certificate names.
    func open(_ channel: any Channel, tls: Bool = false, certificatePrincipal: String? = nil) -> SessionID {
        eventLoop.preconditionInEventLoop()
        let session = SessionID(nextSessionNumber)
        nextSessionNumber += 1
        channels[session] = SessionIO(session: session, channel: channel)
        if intakePaused { setAutoRead(false, on: channel) }
        metrics.sessionsOpened.increment()
        var origin = Self.origin(of: channel)
        origin.certificatePrincipal = certificatePrincipal
        if tls { origin.link = .tls }
        logger.debug("session opened", metadata: ["session": "\(session)", "peer": "\(origin.address)"])
        handle(.sessionOpened(session, origin))
        return session
    }

    /// Where a client connected from: its IP address (the throttling source) and port; or,
    /// on the local socket, the uid, gid and pid of its process from the kernel (SO_PEERCRED).
    private static func origin(of channel: any Channel) -> ClientOrigin {
        if let address = channel.remoteAddress, let ip = address.ipAddress {
            let loopback = ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
            return ClientOrigin(source: ip, address: "\(ip):\(address.port ?? 0)", link: .tcp(loopback: loopback))
        }
        guard let credentials = peerCredentials(of: channel) else { return ClientOrigin(source: "unix", address: "unix", link: .unix) }
        return ClientOrigin(
            source: "unix:\(credentials.uid)", address: "unix(uid \(credentials.uid), pid \(credentials.pid))",
            peerCredentials: credentials, link: .unix)
    }

    /// The peer credentials of a Unix-socket channel. Called on the channel's event loop, where
    /// NIO answers socket-option reads at once (the future is already complete).
    private static func peerCredentials(of channel: any Channel) -> PeerCredentials? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        var credentials: PeerCredentials?
        let read: EventLoopFuture<KernelPeerCredentials> = provider.unsafeGetSocketOption(level: .socket, name: .init(rawValue: SO_PEERCRED))
        read.assumeIsolated().whenSuccess { peer in
            credentials = PeerCredentials(uid: peer.uid, gid: peer.gid, pid: peer.pid, userName: userName(of: peer.uid))
        }
        return credentials
    }

    /// Linux's `struct ucred` (which Swift's Glibc module does not import): three 32-bit fields in
    /// this order, the layout `getsockopt(SO_PEERCRED)` fills in.
    private struct KernelPeerCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// The login name of `uid`, from the password database.
    private static func userName(of uid: uid_t) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else { return nil }
        return String(cString: name)
    }

    /// Feeds one event to the core and performs what it answers.
    func handle(_ event: DaemonCore.Event) {
        handle(event, now: now)
    }

    /// Feeds one event to the core at time `now` (read once for a batch of frames).
    func handle(_ event: DaemonCore.Event, now: Instant) {
        eventLoop.preconditionInEventLoop()
        if case .sessionClosed(let session) = event {
            channels[session] = nil
            viewRequests[session] = nil
        }
        let established = core.establishedSessionCount
        // Reuse one action buffer; a nested call (from performing these actions) gets its own.
        var actions = actionBuffer
        actionBuffer = []
        let phase = logger.logLevel <= .debug ? core.groups.ring.phaseName : ""
        let wasOperational = core.groups.ring.isOperational
        core.on(event, now: now, into: &actions)
        if wasOperational && !core.groups.ring.isOperational { membershipChangeStarted = now }
        if logger.logLevel <= .debug { trace(event, actions: actions, phaseBefore: phase, now: now) }
        perform(actions)
        actions.removeAll(keepingCapacity: true)
        actionBuffer = actions
        if core.establishedSessionCount != established { metrics.sessions.record(core.establishedSessionCount) }
    }

    /// Debug log of the membership protocol: protocol messages in and out, ring timers, phase
    /// changes, with milliseconds of the monotonic clock (the log's own timestamps are seconds).
    private func trace(_ event: DaemonCore.Event, actions: [DaemonCore.Action], phaseBefore: String, now: Instant) {
        let milliseconds = "\(now.nanoseconds / 1_000_000)"
        switch event {
        case .peer(let message) where message.isMembership:
            logger.debug("peer in", metadata: ["ms": "\(milliseconds)", "message": "\(message)"])
        case .timerFired(.ring(let timer)):
            logger.debug("ring timer", metadata: ["ms": "\(milliseconds)", "timer": "\(timer)"])
        default:
            break
        }
        for action in actions {
            switch action {
            case .broadcastToPeers(let message) where message.isMembership:
                logger.debug("peer broadcast", metadata: ["ms": "\(milliseconds)", "message": "\(message)"])
            case .sendToPeer(let message, let to) where message.isMembership:
                logger.debug("peer send", metadata: ["ms": "\(milliseconds)", "to": "\(to)", "message": "\(message)"])
            default:
                break
            }
        }
        let phase = core.groups.ring.phaseName
        if phase != phaseBefore {
            logger.debug("membership state", metadata: ["ms": "\(milliseconds)", "from": "\(phaseBefore)", "to": "\(phase)"])
        }
    }

    /// Tells every client the daemon is going away and closes every session.
    func shutdown() {
        queueSampler?.cancel()
        handle(.shutdown)
        flushAll()
        links.stop()
    }

    // MARK: - Actions

    private func perform(_ actions: [DaemonCore.Action]) {
        for action in actions {
            switch action {
            case .send(let frame, let session):
                write(frame, to: CollectionOfOne(session))
            case .deliver(let frame, let sessions):
                write(frame, to: sessions)
            case .close(let session, let reason, let discardQueued):
                close(session, reason: reason, discardQueued: discardQueued)
            case .armTimer(.ring(let timer), let delay):
                armRingTimer(timer, at: .now() + TimeAmount(delay))
            case .armTimer(let timer, let delay):
                eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
                    handle(.timerFired(timer))
                }
            case .broadcastToPeers(let message):
                links.broadcast(message)
            case .sendToPeer(let message, let daemon):
                if daemon == core.daemon {
                    eventLoop.assumeIsolated().execute { [self] in handle(.peer(message)) }
                } else {
                    links.send(message, to: daemon.name)
                }
            case .configurationInstalled(let configuration):
                metrics.configurationInstalled(transitional: configuration.isTransitional)
                if !configuration.isTransitional, let started = membershipChangeStarted {
                    metrics.membershipChangeDuration.recordNanoseconds(Int64(now.nanoseconds - started.nanoseconds))
                    membershipChangeStarted = nil
                }
                logger.notice(configuration.isTransitional ? "transitional configuration" : "configuration installed", metadata: [
                    "ring": "\(configuration.ring)", "members": "\(configuration.members.map(\.description).joined(separator: " "))",
                ])
            case .dropPeers(let peers):
                links.dropPeers(peers)
            case .security(let report):
                metrics.security(report)
                logSecurity(report)
            case .authenticated(let session, let principal, let method, let origin):
                logger.info("authenticated", metadata: [
                    "audit": "auth", "session": "\(session)", "member": "\(core.member(of: session).map { "\($0)" } ?? "-")",
                    "principal": "\(principal)", "method": "\(method)", "peer": "\(origin.address)",
                ])
            case .accessDenied(let session, let denial):
                metrics.accessDenied(operation: denial.operation.rawValue, reason: denial.decision.label)
                logger.warning("access denied", metadata: [
                    "audit": "access", "session": "\(session)", "member": "\(denial.member)", "principal": "\(denial.principal)",
                    "operation": "\(denial.operation)", "group": "\(denial.group)", "decided-by": "\(denial.decision.reason)",
                ])
            case .authenticationFailed(let session, let method, let refusal, let origin):
                metrics.authenticationFailed(method: method, reason: refusal.label)
                logger.warning("authentication failed", metadata: [
                    "audit": "auth", "session": "\(session)", "method": "\(method)", "reason": "\(refusal.label)",
                    "detail": "\(refusal.detail)", "peer": "\(origin.address)",
                ])
            case .pauseIntake(let paused):
                intakePaused = paused
                logger.debug(paused ? "client input paused: a client is backlogged or the ring has too much waiting" : "client input resumed")
                metrics.intakePauses.increment(by: paused ? 1 : 0)
                for io in channels.values { setAutoRead(!paused, on: io.channel) }
            }
        }
    }

    /// The security architecture's reports in the log: key agreements at notice (they are as
    /// rare as configuration changes), refusals at warning, per-group rekeys at debug.
    private func logSecurity(_ report: DaemonSecurityReport) {
        switch report {
        case .agreementStarted(let run, let daemons):
            logger.info("daemon key agreement started", metadata: [
                "configuration": "\(run.configuration)", "refresh": "\(run.sequence)", "daemons": "\(daemons)",
            ])
        case .agreementFinished(let run, let fingerprint, let duration):
            logger.notice("daemon key agreed", metadata: [
                "configuration": "\(run.configuration)", "refresh": "\(run.sequence)",
                "fingerprint": "\(String(fingerprint, radix: 16))", "duration": "\(duration)",
            ])
        case .agreementAbandoned(let run):
            logger.notice("daemon key agreement abandoned for a newer configuration", metadata: [
                "configuration": "\(run.configuration)", "refresh": "\(run.sequence)",
            ])
        case .messageRefused(let reason):
            logger.warning("daemon security message refused", metadata: ["reason": "\(reason)"])
        case .groupRekeyed(let group):
            logger.debug("group rekeyed", metadata: ["group": "\(group)"])
        case .viewWithoutKey(let group):
            logger.notice("group view delivered without a key: its configuration's key agreement was cut short", metadata: ["group": "\(group)"])
        }
    }

    private func armRingTimer(_ timer: TotemRing.Timer, at deadline: NIODeadline) {
        if let entry = ringTimers[timer], entry.scheduled <= deadline {
            ringTimers[timer] = (deadline, entry.scheduled)
            return
        }
        ringTimers[timer] = (deadline, deadline)
        scheduleRingTimer(timer, at: deadline)
    }

    private func scheduleRingTimer(_ timer: TotemRing.Timer, at deadline: NIODeadline) {
        eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            // Superseded by an earlier arming (which scheduled its own task)?
            guard let entry = ringTimers[timer], entry.scheduled == deadline else { return }
            if entry.wanted > deadline {
                ringTimers[timer] = (entry.wanted, entry.wanted)
                scheduleRingTimer(timer, at: entry.wanted)
                return
            }
            ringTimers[timer] = nil
            handle(.timerFired(.ring(timer)))
        }
    }

    private func write(_ frame: DaemonFrame, to sessions: some Collection<SessionID>) {
        scratch.removeAll()
        let payload = frame.encodeLeavingPayload(into: &scratch)
        count(frame, recipients: sessions)
        for session in sessions {
            guard let io = channels[session] else { continue }
            if io.outgoing.readableBytes == 0 { dirty.append(io) }
            io.outgoing.writeBytes(scratch.bytes)
            if let payload { io.outgoing.writeBytes(payload) }
        }
        scheduleFlush()
    }

    private func count(_ frame: DaemonFrame, recipients: some Collection<SessionID>) {
        tally.framesWritten += recipients.count
        switch frame {
        case .message(let message):
            let level = Int(message.service.level.rawValue) - 1
            tally.messagesDelivered[level] += recipients.count
            tally.messageBytesDelivered[level] += message.payload.count * recipients.count
        case .view(let view):
            metrics.viewsDelivered.increment(by: Int64(recipients.count))
            if !view.transitional {
                for session in recipients {
                    if let started = viewRequests[session]?.removeValue(forKey: view.group) {
                        metrics.groupViewChangeDuration.recordNanoseconds(Int64(now.nanoseconds - started.nanoseconds))
                    }
                }
            }
        case .reject(let code, _), .error(let code, _, _):
            metrics.rejected(code)
        case .accept, .authChallenge, .status:
            break
        }
    }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.assumeIsolated().execute { [self] in flushAll() }
    }

    /// Writes and flushes what this tick gathered for each client. What the kernel did not take
    /// stays queued; a client whose queue then exceeds the limit reads too slowly, and the core
    /// decides what that means (it disconnects it).
    private func flushAll() {
        flushScheduled = false
        var backlogged: [SessionID] = []
        for io in dirty where io.outgoing.readableBytes > 0 {
            io.channel.writeAndFlush(io.outgoing, promise: nil)
            io.outgoing.clear()
            if !io.channel.isWritable { backlogged.append(io.session) }
        }
        metrics.flushes.increment(by: Int64(dirty.count))
        dirty.removeAll(keepingCapacity: true)
        publishTally()
        for session in backlogged {
            handle(.backlogged(session))
        }
    }

    /// Closes a session once what was written to it is on the wire (or after a grace period
    /// for a client that does not read). With `discardQueued`, drops what is queued and resets
    /// the connection, so the kernel frees the client's buffers at once.
    private func close(_ session: SessionID, reason: String, discardQueued: Bool) {
        guard let io = channels[session] else { return }
        let channel = io.channel
        logger.info("closing session", metadata: [
            "session": "\(session)", "member": "\(core.member(of: session).map { "\($0)" } ?? "-")", "reason": "\(reason)",
        ])
        if discardQueued {
            io.outgoing.clear()
            // SO_LINGER with a zero timeout: close() resets instead of draining.
            if let provider = channel as? any SocketOptionProvider {
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                channel.close(promise: nil)
            }
            return
        }
        let written = eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(io.outgoing, promise: written)
        io.outgoing = ByteBuffer()
        let deadline = eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        written.futureResult.hop(to: eventLoop).assumeIsolated().whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    private func setAutoRead(_ enabled: Bool, on channel: any Channel) {
        try? channel.syncOptions?.setOption(.autoRead, value: enabled)
    }

    /// Counts a client submission from `session` (for metrics), received at `now`.
    func countSubmission(_ frame: ClientFrame, from session: SessionID, now: Instant) {
        switch frame {
        case .multicast(let message):
            let level = Int(message.service.level.rawValue) - 1
            tally.messagesReceived[level] += 1
            tally.messageBytesReceived[level] += message.payload.count
        case .join(let group), .leave(let group):
            viewRequests[session, default: [:]][group] = now
        default:
            break
        }
    }

    /// Per-message counts by service level, added up in plain integers during a tick and
    /// handed to the metrics backend once per tick (its counters are atomics).
    private struct Tally {
        // One count per service level (index `ServiceLevel.rawValue - 1`).
        var messagesReceived = [Int](repeating: 0, count: ServiceLevel.allCases.count)
        var messageBytesReceived = [Int](repeating: 0, count: ServiceLevel.allCases.count)
        var messagesDelivered = [Int](repeating: 0, count: ServiceLevel.allCases.count)
        var messageBytesDelivered = [Int](repeating: 0, count: ServiceLevel.allCases.count)
        var framesWritten = 0
    }

    private var tally = Tally()

    /// Hands the tick's counts to the metrics backend and zeroes them (in place: no allocation).
    private func publishTally() {
        if tally.framesWritten > 0 {
            metrics.framesWritten.increment(by: Int64(tally.framesWritten))
            tally.framesWritten = 0
        }
        for level in tally.messagesReceived.indices {
            if tally.messagesReceived[level] > 0 {
                metrics.messagesReceived[level].increment(by: Int64(tally.messagesReceived[level]))
                metrics.messageBytesReceived[level].increment(by: Int64(tally.messageBytesReceived[level]))
                tally.messagesReceived[level] = 0
                tally.messageBytesReceived[level] = 0
            }
            if tally.messagesDelivered[level] > 0 {
                metrics.messagesDelivered[level].increment(by: Int64(tally.messagesDelivered[level]))
                metrics.messageBytesDelivered[level].increment(by: Int64(tally.messageBytesDelivered[level]))
                tally.messagesDelivered[level] = 0
                tally.messageBytesDelivered[level] = 0
            }
        }
    }
}
