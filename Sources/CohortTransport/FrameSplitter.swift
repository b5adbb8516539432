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
