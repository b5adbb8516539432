public import CohortCore
public import NIOCore

/// Length-prefixed framing over a `ByteBuffer`, shared by the daemon and the client library.
public enum FrameSplitter {
    /// Decodes the next complete frame in `buffer` with `decode`, consuming it; `nil` while the
    /// frame is incomplete. Throws ``WireError`` for an oversized or undecodable frame.
    ///
    /// Inlinable so that it is specialised for each frame type in the calling module: this runs
    /// once per message on every hot path.
    @inlinable
    public static func next<Frame>(
        from buffer: inout ByteBuffer, frameBytesMax: Int,
        decode: (UnsafeRawBufferPointer) throws(WireError) -> Frame
    ) throws(WireError) -> Frame? {
        let prefixBytes = WireProtocol.lengthPrefixBytes
        guard let prefix = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let length = Int(prefix)
        guard length >= 1 else { throw .truncated }
        guard length <= frameBytesMax else { throw .frameTooLarge(length: length, max: frameBytesMax) }
        guard buffer.readableBytes >= prefixBytes + length else { return nil }
        let frame: Frame
        do {
            frame = try buffer.withUnsafeReadableBytes { bytes in
                try decode(UnsafeRawBufferPointer(rebasing: bytes[prefixBytes..<(prefixBytes + length)]))
            }
        } catch let error as WireError {
            throw error
        } catch {
            throw .invalidValue("\(error)")
        }
        buffer.moveReaderIndex(forwardBy: prefixBytes + length)
        return frame
    }
}

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
        var frames: [Frame] = []
        defer { if !frames.isEmpty { context.fireChannelRead(wrapInboundOut(frames)) } }
        while let frame = try FrameSplitter.next(from: &buffer, frameBytesMax: frameBytesMax, decode: { body throws(WireError) in
            try decodeFrame(body, &memo)
        }) {
            frames.append(frame)
        }
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
