import CohortCore
import CohortTransport
import NIOCore

/// Decodes daemon frames with the core's codec.
struct DaemonFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = DaemonFrame
    let limits: Limits

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try FrameSplitter.next(from: &buffer, frameBytesMax: limits.frameBytesMax, decode: { body throws(WireError) in
            try DaemonFrame.decode(body: body, limits: limits)
        }) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Encodes client frames with the core's codec.
struct ClientFrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = ClientFrame

    func encode(data: ClientFrame, out: inout ByteBuffer) throws {
        out.writeBytes(data.encoded())
    }
}

/// Sends the connect frame when the channel becomes active and completes `accepted` with the
/// daemon's answer; frames after the accept pass through to the async channel.
final class HandshakeHandler: ChannelDuplexHandler {
    typealias InboundIn = DaemonFrame
    typealias InboundOut = DaemonFrame
    typealias OutboundIn = ClientFrame
    typealias OutboundOut = ClientFrame

    private let request: ConnectRequest
    let accepted: EventLoopPromise<ConnectAccept>
    private var done = false

    init(request: ConnectRequest, accepted: EventLoopPromise<ConnectAccept>) {
        self.request = request
        self.accepted = accepted
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(.connect(request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        done = true
        switch unwrapInboundIn(data) {
        case .accept(let accept):
            accepted.succeed(accept)
        case .reject(let code, let reason):
            accepted.fail(CohortError.rejected(code, reason: reason))
            context.close(promise: nil)
        case .error(let code, _, let reason):
            accepted.fail(CohortError.sessionEnded(code, reason: reason))
            context.close(promise: nil)
        case let other:
            accepted.fail(CohortError.protocolViolation("expected accept or reject, got \(other)"))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            accepted.fail(error is WireError ? CohortError.protocolViolation("\(error)") : error)
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
}
