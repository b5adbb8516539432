import CohortCore
import CohortSecurity
import CohortTransport
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

extension ByteBuffer {
    /// `frames` encoded back to back with the core's codec: one buffer, one write (its room
    /// reserved first, so that a batch of large messages is not copied as the buffer grows).
    init(encoding frames: some Collection<ClientFrame>) {
        var writer = WireWriter(capacity: frames.reduce(0) { $0 + $1.encodedCapacityHint })
        for frame in frames { frame.encode(into: &writer) }
        self.init(bytes: writer.bytes)
    }
}

/// Runs the client's side of the handshake: sends the connect frame (with the authentication
/// method's first message) when the channel becomes active, answers the daemon's challenges,
/// checks its final authentication data, and completes `accepted` with the daemon's answer;
/// frames after the accept pass through to the async channel.
final class HandshakeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = [DaemonFrame]
    typealias InboundOut = [DaemonFrame]
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var request: ConnectRequest
    private var authenticator: any ClientAuthenticator
    let accepted: EventLoopPromise<ConnectAccept>
    private var done = false
    /// Over TLS, the connect frame waits for the TLS handshake: NIOSSL would buffer it, without
    /// backpressure, until then.
    private let tls: Bool

    init(request: ConnectRequest, authenticator: any ClientAuthenticator, tls: Bool, accepted: EventLoopPromise<ConnectAccept>) {
        self.request = request
        self.authenticator = authenticator
        self.tls = tls
        self.accepted = accepted
    }

    func channelActive(context: ChannelHandlerContext) {
        if !tls { sendConnect(context: context) }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if tls, case TLSUserEvent.handshakeCompleted = event { sendConnect(context: context) }
        context.fireUserInboundEventTriggered(event)
    }

    private func sendConnect(context: ChannelHandlerContext) {
        request.authMethod = authenticator.method
        request.authData = authenticator.firstMessage()
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(encoding: [ClientFrame.connect(request)])), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        let frames = unwrapInboundIn(data)
        guard let first = frames.first else { return }
        switch first {
        case .authChallenge(let method, let challenge) where method == authenticator.method:
            answer(challenge, context: context)
        case .accept(let accept):
            do throws(ClientAuthenticationError) {
                try authenticator.finish(accept.authData)
            } catch {
                return fail(CohortError.authenticationFailed(error.reason), context: context)
            }
            done = true
            accepted.succeed(accept)
            // Frames that came in the same read go on; then out of the way of every later frame.
            if frames.count > 1 { context.fireChannelRead(wrapInboundOut(Array(frames.dropFirst()))) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        case .reject(let code, let reason):
            fail(CohortError.rejected(code, reason: reason), context: context)
        case .error(let code, _, let reason):
            fail(CohortError.sessionEnded(code, reason: reason), context: context)
        case let other:
            fail(CohortError.protocolViolation("expected accept, reject or a \(authenticator.method) challenge, got \(other)"), context: context)
        }
    }

    /// Answers a challenge off the event loop (a password method runs PBKDF2: tens of
    /// milliseconds that would stall every other channel of the loop), then sends the answer.
    private func answer(_ challenge: [UInt8], context: ChannelHandlerContext) {
        let authenticator = self.authenticator
        let answered = NIOThreadPool.singleton.runIfActive(eventLoop: context.eventLoop) {
            var authenticator = authenticator
            let response = try authenticator.respond(to: challenge)
            return Answer(authenticator: authenticator, response: response)
        }
        answered.assumeIsolated().whenComplete { result in
            guard !self.done else { return }
            switch result {
            case .success(let answer):
                self.authenticator = answer.authenticator
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(encoding: [ClientFrame.authResponse(answer.response)])), promise: nil)
            case .failure(let error as ClientAuthenticationError):
                self.fail(CohortError.authenticationFailed(error.reason), context: context)
            case .failure(let error):
                self.fail(CohortError.authenticationFailed("\(error)"), context: context)
            }
        }
    }

    /// A TLS failure as a person reads it: what the alert means, then BoringSSL's words.
    static func readable(tlsError error: any Error) -> String {
        let text = "\(error)"
        let meanings = [
            ("CERTIFICATE_EXPIRED", "the daemon refused this client's certificate: it has expired"),
            ("UNKNOWN_CA", "the daemon refused this client's certificate: it is not from a CA the daemon trusts"),
            ("CERTIFICATE_REQUIRED", "the daemon requires a client certificate"),
            ("BAD_CERTIFICATE", "the daemon refused this client's certificate"),
            ("CERTIFICATE_VERIFY_FAILED", "the daemon's certificate did not verify against the trusted CAs, or does not name this host"),
        ]
        guard let meaning = meanings.first(where: { text.contains($0.0) })?.1 else { return text }
        return "\(meaning) (\(text))"
    }

    private struct Answer: Sendable {
        var authenticator: any ClientAuthenticator
        var response: [UInt8]
    }

    private func fail(_ error: CohortError, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        accepted.fail(error)
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            switch error {
            case is WireError: accepted.fail(CohortError.protocolViolation("\(error)"))
            case is NIOSSLError, is BoringSSLError: accepted.fail(CohortError.tlsFailed(Self.readable(tlsError: error)))
            default: accepted.fail(error)
            }
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            accepted.fail(CohortError.disconnected)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A channel that never connected is torn down without becoming inactive.
        if !done {
            done = true
            accepted.fail(CohortError.disconnected)
        }
    }
}
