import CohortCore
import CohortSecurity
import CohortTransport
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix

/// The links between this daemon and the other daemons of its server group: a TCP mesh.
///
/// Each daemon dials every other configured daemon and writes only on the connections it
/// dialed; it reads only on the connections it accepted. A dialed link opens with a
/// ``PeerLinkFrame/Hello`` naming the dialer; the acceptor refuses (logs and closes) a name
/// outside the configuration, and a link that sends garbage or out-of-protocol frames. Why a
/// TCP mesh rather than UDP: `docs/membership.md`, "Daemon links".
///
/// The links hold no protocol state: they carry what the core's actions say, deliver what
/// arrives to ``onMessage``, and keep themselves up — reconnection with backoff, a heartbeat on a
/// quiet link, and an idle timeout on a silent one. Protocol messages are best effort, as Totem
/// expects of its network: a message for a peer that is not connected, or whose link is backed
/// up beyond the limit, is dropped and the ring's retransmission and membership protocols deal
/// with it.
///
/// Fault injection: ``dropPeers(_:)`` drops every protocol message to and from the named peers
/// (heartbeats still flow, so the links stay up): a partition, as the daemons see it.
///
/// Confined to the daemon's one event loop, like the runtime.
final class PeerLinks {
    /// Bounds and timing of the links.
    struct Settings {
        /// A dialed link with nothing else to send carries a heartbeat this often.
        var heartbeatInterval: TimeAmount = .milliseconds(100)
        /// An accepted link silent for this long is closed; its dialer reconnects.
        var idleTimeout: TimeAmount = .seconds(1)
        /// First and longest delay before redialing a peer.
        var reconnectDelayMin: TimeAmount = .milliseconds(50)
        var reconnectDelayMax: TimeAmount = .seconds(1)
        /// Bytes queued on one link above which messages for that peer are dropped.
        var queueBytesMax = 64 * 1024 * 1024
        /// Largest frame accepted.
        var frameBytesMax: Int
        /// Bounds on names and counts in protocol messages.
        var limits: Limits
        var daemonsMax: Int
    }

    /// A link this daemon dialed, to one peer.
    private final class Outgoing {
        let peer: PeerEndpoint
        var channel: (any Channel)?
        var connecting = false
        var reconnectDelay: TimeAmount
        /// Frames gathered this tick. A broadcast frame is one buffer shared by every link.
        var pending: [ByteBuffer] = []
        /// Bytes in ``pending``.
        private(set) var pendingBytes = 0
        /// Whether anything was written since the last heartbeat tick.
        var active = false
        /// The link was up once (for the log: "down" is said once per outage).
        var wasUp = false

        init(peer: PeerEndpoint, reconnectDelay: TimeAmount) {
            self.peer = peer
            self.reconnectDelay = reconnectDelay
        }

        /// Adds a frame to this tick's.
        func queue(_ frame: ByteBuffer) {
            pending.append(frame)
            pendingBytes += frame.readableBytes
        }

        /// Forgets the frames gathered (written, or for a link that went down).
        func clearPending() {
            pending.removeAll(keepingCapacity: true)
            pendingBytes = 0
        }
    }

    /// A link a peer dialed.
    final class Incoming {
        let channel: any Channel
        /// Who the peer said it is (after its hello).
        var peer: DaemonID?
        var lastHeard: NIODeadline

        init(channel: any Channel, now: NIODeadline) {
            self.channel = channel
            self.lastHeard = now
        }
    }

    /// What the links drop and refuse (`docs/metrics.md`).
    private struct Counters {
        /// Protocol messages not sent: the peer was not connected or its link backed up.
        let unsent = Counter(label: "cohort_peer_messages_unsent_total")
        /// Protocol messages dropped by fault injection (both directions).
        let droppedByFault = Counter(label: "cohort_peer_messages_dropped_by_fault_total")
        /// Links refused or closed for bad input, unknown names or silence.
        let refused = Counter(label: "cohort_peer_links_refused_total")

        /// A peer's hello that failed daemon authentication (`cohort_auth_failures_total`).
        func authenticationFailed(reason: String) {
            Counter(label: "cohort_auth_failures_total", dimensions: [("method", "daemon"), ("reason", reason)]).increment()
        }
    }

    private let me: DaemonID
    private let eventLoop: any EventLoop
    private let logger: Logger
    private let settings: Settings
    private let names: Set<String>
    /// Signs this daemon's hellos and checks the peers' (`docs/daemon-authentication.md`).
    private var authentication: DaemonAuthentication
    private var outgoing: [String: Outgoing] = [:]
    private var incoming: [ObjectIdentifier: Incoming] = [:]
    private var dirty: [Outgoing] = []
    private var flushScheduled = false
    private var dropped: Set<String> = []
    private var scratch = WireWriter(capacity: 64 * 1024)
    private var heartbeat: Scheduled<Void>?
    private var listener: (any Channel)?
    private var stopped = false
    private let counters = Counters()
    /// Where arriving protocol messages go (the runtime).
    var onMessage: (PeerMessage) -> Void = { _ in }

    init(
        me: DaemonID, peers: [PeerEndpoint], authentication: DaemonAuthentication, settings: Settings,
        eventLoop: any EventLoop, logger: Logger
    ) {
        self.me = me
        self.authentication = authentication
        self.settings = settings
        self.eventLoop = eventLoop
        self.logger = logger
        self.names = Set(peers.map(\.name))
        for peer in peers {
            outgoing[peer.name] = Outgoing(peer: peer, reconnectDelay: settings.reconnectDelayMin)
        }
    }

    // MARK: - Lifecycle

    /// Binds the daemon port (on this loop's thread: the links and the runtime share it).
    static func bind(
        _ links: NIOLoopBound<PeerLinks>, endpoint: PeerEndpoint, settings: Settings, eventLoop: any EventLoop
    ) async throws -> any Channel {
        let frameBytesMax = settings.frameBytesMax
        let limits = settings.limits
        let daemonsMax = settings.daemonsMax
        let channel = try await ServerBootstrap(group: eventLoop)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 1 << 20))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FrameBatchHandler<PeerLinkFrame>(
                        frameBytesMax: frameBytesMax,
                        decodeFrame: { body, _ throws(WireError) in
                            try PeerLinkFrame.decode(body: body, limits: limits, daemonsMax: daemonsMax)
                        }))
                    try channel.pipeline.syncOperations.addHandler(PeerInboundHandler(links: links.value))
                }
            }
            .bind(host: endpoint.host, port: endpoint.port).get()
        try await eventLoop.submit { links.value.listener = channel }.get()
        return channel
    }

    /// Dials every peer and starts the heartbeat.
    func start() {
        eventLoop.preconditionInEventLoop()
        for link in outgoing.values.sorted(by: { $0.peer.name < $1.peer.name }) { dial(link) }
        scheduleTick()
    }

    private func scheduleTick() {
        guard !stopped else { return }
        heartbeat = eventLoop.assumeIsolated().scheduleTask(in: settings.heartbeatInterval) { [self] in
            tick()
            scheduleTick()
        }
    }

    /// Closes every link and the listener; no more dialing.
    func stop() {
        eventLoop.preconditionInEventLoop()
        stopped = true
        heartbeat?.cancel()
        listener?.close(promise: nil)
        for link in outgoing.values { link.channel?.close(promise: nil) }
        for link in incoming.values { link.channel.close(promise: nil) }
    }

    // MARK: - Sending

    /// Sends a protocol message to every connected peer: encoded once, the same bytes written
    /// to each link.
    func broadcast(_ message: PeerMessage) {
        let frame = encode(message)
        for link in outgoing.values { enqueue(frame, on: link) }
    }

    /// Sends a protocol message to one peer.
    func send(_ message: PeerMessage, to name: String) {
        guard let link = outgoing[name] else { return }
        enqueue(encode(message), on: link)
    }

    /// From now on drops every protocol message to and from `names`.
    func dropPeers(_ names: Set<String>) {
        dropped = names
        logger.warning("fault injection: dropping protocol traffic", metadata: [
            "peers": "\(names.sorted().joined(separator: ","))",
        ])
    }

    /// Dialed links that are up but not writable (their peer reads too slowly).
    var backloggedCount: Int {
        outgoing.values.reduce(0) { count, link in count + (link.channel.map { $0.isWritable ? 0 : 1 } ?? 0) }
    }

    private func encode(_ message: PeerMessage) -> ByteBuffer {
        scratch.removeAll()
        PeerLinkFrame.message(message).encode(into: &scratch)
        return ByteBuffer(bytes: scratch.bytes)
    }

    /// Queues `frame` on a link for this tick's flush, unless the link cannot take it.
    private func enqueue(_ frame: ByteBuffer, on link: Outgoing) {
        guard let channel = link.channel else {
            counters.unsent.increment()
            return
        }
        if dropped.contains(link.peer.name) {
            counters.droppedByFault.increment()
            return
        }
        // Above the high watermark the peer does not read: dropping is what a lossy network
        // would do, and keeps this daemon's memory bounded.
        guard channel.isWritable else {
            counters.unsent.increment()
            return
        }
        if link.pending.isEmpty { dirty.append(link) }
        link.queue(frame)
        link.active = true
        // A token visit can broadcast megabytes of packets in one tick: the peers start on them
        // while this daemon is still building the rest (instead of all waiting for the tick's end).
        if link.pendingBytes >= Self.eagerFlushBytes {
            write(link, to: channel)
        } else {
            scheduleFlush()
        }
    }

    /// Pending bytes on a link above which it is written at once, not at the end of the tick.
    static let eagerFlushBytes = 1024 * 1024

    /// Writes and flushes what `link` gathered (one gathering write).
    private func write(_ link: Outgoing, to channel: any Channel) {
        for frame in link.pending { channel.write(frame, promise: nil) }
        channel.flush()
        link.clearPending()
    }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.assumeIsolated().execute { [self] in flush() }
    }

    /// Writes what this tick gathered for each link (and was not written early), one flush (one
    /// gathering write) per link.
    private func flush() {
        flushScheduled = false
        // A link written early may stand in `dirty` twice (it re-enters when queued again); the
        // second time it has nothing pending.
        for link in dirty where !link.pending.isEmpty {
            if let channel = link.channel {
                write(link, to: channel)
            } else {
                link.clearPending()
            }
        }
        dirty.removeAll(keepingCapacity: true)
    }

    // MARK: - Dialing

    private func dial(_ link: Outgoing) {
        guard !stopped, link.channel == nil, !link.connecting else { return }
        link.connecting = true
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let name = link.peer.name
        let queueBytesMax = settings.queueBytesMax
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(1))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: queueBytesMax / 2, high: queueBytesMax))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(PeerOutboundHandler(links: bound.value, peer: name))
                }
            }
            .connect(host: link.peer.host, port: link.peer.port)
            .hop(to: eventLoop)
            .assumeIsolated()
            .whenComplete { result in bound.value.dialed(name, result) }
    }

    private func dialed(_ name: String, _ result: Result<any Channel, any Error>) {
        guard let link = outgoing[name] else { return }
        link.connecting = false
        switch result {
        case .success(let channel):
            if stopped {
                channel.close(promise: nil)
                return
            }
            link.channel = channel
            link.wasUp = true
            link.reconnectDelay = settings.reconnectDelayMin
            link.clearPending()
            var generator = SystemRandomNumberGenerator()
            let nonce = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            var hello = WireWriter(capacity: 192)
            PeerLinkFrame.hello(authentication.hello(
                from: me, to: name, timeMilliseconds: Self.wallClockMilliseconds(), nonce: nonce)).encode(into: &hello)
            channel.writeAndFlush(ByteBuffer(bytes: hello.bytes), promise: nil)
            logger.info("link to peer up", metadata: ["peer": "\(name)", "address": "\(link.peer.host):\(link.peer.port)"])
        case .failure(let error):
            logger.debug("cannot reach peer", metadata: ["peer": "\(name)", "error": "\(error)"])
            redial(link)
        }
    }

    private func redial(_ link: Outgoing) {
        guard !stopped else { return }
        let delay = link.reconnectDelay
        link.reconnectDelay = min(link.reconnectDelay * 2, settings.reconnectDelayMax)
        eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in dial(link) }
    }

    /// A dialed link closed.
    fileprivate func outgoingClosed(_ name: String, channel: any Channel) {
        guard let link = outgoing[name], link.channel === channel else { return }
        link.channel = nil
        link.clearPending()
        if link.wasUp, !stopped { logger.notice("link to peer down", metadata: ["peer": "\(name)"]) }
        link.wasUp = false
        redial(link)
    }

    // MARK: - Receiving

    fileprivate func accepted(_ channel: any Channel) -> Incoming {
        let link = Incoming(channel: channel, now: .now())
        incoming[ObjectIdentifier(link)] = link
        return link
    }

    fileprivate func incomingClosed(_ link: Incoming) {
        incoming[ObjectIdentifier(link)] = nil
        if let peer = link.peer, !stopped { logger.info("link from peer closed", metadata: ["peer": "\(peer)"]) }
    }

    /// Handles one frame of an accepted link; `false` means the link is to be closed (the
    /// reason is logged).
    fileprivate func received(_ frame: PeerLinkFrame, on link: Incoming) -> Bool {
        link.lastHeard = .now()
        guard let peer = link.peer else {
            guard case .hello(let hello) = frame else { return refuse(link, "the first frame is not a hello") }
            guard hello.version == PeerLinkFrame.Hello.currentVersion else {
                return refuse(link, "link protocol version \(hello.version), this daemon speaks \(PeerLinkFrame.Hello.currentVersion)")
            }
            guard names.contains(hello.daemon.name) else {
                return refuse(link, "unknown daemon \(hello.daemon.name) (not in the configuration)")
            }
            do {
                try authentication.check(hello, nowMilliseconds: Self.wallClockMilliseconds())
            } catch {
                counters.authenticationFailed(reason: error.label)
                return refuse(link, "daemon authentication failed: \(error.reason)")
            }
            link.peer = hello.daemon
            logger.info("link from peer up", metadata: ["peer": "\(hello.daemon)"])
            return true
        }
        switch frame {
        case .hello:
            return refuse(link, "second hello")
        case .heartbeat:
            return true
        case .message(let message):
            if let sender = message.claimedSender, sender.name != peer.name {
                return refuse(link, "message claims to come from \(sender)")
            }
            if dropped.contains(peer.name) {
                counters.droppedByFault.increment()
                return true
            }
            onMessage(message)
            return true
        }
    }

    /// A link that sent bytes that do not decode.
    fileprivate func malformed(_ link: Incoming, _ error: WireError) {
        _ = refuse(link, "malformed frame: \(error)")
    }

    private func refuse(_ link: Incoming, _ reason: String) -> Bool {
        counters.refused.increment()
        logger.warning("peer link refused", metadata: [
            "peer": "\(link.peer.map { "\($0)" } ?? "?")",
            "address": "\(link.channel.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(reason)",
        ])
        link.channel.close(promise: nil)
        return false
    }

    /// Milliseconds since 1970 by the system clock: hellos carry it, for freshness.
    private static func wallClockMilliseconds() -> UInt64 {
        UInt64(max(0, Date().timeIntervalSince1970 * 1000))
    }

    /// Heartbeats on quiet dialed links; closes silent accepted links.
    private func tick() {
        for link in outgoing.values {
            if link.channel != nil, !link.active {
                scratch.removeAll()
                PeerLinkFrame.heartbeat.encode(into: &scratch)
                if link.pending.isEmpty { dirty.append(link) }
                link.queue(ByteBuffer(bytes: scratch.bytes))
                scheduleFlush()
            }
            link.active = false
        }
        let now = NIODeadline.now()
        for link in incoming.values where now - link.lastHeard > settings.idleTimeout {
            _ = refuse(link, "silent for \(settings.idleTimeout.nanoseconds / 1_000_000) ms")
            link.lastHeard = now
        }
    }
}

/// Reads an accepted link: frames go to ``PeerLinks``.
private final class PeerInboundHandler: ChannelInboundHandler {
    typealias InboundIn = [PeerLinkFrame]

    private let links: PeerLinks
    private var link: PeerLinks.Incoming?

    init(links: PeerLinks) { self.links = links }

    func channelActive(context: ChannelHandlerContext) {
        link = links.accepted(context.channel)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let link else { return }
        for frame in unwrapInboundIn(data) {
            guard links.received(frame, on: link) else {
                self.link = nil
                links.incomingClosed(link)
                return
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let link else { return }
        if let wireError = error as? WireError {
            links.malformed(link, wireError)
        } else {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let link { links.incomingClosed(link) }
        link = nil
        context.fireChannelInactive()
    }
}

/// Watches a dialed link: the acceptor never writes, so anything read is ignored; a close
/// makes ``PeerLinks`` redial.
private final class PeerOutboundHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let links: PeerLinks
    private let peer: String

    init(links: PeerLinks, peer: String) {
        self.links = links
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        links.outgoingClosed(peer, channel: context.channel)
        context.fireChannelInactive()
    }
}
