import CohortCore
import Logging
import NIOCore

/// Performs the pure ``DaemonCore``'s actions on real channels. Confined to the daemon's one
/// event loop: every client channel, timer and the core live on it, so nothing here locks.
///
/// Writes are batched: an action writes without flushing and marks the channel; one task per
/// event-loop tick flushes every marked channel, so a burst of reads costs one syscall per
/// client, not one per message.
final class DaemonRuntime {
    private var core: DaemonCore
    private let eventLoop: any EventLoop
    private let logger: Logger
    private let metrics = DaemonMetrics()
    private var channels: [SessionID: any Channel] = [:]
    private var nextSessionNumber: UInt64 = 1
    private var pendingFlush: [SessionID] = []
    private var flushScheduled = false
    private var overflowed: [SessionID] = []

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
        }
        perform(core.on(event, now: now))
        // A write above may have overflowed a slow client's queue; the core decides what that means.
        while let session = overflowed.popLast() {
            logger.warning("client queue overflow", metadata: ["session": "\(session)", "member": "\(core.member(of: session).map { "\($0)" } ?? "-")"])
            perform(core.on(.queueOverflow(session), now: now))
        }
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
            case .close(let session, let reason):
                close(session, reason: reason)
            case .armTimer(let timer, let delay):
                eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
                    handle(.timerFired(timer))
                }
            }
        }
    }

    private func write(_ frame: DaemonFrame, to sessions: some Collection<SessionID>) {
        let bytes = frame.encoded()
        let buffer = ByteBuffer(bytes: bytes)
        count(frame, bytes: bytes.count, recipients: sessions.count)
        for session in sessions {
            guard let channel = channels[session] else { continue }
            channel.write(buffer, promise: nil)
            markForFlush(session)
            if !channel.isWritable, !overflowed.contains(session) { overflowed.append(session) }
        }
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

    private func markForFlush(_ session: SessionID) {
        pendingFlush.append(session)
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.assumeIsolated().execute { [self] in flushAll() }
    }

    private func flushAll() {
        flushScheduled = false
        var flushed: Set<SessionID> = []
        for session in pendingFlush where flushed.insert(session).inserted {
            channels[session]?.flush()
        }
        metrics.flushes.increment(by: Int64(flushed.count))
        pendingFlush.removeAll(keepingCapacity: true)
    }

    /// Closes a session once what was written to it is on the wire (or after a grace period
    /// for a client that does not read).
    private func close(_ session: SessionID, reason: String) {
        guard let channel = channels[session] else { return }
        logger.info("closing session", metadata: [
            "session": "\(session)", "member": "\(core.member(of: session).map { "\($0)" } ?? "-")", "reason": "\(reason)",
        ])
        let written = eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(ByteBuffer(), promise: written)
        let deadline = eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        written.futureResult.hop(to: eventLoop).assumeIsolated().whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    /// Counts a client submission (for metrics).
    func countSubmission(_ frame: ClientFrame) {
        if case .multicast(let message) = frame {
            metrics.messagesReceived.increment()
            metrics.messageBytesReceived.increment(by: Int64(message.payload.count))
        }
    }
}
