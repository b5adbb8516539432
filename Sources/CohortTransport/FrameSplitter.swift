public import CohortCore
public import NIOCore

/// Length-prefixed framing over a `ByteBuffer`, shared by the daemon and the client library.
public enum FrameSplitter {
    /// Decodes the next complete frame in `buffer` with `decode`, consuming it; `nil` while the
    /// frame is incomplete. Throws ``WireError`` for an oversized or undecodable frame.
    public static func next<Frame>(
        from buffer: inout ByteBuffer, frameBytesMax: Int,
        decode: (UnsafeRawBufferPointer) throws(WireError) -> Frame
    ) throws(WireError) -> Frame? {
        let result: Result<Frame?, WireError> = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(WireError) -> Frame? in
                guard let length = try WireProtocol.bodyLength(prefix: bytes, frameBytesMax: frameBytesMax),
                      bytes.count >= WireProtocol.lengthPrefixBytes + length
                else { return nil }
                let body = UnsafeRawBufferPointer(rebasing: bytes[WireProtocol.lengthPrefixBytes..<(WireProtocol.lengthPrefixBytes + length)])
                return try decode(body)
            }
        }
        guard let frame = try result.get() else { return nil }
        let length = Int(buffer.getInteger(at: buffer.readerIndex, as: UInt32.self)!)
        buffer.moveReaderIndex(forwardBy: WireProtocol.lengthPrefixBytes + length)
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
