/// What travels on a link between two daemons: a hello first, then protocol messages and
/// heartbeats (see `docs/wire-protocol.md`, "Daemon links").
///
/// Links are one-way TCP connections: each daemon dials every other daemon of the configuration
/// and writes only on the connections it dialed, reads only on those it accepted. The dialer
/// opens with ``Hello``, naming itself, signed with its key when the configuration lists the
/// daemons' keys; the acceptor refuses a name outside the configured set, and a hello that is
/// unsigned, signed by another key, addressed to another daemon, stale or replayed
/// (`docs/daemon-authentication.md`).
/// Every frame is a 32-bit big-endian length, a kind byte and its fields.
public enum PeerLinkFrame: Hashable, Sendable {
    /// The dialer's identity, the first frame of a link.
    case hello(Hello)
    /// A protocol message of the ring.
    case message(PeerMessage)
    /// Nothing to say: the link is alive.
    case heartbeat

    /// The first frame of a link.
    public struct Hello: Hashable, Sendable {
        /// Identifies the daemon-link protocol ("COHD").
        public static let magic: UInt32 = 0x434F_4844
        /// The link protocol version this build speaks (2: hellos carry the acceptor, a time,
        /// a nonce and a signature; 3: joins carry the age of their failed sets).
        public static let currentVersion: UInt16 = 3
        /// Longest nonce accepted, in bytes.
        public static let nonceBytesMax = 32
        /// Longest signature accepted, in bytes (Ed25519's).
        public static let signatureBytesMax = 64
        /// The dialer's link protocol version.
        public var version: UInt16
        /// The dialer.
        public var daemon: DaemonID
        /// The daemon the dialer means to reach (a hello is good for that acceptor only).
        public var acceptor: String
        /// The dialer's wall-clock time, in milliseconds since 1970 (freshness).
        public var timeMilliseconds: UInt64
        /// Random bytes that make each hello unique (replay detection).
        public var nonce: [UInt8]
        /// The dialer's signature of ``signedBytes``; empty when daemons are not authenticated.
        public var signature: [UInt8]

        /// A hello from `daemon` to `acceptor` in this build's version.
        public init(
            daemon: DaemonID, acceptor: String = "", timeMilliseconds: UInt64 = 0, nonce: [UInt8] = [], signature: [UInt8] = [],
            version: UInt16 = Hello.currentVersion
        ) {
            self.daemon = daemon
            self.acceptor = acceptor
            self.timeMilliseconds = timeMilliseconds
            self.nonce = nonce
            self.signature = signature
            self.version = version
        }

        /// What the signature covers: a context string, then every field but the signature,
        /// each length-prefixed or fixed-size, so that no two hellos share these bytes.
        public var signedBytes: [UInt8] {
            var writer = WireWriter(capacity: 128)
            writer.writeShortString("cohort daemon link hello")
            writer.write(version)
            writer.writeShortString(daemon.name)
            writer.write(daemon.incarnation)
            writer.writeShortString(acceptor)
            writer.write(timeMilliseconds)
            writer.writeBlob(nonce)
            return writer.bytes
        }
    }

    private enum Kind: UInt8 { case hello = 1, message = 2, heartbeat = 3 }

    /// Appends the frame, length prefix first.
    public func encode(into writer: inout WireWriter) {
        let start = writer.bytes.count
        writer.write(UInt32(0))
        switch self {
        case .hello(let hello):
            writer.write(Kind.hello.rawValue)
            writer.write(Hello.magic)
            writer.write(hello.version)
            writer.writeShortString(hello.daemon.name)
            writer.write(hello.daemon.incarnation)
            writer.writeShortString(hello.acceptor)
            writer.write(hello.timeMilliseconds)
            writer.writeBlob(hello.nonce)
            writer.writeBlob(hello.signature)
        case .message(let message):
            writer.write(Kind.message.rawValue)
            message.encode(into: &writer)
        case .heartbeat:
            writer.write(Kind.heartbeat.rawValue)
        }
        writer.patchLength(at: start)
    }

    /// The frame with its length prefix.
    public func encoded() -> [UInt8] {
        var writer = WireWriter(capacity: 64)
        encode(into: &writer)
        return writer.bytes
    }

    /// Decodes one frame body (after the length prefix); a typed error for anything malformed.
    public static func decode(body: UnsafeRawBufferPointer, limits: Limits, daemonsMax: Int) throws(WireError) -> PeerLinkFrame {
        var reader = WireReader(body)
        let kindByte = try reader.readUInt8()
        guard let kind = Kind(rawValue: kindByte) else { throw .unknownFrameKind(kindByte) }
        switch kind {
        case .hello:
            guard try reader.readUInt32() == Hello.magic else { throw .badMagic }
            let version = try reader.readUInt16()
            let name = try reader.readShortString()
            guard MemberID.isValidPart(name, bytesMax: limits.daemonNameBytesMax) else { throw .invalidDaemonName(name) }
            let incarnation = try reader.readUInt64()
            var hello = Hello(daemon: DaemonID(name: name, incarnation: incarnation), version: version)
            // A hello of another version is read no further: the acceptor refuses it by its
            // version, with a message that says so.
            if version == Hello.currentVersion {
                hello.acceptor = try reader.readShortString()
                hello.timeMilliseconds = try reader.readUInt64()
                hello.nonce = try reader.readBlob(bytesMax: Hello.nonceBytesMax)
                hello.signature = try reader.readBlob(bytesMax: Hello.signatureBytesMax)
                try reader.expectEnd()
            }
            return .hello(hello)
        case .message:
            return .message(try PeerMessage.decode(
                UnsafeRawBufferPointer(rebasing: body[1...]), limits: limits, daemonsMax: daemonsMax))
        case .heartbeat:
            try reader.expectEnd()
            return .heartbeat
        }
    }

    /// Decodes one frame body from an array (tests and fuzzing).
    public static func decode(body: [UInt8], limits: Limits = Limits(), daemonsMax: Int = 128) throws(WireError) -> PeerLinkFrame {
        try body.withUnsafeBytes { raw in
            Result { () throws(WireError) in try decode(body: raw, limits: limits, daemonsMax: daemonsMax) }
        }.get()
    }

    /// The largest frame a link accepts: a packet of `packetBytesMax` or one item as large as
    /// the largest client frame, nested once in a recovery packet, with headers.
    public static func frameBytesMax(packetBytesMax: Int, limits: Limits) -> Int {
        2 * max(packetBytesMax, limits.frameBytesMax) + 64 * 1024
    }
}
