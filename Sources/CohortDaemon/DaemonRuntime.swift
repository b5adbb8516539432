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
    private var channels: [SessionID: any Channel] = [:]
    private var nextSessionNumber: UInt64 = 1
    /// Bytes for each client, gathered during the current tick. A client's buffer is kept
    /// across ticks and cleared after its flush: once NIO has written it, the storage is ours
    /// alone again and is reused instead of reallocated.
    private var outgoing: [SessionID: ByteBuffer] = [:]
    /// Sessions with bytes in `outgoing` this tick, in the order they were first written to.
    private var dirty: [SessionID] = []
    private var flushScheduled = false
    /// Whether client input is paused (a client is backlogged).
    private var intakePaused = false
    /// Encoding scratch space, reused for every frame.
    private var scratch = WireWriter(capacity: 128 * 1024)

    init(core: DaemonCore, eventLoop: any EventLoop, logger: Logger) {
        self.core = core
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// Current time for the core, from NIO's monotonic clock.
    private var now: Instant { Instant(nanoseconds: NIODeadline.now().uptimeNanoseconds) }

    // MARK: - Sessions

    /// Registers a new client channel and returns its session.
    func open(_ channel: any Channel) -> SessionID {
        eventLoop.preconditionInEventLoop()
        let session = SessionID(nextSessionNumber)
        nextSessionNumber += 1
        channels[session] = channel
        if intakePaused { setAutoRead(false, on: channel) }
        metrics.sessionsOpened.increment()
        logger.debug("session opened", metadata: ["session": "\(session)", "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "unix")"])
        handle(.sessionOpened(session))
        return session
    }

    /// Feeds one event to the core and performs what it answers.
    func handle(_ event: DaemonCore.Event) {
        eventLoop.preconditionInEventLoop()
        if case .sessionClosed(let session) = event {
            channels[session] = nil
            outgoing[session] = nil
        }
        perform(core.on(event, now: now))
        metrics.sessions.record(core.establishedSessionCount)
    }

    /// Tells every client the daemon is going away and closes every session.
    func shutdown() {
        handle(.shutdown)
        flushAll()
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
            case .armTimer(let timer, let delay):
                eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
                    handle(.timerFired(timer))
                }
            case .pauseIntake(let paused):
                intakePaused = paused
                logger.debug(paused ? "client input paused: a client is backlogged" : "client input resumed")
                metrics.intakePauses.increment(by: paused ? 1 : 0)
                for channel in channels.values { setAutoRead(!paused, on: channel) }
            }
        }
    }

    private func write(_ frame: DaemonFrame, to sessions: some Collection<SessionID>) {
        scratch.removeAll()
        frame.encode(into: &scratch)
        count(frame, bytes: scratch.bytes.count, recipients: sessions.count)
        for session in sessions where channels[session] != nil {
            if outgoing[session]?.readableBytes ?? 0 == 0 { dirty.append(session) }
            outgoing[session, default: ByteBufferAllocator().buffer(capacity: 64 * 1024)].writeBytes(scratch.bytes)
        }
        scheduleFlush()
    }

    private func count(_ frame: DaemonFrame, bytes: Int, recipients: Int) {
        metrics.framesWritten.increment(by: Int64(recipients))
        switch frame {
        case .message(let message):
            metrics.messagesDelivered.increment(by: Int64(recipients))
            metrics.messageBytesDelivered.increment(by: Int64(message.payload.count * recipients))
        case .view:
            metrics.viewsDelivered.increment(by: Int64(recipients))
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
        for session in dirty {
            guard let channel = channels[session], let buffer = outgoing[session] else {
                outgoing[session] = nil
                continue
            }
            channel.writeAndFlush(buffer, promise: nil)
            outgoing[session]?.clear()
            if !channel.isWritable { backlogged.append(session) }
        }
        metrics.flushes.increment(by: Int64(dirty.count))
        dirty.removeAll(keepingCapacity: true)
        for session in backlogged {
            handle(.backlogged(session))
        }
    }

    /// Closes a session once what was written to it is on the wire (or after a grace period
    /// for a client that does not read). With `discardQueued`, drops what is queued and resets
    /// the connection, so the kernel frees the client's buffers at once.
    private func close(_ session: SessionID, reason: String, discardQueued: Bool) {
        guard let channel = channels[session] else { return }
        logger.info("closing session", metadata: [
            "session": "\(session)", "member": "\(core.member(of: session).map { "\($0)" } ?? "-")", "reason": "\(reason)",
        ])
        if discardQueued {
            outgoing[session] = nil
            dirty.removeAll { $0 == session }
            // SO_LINGER with a zero timeout: close() resets instead of draining.
            if let provider = channel as? any SocketOptionProvider {
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                channel.close(promise: nil)
            }
            return
        }
        let written = eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(outgoing.removeValue(forKey: session) ?? ByteBuffer(), promise: written)
        dirty.removeAll { $0 == session }
        let deadline = eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        written.futureResult.hop(to: eventLoop).assumeIsolated().whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    private func setAutoRead(_ enabled: Bool, on channel: any Channel) {
        try? channel.syncOptions?.setOption(.autoRead, value: enabled)
    }

    /// Counts a client submission (for metrics).
    func countSubmission(_ frame: ClientFrame) {
        if case .multicast(let message) = frame {
            metrics.messagesReceived.increment()
            metrics.messageBytesReceived.increment(by: Int64(message.payload.count))
        }
    }
}
