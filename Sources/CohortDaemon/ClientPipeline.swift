import CohortCore
import CohortTransport
import Logging
import NIOCore

/// Splits the client byte stream into frames and decodes them with the core's codec. Every
/// complete frame of one read travels up the pipeline as one array, so the per-event cost of
/// the pipeline is paid per read, not per message. A decoding error is thrown once, after the
/// frames before it; the session handler turns it into a typed error frame.
struct ClientFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = [ClientFrame]
    let limits: Limits
    var memo = DecodeMemo()

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        var frames: [ClientFrame] = []
        defer { if !frames.isEmpty { context.fireChannelRead(wrapInboundOut(frames)) } }
        while let frame = try FrameSplitter.next(from: &buffer, frameBytesMax: limits.frameBytesMax, decode: { body throws(WireError) in
            try ClientFrame.decode(body: body, limits: limits, memo: &memo)
        }) {
            frames.append(frame)
        }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

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
            runtime.countSubmission(frame)
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
