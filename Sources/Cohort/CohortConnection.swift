public import CohortCore
public import CohortSecurity
public import CohortTransport
public import NIOCore
public import NIOPosix
import NIOSSL
import Synchronization

/// What a connection delivers to the application, in daemon order.
public enum CohortEvent: Sendable, Hashable {
    /// A message of a joined group (or of this client's private group).
    case message(DeliveredMessage)
    /// A membership view of a joined group.
    case view(GroupView)
    /// A status snapshot, answering ``CohortConnection/requestStatus()``.
    case status(DaemonStatus)
    /// A non-fatal error: the session goes on (e.g. a message the architecture refused).
    case error(ErrorCode, reason: String)
    /// The membership of a VS group is changing: send what belongs to the current view, then
    /// call ``CohortConnection/flush(_:)`` (``FlushPolicy/manual`` only).
    case flushRequest(GroupName)
}

/// Entry point of the client library.
///
/// ```swift
/// try await CohortClient.withConnection(to: .tcp(host: "127.0.0.1", port: 4803),
///                                       options: ConnectionOptions(name: "alice")) { connection in
///     try await connection.join("chat")
///     try await connection.multicast("hello", to: "chat")
///     for try await event in connection.events { print(event) }
/// }
/// ```
public enum CohortClient {
    /// Connects to a daemon, completes the handshake, runs `body` with the open connection and
    /// closes it when `body` returns or throws. Errors are ``CohortError``s.
    public static func withConnection<Result: Sendable>(
        to address: DaemonAddress,
        options: ConnectionOptions,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ body: (CohortConnection) async throws -> Result
    ) async throws -> Result {
        do {
            _ = try MemberID(name: options.name, daemon: "d", limits: options.limits)
        } catch {
            throw CohortError.invalidName(error.description)
        }
        let request = ConnectRequest(privateName: options.name, wantsMembership: options.wantsMembership)
        let authenticator = options.credentials.makeAuthenticator()
        let limits = options.limits
        let highWatermark = max(2, options.inboundReadsBufferedMax)
        let tlsContext: NIOSSLContext?
        switch (options.tls, address) {
        case (nil, _):
            tlsContext = nil
        case (let tls?, .tcp):
            do {
                tlsContext = try Self.clientTLSContext(tls)
            } catch {
                throw CohortError.tlsFailed("cannot load the TLS files: \(error)")
            }
        case (_?, .unix):
            throw CohortError.tlsFailed("TLS is for TCP connections; the Unix socket is local")
        }
        // SNI and name checks take a host name; for an IP address NIOSSL checks the IP SAN.
        let serverHostname: String? = {
            guard case .tcp(let host, _) = address, (try? SocketAddress(ipAddress: host, port: 0)) == nil else { return nil }
            return host
        }()
        let initializer: @Sendable (any Channel) -> EventLoopFuture<(NIOAsyncChannel<[DaemonFrame], ByteBuffer>, EventLoopFuture<ConnectAccept>)> = { channel in
            channel.eventLoop.makeCompletedFuture {
                let accepted = channel.eventLoop.makePromise(of: ConnectAccept.self)
                let sync = channel.pipeline.syncOperations
                if let tlsContext {
                    try sync.addHandler(try NIOSSLClientHandler(context: tlsContext, serverHostname: serverHostname))
                }
                try sync.addHandler(FrameBatchHandler<DaemonFrame>(limits: limits))
                try sync.addHandler(HandshakeHandler(
                    request: request, authenticator: authenticator, tls: tlsContext != nil, accepted: accepted))
                let asyncChannel = try NIOAsyncChannel<[DaemonFrame], ByteBuffer>(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(backPressureStrategy: .init(lowWatermark: highWatermark / 2, highWatermark: highWatermark)))
                return (asyncChannel, accepted.futureResult)
            }
        }
        let timeout = TimeAmount(options.connectTimeout)
        // Room for a few send batches in flight: with NIO's default 64 KiB high watermark every
        // batch would suspend the sending task until the socket drained. Reads grow up to 1 MiB
        // under a flood of deliveries (NIO's default stops at 64 KiB), as the daemon's do.
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(timeout)
            .channelOption(.writeBufferWaterMark, value: .init(low: 512 * 1024, high: 2 * 1024 * 1024))
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 1 << 20))
        let (channel, acceptedFuture): (NIOAsyncChannel<[DaemonFrame], ByteBuffer>, EventLoopFuture<ConnectAccept>)
        do {
            switch address {
            case .tcp(let host, let port):
                (channel, acceptedFuture) = try await bootstrap
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .connect(host: host, port: port, channelInitializer: initializer)
            case .unix(let path):
                (channel, acceptedFuture) = try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initializer)
            }
        } catch {
            throw CohortError.connectFailed(address: address.description, reason: "\(error)")
        }
        let handshakeDeadline = channel.channel.eventLoop.scheduleTask(in: timeout) {
            channel.channel.close(promise: nil)
        }
        let accept: ConnectAccept
        do {
            accept = try await acceptedFuture.get()
            handshakeDeadline.cancel()
        } catch {
            handshakeDeadline.cancel()
            // Through executeThenClose, which finishes the async channel's writer: NIO traps on
            // an async writer released unfinished (seen when a TLS handshake failed).
            try? await channel.executeThenClose { _, _ in }
            throw error is CohortError ? error : CohortError.connectFailed(address: address.description, reason: "\(error)")
        }
        guard accept.architecture == options.architecture.name else {
            try? await channel.executeThenClose { _, _ in }
            throw CohortError.rejected(.architectureRefused, reason:
                "daemon runs architecture '\(accept.architecture)', client was started with '\(options.architecture.name)'")
        }
        let hooks: any ClientSecurityHooks
        do {
            hooks = try options.architecture.makeClientHooks(member: accept.member, options: options.architectureOptions)
        } catch {
            try? await channel.executeThenClose { _, _ in }
            throw CohortError.rejected(.architectureRefused, reason: "architecture \(options.architecture.name): \(error)")
        }
        return try await channel.executeThenClose { inbound, outbound in
            let connection = CohortConnection(
                accept: accept, options: options, hooks: hooks, inbound: inbound, outbound: outbound)
            return try await body(connection)
        }
    }

    /// The client side of TLS: trust the given roots, verify the daemon's name (or IP address),
    /// present the client certificate if one is given.
    static func clientTLSContext(_ tls: TLSClientOptions) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .file(tls.trustRootsFile)
        configuration.certificateVerification = .fullVerification
        if let certificateFile = tls.certificateFile, let keyFile = tls.privateKeyFile {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Connects under a throw-away private name, asks for the daemon's status and disconnects.
    public static func status(
        of address: DaemonAddress, architecture: Architecture = .plain, credentials: Credentials = .none,
        tls: TLSClientOptions? = nil, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> DaemonStatus {
        try await request(.statusRequest, named: "status", at: address, architecture: architecture, credentials: credentials,
                          tls: tls, eventLoopGroup: eventLoopGroup)
    }

    /// Sends one request under a throw-away private name (no membership notifications) and
    /// returns the status the daemon answers with; a non-fatal error answer is thrown.
    private static func request(
        _ frame: ClientFrame, named prefix: String, at address: DaemonAddress, architecture: Architecture,
        credentials: Credentials, tls: TLSClientOptions?, eventLoopGroup: any EventLoopGroup
    ) async throws -> DaemonStatus {
        var options = ConnectionOptions(name: "\(prefix)-\(UInt32.random(in: 0...UInt32.max))")
        options.wantsMembership = false
        options.architecture = architecture
        options.credentials = credentials
        options.tls = tls
        return try await withConnection(to: address, options: options, eventLoopGroup: eventLoopGroup) { connection in
            try await connection.send(frame)
            for try await event in connection.events {
                switch event {
                case .status(let status): return status
                case .error(let code, let reason): throw CohortError.daemonError(code, reason: reason)
                case .message, .view, .flushRequest: continue
                }
            }
            throw CohortError.disconnected
        }
    }

    /// Fault injection: tells the daemon at `address` (started with `--fault-injection`) to drop
    /// every protocol message to and from the daemons named in `peers` (empty heals); returns
    /// its status afterwards. Throws ``CohortError/daemonError(_:reason:)`` with
    /// ``ErrorCode/notPermitted`` when the daemon does not allow it.
    public static func dropPeers(
        _ peers: [String], at address: DaemonAddress, architecture: Architecture = .plain, credentials: Credentials = .none,
        tls: TLSClientOptions? = nil, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> DaemonStatus {
        try await request(.dropPeers(peers), named: "fault", at: address, architecture: architecture, credentials: credentials,
                          tls: tls, eventLoopGroup: eventLoopGroup)
    }
}

/// An open session with a daemon. Sending methods may be called from any task; ``events`` has
/// one consumer.
public final class CohortConnection: Sendable {
    /// This client's identity (its private group is `member.privateGroup`).
    public let member: MemberID
    /// The architecture the daemon runs (checked equal to the client's).
    public let architecture: String
    /// Who the daemon authenticated this client as (``Principal/anonymous`` for method `none`).
    public let principal: Principal
    /// Everything the daemon delivers, in order. Ends when the daemon closes the session
    /// normally; throws ``CohortError/sessionEnded(_:reason:)`` when it ends it on an error.
    public let events: CohortEvents

    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let limits: Limits
    private let hooks: SharedHooks
    private let flushLayer: FlushLayer
    private let semantics: GroupSemantics
    /// Whether the architecture keys VS views, so every group is joined with VS.
    private let requiresVirtualSynchrony: Bool

    init(
        accept: ConnectAccept, options: ConnectionOptions, hooks: any ClientSecurityHooks,
        inbound: NIOAsyncChannelInboundStream<[DaemonFrame]>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) {
        member = accept.member
        architecture = accept.architecture
        principal = accept.principal
        limits = options.limits
        requiresVirtualSynchrony = hooks.requiresVirtualSynchrony
        self.hooks = SharedHooks(hooks)
        flushLayer = FlushLayer(member: accept.member, policy: options.flushPolicy)
        semantics = options.semantics
        self.outbound = outbound
        events = CohortEvents(inbound: inbound, hooks: self.hooks, flushLayer: flushLayer, outbound: outbound)
    }

    /// Joins a group with the connection's semantics (``ConnectionOptions/semantics``) or the
    /// one given; always with VS under an architecture that keys VS views (Integrated VS). The
    /// view arrives as an event: in a VS group once every member has flushed.
    public func join(_ group: String, semantics: GroupSemantics? = nil) async throws {
        let name = try groupName(group)
        if requiresVirtualSynchrony || (semantics ?? self.semantics) == .virtualSynchrony { flushLayer.adopt(name) }
        try await send(.join(name))
    }

    /// Answers a ``CohortEvent/flushRequest(_:)`` of a VS group: the application has sent
    /// everything that belongs to the current view, and sends nothing more in the group until
    /// the next view arrives. Does nothing without a request.
    public func flush(_ group: String) async throws {
        try await sendFlushOKs(flushLayer.flush(try groupName(group)))
    }

    /// Leaves a group. A view without this member arrives as an event.
    public func leave(_ group: String) async throws {
        try await send(.leave(try groupName(group)))
    }

    /// Multicasts `payload` to one or more groups (or private groups `#name#daemon`); to one
    /// group if it is a VS group, and only as its member and outside a flush (else throws
    /// ``CohortError/virtualSynchrony(_:)``).
    public func multicast(
        _ payload: [UInt8], to groups: [String], service: ServiceType = .agreed, messageType: UInt16 = 0
    ) async throws {
        try await multicast(batch: [try message(payload, to: groups, service: service, messageType: messageType)])
    }

    /// Multicasts UTF-8 text to one group.
    public func multicast(_ text: String, to group: String, service: ServiceType = .agreed, messageType: UInt16 = 0) async throws {
        try await multicast(Array(text.utf8), to: [group], service: service, messageType: messageType)
    }

    /// Sends several prepared messages in one batch: encoded into one buffer, one hop to the
    /// event loop, one write. Messages of VS groups are tagged with their view and sealed here;
    /// if one is refused, none of the batch is sent.
    public func multicast(batch messages: [PreparedMessage]) async throws {
        guard messages.contains(where: \.needsFlushLayer) else {
            return try await send(messages.lazy.map { ClientFrame.multicast($0.message) })
        }
        var frames: [ClientFrame] = []
        frames.reserveCapacity(messages.count)
        var tagged: [GroupName] = []
        let outcome: Result<Void, any Error>
        do {
            for prepared in messages {
                guard prepared.needsFlushLayer else {
                    frames.append(.multicast(prepared.message))
                    continue
                }
                let wrapped: (message: OutgoingMessage, group: GroupName)?
                do {
                    wrapped = try flushLayer.wrap(prepared.message)
                } catch {
                    throw CohortError.virtualSynchrony(error)
                }
                guard let (message, group) = wrapped else {
                    frames.append(.multicast(try sealed(prepared.message)))
                    continue
                }
                tagged.append(group)
                frames.append(.multicast(try sealed(message)))
            }
            try await send(frames)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        // Written or not: the flush-oks these held back may go now, after them.
        try await sendFlushOKs(tagged.flatMap(flushLayer.written))
        try outcome.get()
    }

    /// Checks a message (names, size) and passes it through the architecture's `seal`, ready
    /// for ``multicast(batch:)`` (a message of a VS group is sealed when it is sent: its view
    /// tag is part of what is sealed).
    public func message(
        _ payload: [UInt8], to groups: [String], service: ServiceType = .agreed, messageType: UInt16 = 0
    ) throws -> PreparedMessage {
        guard !groups.isEmpty, groups.count <= limits.groupsPerMessageMax else {
            throw CohortError.invalidName("a message needs 1 to \(limits.groupsPerMessageMax) groups, got \(groups.count)")
        }
        let message = try checked(OutgoingMessage(
            service: service, messageType: messageType, groups: try groups.map(groupName), payload: payload))
        if message.groups.contains(where: flushLayer.governs) {
            return PreparedMessage(message: message, needsFlushLayer: true)
        }
        return PreparedMessage(message: try sealed(message), needsFlushLayer: false)
    }

    /// Asks the daemon for its status; the answer arrives as ``CohortEvent/status(_:)``.
    public func requestStatus() async throws { try await send(.statusRequest) }

    /// Fault injection (daemons started with `--fault-injection` only): the daemon drops every
    /// protocol message to and from the named peer daemons until told otherwise (an empty list
    /// heals). The answer arrives as ``CohortEvent/status(_:)``, or as an
    /// ``CohortEvent/error(_:reason:)`` with ``ErrorCode/notPermitted``.
    public func dropPeers(_ peers: [String]) async throws { try await send(.dropPeers(peers)) }

    /// Ends the session gracefully; ``events`` then finishes.
    public func disconnect() async throws {
        try await send(.disconnect)
        outbound.finish()
    }

    // MARK: - Internals

    /// Seals and sends flush-oks of the flush layer.
    private func sendFlushOKs(_ messages: [OutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        try await send(try messages.map { ClientFrame.multicast(try sealed($0)) })
    }

    fileprivate func send(_ frame: ClientFrame) async throws {
        try await send(CollectionOfOne(frame))
    }

    private func send(_ frames: some Collection<ClientFrame>) async throws {
        do {
            try await outbound.write(ByteBuffer(encoding: frames))
        } catch {
            throw CohortError.disconnected
        }
    }

    private func groupName(_ name: String) throws -> GroupName {
        do {
            return try GroupName(name, limits: limits)
        } catch {
            throw CohortError.invalidName(error.description)
        }
    }

    private func checked(_ message: OutgoingMessage) throws -> OutgoingMessage {
        guard message.payload.count <= limits.payloadBytesMax else {
            throw CohortError.tooLarge(bytes: message.payload.count, max: limits.payloadBytesMax)
        }
        return message
    }

    private func sealed(_ message: OutgoingMessage) throws -> OutgoingMessage {
        var message = message
        do {
            try hooks.seal(&message)
        } catch {
            throw CohortError.refused(error.reason)
        }
        return message
    }
}

/// A message checked against the limits and sealed by the connection's architecture, made by
/// ``CohortConnection/message(_:to:service:messageType:)`` and sent with
/// ``CohortConnection/multicast(batch:)``. Sealing happens exactly once.
public struct PreparedMessage: Sendable {
    /// The message as it goes on the wire (for a VS group: before its view tag and sealing).
    public let message: OutgoingMessage
    /// A message of a VS group: tagged and sealed when sent.
    let needsFlushLayer: Bool
}

/// The architecture hooks of one connection, shared by its senders and its event consumer.
final class SharedHooks: Sendable {
    private let hooks: Mutex<any ClientSecurityHooks>
    init(_ hooks: any ClientSecurityHooks) { self.hooks = Mutex(hooks) }

    func seal(_ message: inout OutgoingMessage) throws(ArchitectureError) {
        try hooks.withLock { (hooks) throws(ArchitectureError) in try hooks.seal(&message) }
    }
    /// Runs `body` with the hooks locked (once for a batch of messages).
    func withHooks<Result>(_ body: (inout any ClientSecurityHooks) -> Result) -> Result {
        hooks.withLock { hooks in body(&hooks) }
    }
}

/// The events of one connection (single consumer).
public struct CohortEvents: AsyncSequence, Sendable {
    /// Each element is one event.
    public typealias Element = CohortEvent
    let inbound: NIOAsyncChannelInboundStream<[DaemonFrame]>
    let hooks: SharedHooks
    let flushLayer: FlushLayer
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

    /// Creates the iterator; call once.
    public func makeAsyncIterator() -> Iterator {
        Iterator(base: inbound.makeAsyncIterator(), hooks: hooks, flushLayer: flushLayer, outbound: outbound)
    }

    /// Iterates events, applying the architecture's hooks to messages and views.
    public struct Iterator: AsyncIteratorProtocol {
        var base: NIOAsyncChannelInboundStream<[DaemonFrame]>.AsyncIterator
        let hooks: SharedHooks
        let flushLayer: FlushLayer
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        /// The events of the last read not yet handed out, last first (so that each is moved
        /// out with `popLast`, not copied).
        var pending: [CohortEvent] = []
        /// A fatal frame of the last read: thrown once the events before it are handed out.
        var failure: CohortError?
        var finished = false

        init(
            base: NIOAsyncChannelInboundStream<[DaemonFrame]>.AsyncIterator, hooks: SharedHooks, flushLayer: FlushLayer,
            outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        ) {
            self.base = base
            self.hooks = hooks
            self.flushLayer = flushLayer
            self.outbound = outbound
        }

        /// Passes the pending events through the flush layer and sends the flush-oks it answers
        /// with (automatic flushes, joiners' flush-oks).
        private mutating func runFlushLayer() async throws {
            let (events, sends) = flushLayer.filter(pending.reversed())
            pending = events.reversed()
            // The views the flush layer installed: the architecture may let go of older keys.
            let installed = events.compactMap { event -> GroupView? in if case .view(let view) = event { view } else { nil } }
            if !installed.isEmpty { hooks.withHooks { hooks in installed.forEach { hooks.viewInstalled($0) } } }
            guard !sends.isEmpty else { return }
            var frames: [ClientFrame] = []
            for var message in sends {
                // A flush-ok for a view without a key (its daemons' agreement was cut short) is
                // not sent: a newer view follows, and the flush completes there.
                guard (try? hooks.seal(&message)) != nil else { continue }
                frames.append(.multicast(message))
            }
            guard !frames.isEmpty else { return }
            // A write that fails means the connection is going (the application disconnected, or
            // the daemon closed it): the stream ends with it, and a flush-ok no longer matters.
            try? await outbound.write(ByteBuffer(encoding: frames))
        }

        /// The next event; `nil` once the daemon closed the session.
        public mutating func next() async throws -> CohortEvent? {
            while true {
                if let event = pending.popLast() { return event }
                if let failure {
                    self.failure = nil
                    finished = true
                    throw failure
                }
                if finished { return nil }
                // The batch is held once (no second reference), so that taking its frames
                // out does not copy the array.
                var batch: [DaemonFrame]
                do {
                    guard let frames = try await base.next() else {
                        finished = true
                        return nil
                    }
                    batch = frames
                } catch let error as WireError {
                    throw CohortError.protocolViolation(error.description)
                } catch {
                    throw CohortError.disconnected
                }
                (pending, failure) = hooks.events(from: &batch)
                if flushLayer.hasGroups { try await runFlushLayer() }
            }
        }
    }
}

extension SharedHooks {
    /// The events of one read's frames, last first, with the architecture's hooks applied under
    /// one lock; and the error of the first fatal frame, if one ends the session (the events
    /// after it are dropped).
    func events(from frames: inout [DaemonFrame]) -> (events: [CohortEvent], failure: CohortError?) {
        withHooks { hooks in
            var events: [CohortEvent] = []
            events.reserveCapacity(frames.count)
            var failure: CohortError?
            // In the daemon's order: an architecture's replay window must see a sender's
            // messages in the order they were sealed (opened last first, a batch of 128 lost
            // the oldest 64 as "too old"; found by `cohort demo` under integrated-vs). Each
            // frame is moved out of the reversed array with `popLast`, without a copy, and the
            // events are reversed at the end into the order `popLast` wants.
            frames.reverse()
            loop: while let frame = frames.popLast() {
                switch consume frame {
                case .message(var message):
                    do throws(ArchitectureError) {
                        try hooks.open(&message)
                        events.append(.message(message))
                    } catch where error.kind == .notForThisMember {
                        // Sealed under a key of a view this member is not in: the flush layer
                        // would discard it as well.
                    } catch {
                        events.append(.error(.architectureRefused, reason: "message from \(message.sender) dropped: \(error.reason)"))
                    }
                case .view(var view):
                    do throws(ArchitectureError) {
                        try hooks.install(&view)
                        events.append(.view(view))
                    } catch {
                        events.append(.error(.architectureRefused, reason: "view of \(view.group) refused: \(error.reason)"))
                    }
                case .status(let status):
                    events.append(.status(status))
                case .error(let code, let fatal, let reason):
                    if fatal {
                        failure = .sessionEnded(code, reason: reason)
                        break loop
                    }
                    events.append(.error(code, reason: reason))
                case .reject(let code, let reason):
                    failure = .sessionEnded(code, reason: reason)
                    break loop
                case .accept, .authChallenge:
                    failure = .protocolViolation("unexpected handshake frame after the handshake")
                    break loop
                }
            }
            events.reverse()
            return (events, failure)
        }
    }
}
