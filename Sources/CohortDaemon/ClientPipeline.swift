import CohortCore
import CohortTransport
import Logging
import NIOCore

/// Connects one client channel to the daemon runtime.
final class ClientSessionHandler: ChannelInboundHandler {
    typealias InboundIn = [ClientFrame]

    private let runtime: DaemonRuntime
    private let logger: Logger
    private var session: SessionID?
    private var failed = false

    init(runtime: DaemonRuntime, logger: Logger) {
        self.runtime = runtime
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        session = runtime.open(context.channel)
        context.fireChannelActive()
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
        guard let session, !failed else { return }
        if let wireError = error as? WireError {
            failed = true
            logger.notice("malformed client input", metadata: ["session": "\(session)", "error": "\(wireError)"])
            runtime.handle(.malformedFrame(session, wireError))
        } else if error is ByteToMessageDecoderError {
            // Data after a decoding error: the session is already being closed.
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
        if let session { runtime.handle(.sessionClosed(session)) }
        session = nil
        context.fireChannelInactive()
    }
}
