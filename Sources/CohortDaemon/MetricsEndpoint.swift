import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import Prometheus

/// A minimal HTTP endpoint serving the Prometheus text format at `GET /metrics`.
public final class MetricsEndpoint: Sendable {
    /// The port actually bound.
    public let port: Int
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup

    private init(port: Int, channel: any Channel, group: MultiThreadedEventLoopGroup) {
        self.port = port
        self.channel = channel
        self.group = group
    }

    /// Starts serving `registry` on `host:port` (port 0 picks a free one).
    public static func start(registry: PrometheusCollectorRegistry, host: String, port: Int, logger: Logger) async throws -> MetricsEndpoint {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry))
                }
            }
            .bind(host: host, port: port).get()
        let bound = channel.localAddress?.port ?? port
        logger.info("metrics endpoint serving", metadata: ["address": "http://\(host):\(bound)/metrics"])
        return MetricsEndpoint(port: bound, channel: channel, group: group)
    }

    /// Stops serving.
    public func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

private final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let registry: PrometheusCollectorRegistry
    private var path = ""
    private var keepAlive = false

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.uri
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            var body: [UInt8] = []
            let status: HTTPResponseStatus
            if path == "/metrics" || path.hasPrefix("/metrics?") {
                registry.emit(into: &body)
                status = .ok
            } else {
                body = Array("not found; try /metrics\n".utf8)
                status = .notFound
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; version=0.0.4")
            headers.add(name: "Content-Length", value: "\(body.count)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            let keepAlive = self.keepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}
