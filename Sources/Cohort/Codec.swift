import CohortCore
import CohortTransport
import NIOCore

extension ByteBuffer {
    /// `frames` encoded back to back with the core's codec: one buffer, one write (its room
    /// reserved first, so that a batch of large messages is not copied as the buffer grows).
    init(encoding frames: some Collection<ClientFrame>) {
        var writer = WireWriter(capacity: frames.reduce(0) { $0 + $1.encodedCapacityHint })
        for frame in frames { frame.encode(into: &writer) }
        self.init(bytes: writer.bytes)
    }
}

/// Sends the connect frame when the channel becomes active and completes `accepted` with the
/// daemon's answer; frames after the accept pass through to the async channel.
final class HandshakeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = [DaemonFrame]
    typealias InboundOut = [DaemonFrame]
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let request: ConnectRequest
    let accepted: EventLoopPromise<ConnectAccept>
    private var done = false

    init(request: ConnectRequest, accepted: EventLoopPromise<ConnectAccept>) {
        self.request = request
        self.accepted = accepted
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(encoding: [ClientFrame.connect(request)])), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        let frames = unwrapInboundIn(data)
        guard let first = frames.first else { return }
        done = true
        switch first {
        case .accept(let accept):
            accepted.succeed(accept)
            // Frames that came in the same read go on; then out of the way of every later frame.
            if frames.count > 1 { context.fireChannelRead(wrapInboundOut(Array(frames.dropFirst()))) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
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

    func handlerRemoved(context: ChannelHandlerContext) {
        // A channel that never connected is torn down without becoming inactive.
        if !done {
            done = true
            accepted.fail(CohortError.disconnected)
        }
    }
}
