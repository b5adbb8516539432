public import CohortCore
public import NIOCore

/// Splits a byte stream into length-prefixed frames and decodes them with the core's codec.
/// Every complete frame of one read travels up the pipeline as one array, so the pipeline's
/// per-event cost is paid per read, not per message. A decoding error is thrown once, after the
/// frames before it have been passed on. The decoder keeps a ``DecodeMemo`` for its stream.
///
/// Inlinable so that it is specialised for each frame type where it is used.
public struct FrameBatchDecoder<Frame>: ByteToMessageDecoder {
    public typealias InboundOut = [Frame]

    @usableFromInline let frameBytesMax: Int
    @usableFromInline let decodeFrame: (UnsafeRawBufferPointer, inout DecodeMemo) throws(WireError) -> Frame
    @usableFromInline var memo = DecodeMemo()

    /// A decoder of frames up to `frameBytesMax` bytes, each decoded by `decodeFrame`.
    @inlinable
    public init(frameBytesMax: Int, decodeFrame: @escaping (UnsafeRawBufferPointer, inout DecodeMemo) throws(WireError) -> Frame) {
        self.frameBytesMax = frameBytesMax
        self.decodeFrame = decodeFrame
    }

    @inlinable
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        // Every complete frame of the buffer in one pass over its bytes (one closure call and
        // one reader-index move per read, not per frame).
        var frames: [Frame] = []
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
        if !frames.isEmpty { context.fireChannelRead(wrapInboundOut(frames)) }
        if let failure { throw failure }
        return .needMoreData
    }

    @inlinable
    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

extension FrameBatchDecoder where Frame == ClientFrame {
    /// Decodes client frames (the daemon's side).
    @inlinable
    public init(limits: Limits) {
        self.init(frameBytesMax: limits.frameBytesMax) { body, memo throws(WireError) in
            try ClientFrame.decode(body: body, limits: limits, memo: &memo)
        }
    }
}

extension FrameBatchDecoder where Frame == DaemonFrame {
    /// Decodes daemon frames (the client's side).
    @inlinable
    public init(limits: Limits) {
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
