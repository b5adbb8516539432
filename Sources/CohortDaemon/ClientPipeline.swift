import CohortCore
import CohortTransport
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import CohortSecurity

/// Connects one client channel to the daemon runtime.
final class ClientSessionHandler: ChannelInboundHandler {
    typealias InboundIn = [ClientFrame]

    private let runtime: DaemonRuntime
    private let logger: Logger
    private var session: SessionID?
    private var failed = false
    /// A TLS connection: the session opens when the TLS handshake completes.
    private let tls: Bool
    private var tlsDeadline: Scheduled<Void>?

    init(runtime: DaemonRuntime, logger: Logger, tls: Bool = false) {
        self.runtime = runtime
        self.logger = logger
        self.tls = tls
    }

    func channelActive(context: ChannelHandlerContext) {
        if tls {
            // A TLS handshake that stalls gets the same deadline as a Cohort handshake.
            let channel = context.channel
            tlsDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(runtime.handshakeTimeout)) {
                channel.close(promise: nil)
            }
        } else {
            session = runtime.open(context.channel)
        }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if tls, session == nil, case TLSUserEvent.handshakeCompleted = event {
            tlsDeadline?.cancel()
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
            let principal = (try? certificate?.toDERBytes()).flatMap { certificatePrincipal(derEncoded: $0) }
            session = runtime.open(context.channel, tls: true, certificatePrincipal: principal)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = runtime.now
        for frame in unwrapInboundIn(data) {
            // The core ignores frames of a session it is closing (e.g. after `disconnect`).
            guard let session, !failed else { return }
            runtime.countSubmission(frame, from: session, now: now)
            runtime.handle(.frame(session, frame), now: now)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if tls, session == nil {
            // An expired, untrusted or wrong-CA certificate, or not TLS at all: no session.
            tlsDeadline?.cancel()
            logger.notice("TLS handshake failed", metadata: ["audit": "auth", "method": "certificate", "error": "\(error)"])
            context.close(promise: nil)
            return
        }
        guard let session, !failed else { return }
        if let wireError = error as? WireError {
            failed = true
            logger.notice("malformed client input", metadata: ["session": "\(session)", "error": "\(wireError)"])
            runtime.handle(.malformedFrame(session, wireError))
        } else {
            logger.debug("client connection error", metadata: ["session": "\(session)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let session, context.channel.isWritable { runtime.handle(.drained(session)) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tlsDeadline?.cancel()
        if let session { runtime.handle(.sessionClosed(session)) }
        session = nil
        context.fireChannelInactive()
    }
}
