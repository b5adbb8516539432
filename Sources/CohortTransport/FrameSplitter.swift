public import CohortCore
public import NIOCore

/// Splits a byte stream into length-prefixed frames and decodes them with the core's codec,
/// in the bytes of each read where they arrived. Every complete frame of one read travels up the
/// pipeline as one array, so the pipeline's per-event cost is paid per read, not per message. A
/// decoding error is passed on (`fireErrorCaught`) once, after the frames before it; what arrives
/// after it is dropped. The handler keeps a ``DecodeMemo`` for its stream.
///
/// Why not NIO's `ByteToMessageHandler`: when a read ends inside a frame (nearly every read of a
/// stream of small frames), it appends the whole next read to the leftover bytes — a copy of
/// every byte received. Here only the frame the last read ended in is put together (its start
/// copied out of that read, then as many bytes of the next read as complete it); every other
/// frame is decoded in place.
public final class FrameBatchHandler<Frame>: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = [Frame]

    private let frameBytesMax: Int
    private let decodeFrame: (UnsafeRawBufferPointer, inout DecodeMemo) throws(WireError) -> Frame
    private var memo = DecodeMemo()
    /// The start of the frame the last read ended in; empty between frames.
    private var partial = ByteBuffer()
    /// A frame did not decode: the stream is dropped from there on.
    private var failed = false

    /// A handler of frames up to `frameBytesMax` bytes, each decoded by `decodeFrame`.
    public init(frameBytesMax: Int, decodeFrame: @escaping (UnsafeRawBufferPointer, inout DecodeMemo) throws(WireError) -> Frame) {
        self.frameBytesMax = frameBytesMax
        self.decodeFrame = decodeFrame
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var input = unwrapInboundIn(data)
        var frames: [Frame] = []
        var failure = partial.readableBytes > 0 ? complete(from: &input, into: &frames) : nil
        if failure == nil, partial.readableBytes == 0 {
            failure = decodeFrames(in: &input, into: &frames)
            if failure == nil, input.readableBytes > 0 { partial.writeBuffer(&input) }
        }
        if !frames.isEmpty { context.fireChannelRead(wrapInboundOut(frames)) }
        if let failure {
            failed = true
            partial = ByteBuffer()
            context.fireErrorCaught(failure)
        }
    }

    /// Adds to ``partial`` the bytes of `input` that its frame still lacks, and decodes the frame
    /// once it is whole.
    private func complete(from input: inout ByteBuffer, into frames: inout [Frame]) -> WireError? {
        let prefixBytes = WireProtocol.lengthPrefixBytes
        do throws(WireError) {
            while input.readableBytes > 0 {
                // First the length prefix, then the rest of the frame it announces.
                let wanted = try partialFrameBytes() ?? prefixBytes
                var piece = input.readSlice(length: min(wanted - partial.readableBytes, input.readableBytes))!
                partial.writeBuffer(&piece)
                guard partial.readableBytes == wanted, wanted > prefixBytes else { continue }
                let failure = decodeFrames(in: &partial, into: &frames)
                // Keep the storage for the next frame that straddles two reads, unless it grew large.
                if partial.capacity > 1 << 20 { partial = ByteBuffer() } else { partial.clear() }
                return failure
            }
            // The length prefix alone may already be too large.
            _ = try partialFrameBytes()
            return nil
        } catch {
            return error
        }
    }

    /// The size of the frame begun in ``partial`` (prefix included), once its prefix is there.
    private func partialFrameBytes() throws(WireError) -> Int? {
        try partial.withUnsafeReadableBytes { (prefix) throws(WireError) in
            try WireProtocol.bodyLength(prefix: prefix, frameBytesMax: frameBytesMax).map { WireProtocol.lengthPrefixBytes + $0 }
        }
    }

    /// Decodes every complete frame at the front of `buffer` (in one pass over its bytes, one
    /// reader-index move) and returns the error of the first that does not decode, if one does not.
    private func decodeFrames(in buffer: inout ByteBuffer, into frames: inout [Frame]) -> WireError? {
        var consumed = 0
        var failure: WireError?
        buffer.withUnsafeReadableBytes { bytes in
            let prefixBytes = WireProtocol.lengthPrefixBytes
            do throws(WireError) {
                while let length = try WireProtocol.bodyLength(
                    prefix: UnsafeRawBufferPointer(rebasing: bytes[consumed...]), frameBytesMax: frameBytesMax),
                    bytes.count - consumed >= prefixBytes + length {
                    let body = UnsafeRawBufferPointer(rebasing: bytes[(consumed + prefixBytes)..<(consumed + prefixBytes + length)])
                    frames.append(try decodeFrame(body, &memo))
                    consumed += prefixBytes + length
                }
            } catch {
                failure = error
            }
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        return failure
    }
}

extension FrameBatchHandler where Frame == ClientFrame {
    /// Decodes client frames (the daemon's side).
    public convenience init(limits: Limits) {
        self.init(frameBytesMax: limits.frameBytesMax) { body, memo throws(WireError) in
            try ClientFrame.decode(body: body, limits: limits, memo: &memo)
        }
    }
}

extension FrameBatchHandler where Frame == DaemonFrame {
    /// Decodes daemon frames (the client's side).
    public convenience init(limits: Limits) {
        self.init(frameBytesMax: limits.frameBytesMax) { body, memo throws(WireError) in
            try DaemonFrame.decode(body: body, limits: limits, memo: &memo)
        }
    }
}

/// Where a daemon serves clients: `host:port` or `unix:PATH`.
public enum DaemonAddress: Hashable, Sendable, CustomStringConvertible {
    /// A TCP address.
    case tcp(host: String, port: Int)
    /// A Unix domain socket path (local IPC).
    case unix(path: String)

    /// Parses `host:port`, `[v6]:port` or `unix:PATH`.
    public init(parsing text: String) throws(AddressError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw AddressError(text: text) }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port)
        else { throw AddressError(text: text) }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw AddressError(text: text) }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// A daemon address that does not parse.
public struct AddressError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The text given.
    public var text: String
    public var description: String { "invalid daemon address '\(text)': expected host:port or unix:PATH" }
}
