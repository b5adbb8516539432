/// The wire form of ``PeerMessage``: what daemons send each other (see `docs/wire-protocol.md`).
///
/// A message is a kind byte and its fields, big-endian; sets and lists carry a 32-bit count.
/// Decoding checks every count against the bytes left and ``Limits`` (and the ring's daemon
/// bound), so a malformed message is a typed ``WireError``, never a trap or a huge allocation.
extension PeerMessage {
    private enum Kind: UInt8 { case packet = 1, token, join, commit, mergeDetect }

    /// The message's bytes.
    public func encoded() -> [UInt8] {
        var writer = WireWriter(capacity: 64)
        encode(into: &writer)
        return writer.bytes
    }

    /// Appends the message's bytes to `writer`.
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .packet(let packet):
            writer.write(Kind.packet.rawValue)
            Self.write(packet, into: &writer)
        case .token(let token):
            writer.write(Kind.token.rawValue)
            Self.write(token.ring, into: &writer)
            writer.write(token.tokenSequence)
            writer.write(token.sequence)
            writer.write(token.aru)
            writer.write(token.aruSetter != nil)
            if let setter = token.aruSetter { Self.write(setter, into: &writer) }
            writer.write(UInt32(token.retransmitRequests.count))
            for sequence in token.retransmitRequests { writer.write(sequence) }
            writer.write(token.flowControlCount)
            writer.write(token.recoveryComplete)
        case .join(let join):
            writer.write(Kind.join.rawValue)
            Self.write(join.sender, into: &writer)
            Self.write(join.processors.sorted(), into: &writer)
            Self.write(join.failed.sorted(), into: &writer)
            writer.write(join.ringSequence)
            writer.write(join.failedSince)
        case .commit(let commit):
            writer.write(Kind.commit.rawValue)
            Self.write(commit.ring, into: &writer)
            Self.write(commit.members, into: &writer)
            writer.write(commit.rotation)
            let entries = commit.entries.sorted { $0.key < $1.key }
            writer.write(UInt32(entries.count))
            for (daemon, entry) in entries {
                Self.write(daemon, into: &writer)
                Self.write(entry.oldRing, into: &writer)
                writer.write(entry.aru)
                writer.write(entry.highSequence)
            }
        case .mergeDetect(let ring, let sender):
            writer.write(Kind.mergeDetect.rawValue)
            Self.write(ring, into: &writer)
            Self.write(sender, into: &writer)
        }
    }

    /// Decodes one message; throws a typed error for anything malformed, oversized or trailing.
    public static func decode(_ bytes: [UInt8], limits: Limits = Limits(), daemonsMax: Int = 128) throws(WireError) -> PeerMessage {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(WireError) in try decode(raw, limits: limits, daemonsMax: daemonsMax) }
        }.get()
    }

    /// Decodes one message from raw bytes (a frame body in a receive buffer).
    public static func decode(_ raw: UnsafeRawBufferPointer, limits: Limits = Limits(), daemonsMax: Int = 128) throws(WireError) -> PeerMessage {
        var reader = WireReader(raw)
        let message = try decode(from: &reader, limits: limits, daemonsMax: daemonsMax)
        try reader.expectEnd()
        return message
    }

    /// The daemon that must have sent this message, when the message says so: joins and merge
    /// announcements come only from the daemon they name. (A packet names its first broadcaster
    /// but any member may retransmit it; tokens travel from member to member.)
    public var claimedSender: DaemonID? {
        switch self {
        case .join(let join): join.sender
        case .mergeDetect(_, let sender): sender
        case .packet, .token, .commit: nil
        }
    }

    static func decode(from reader: inout WireReader, limits: Limits, daemonsMax: Int) throws(WireError) -> PeerMessage {
        let kindByte = try reader.readUInt8()
        guard let kind = Kind(rawValue: kindByte) else { throw .unknownFrameKind(kindByte) }
        switch kind {
        case .packet:
            return .packet(try readPacket(from: &reader, limits: limits, nested: false))
        case .token:
            let ring = try readRing(from: &reader, limits: limits)
            let tokenSequence = try reader.readUInt64()
            let sequence = try reader.readUInt64()
            let aru = try reader.readUInt64()
            let setter = try reader.readBool() ? try readDaemon(from: &reader, limits: limits) : nil
            let count = try reader.readCount()
            guard count <= 4096 else { throw .invalidValue("\(count) retransmission requests") }
            var requests: [UInt64] = []
            requests.reserveCapacity(count)
            for _ in 0..<count { requests.append(try reader.readUInt64()) }
            return .token(RingToken(
                ring: ring, tokenSequence: tokenSequence, sequence: sequence, aru: aru, aruSetter: setter,
                retransmitRequests: requests, flowControlCount: try reader.readUInt32(),
                recoveryComplete: try reader.readBool()))
        case .join:
            let sender = try readDaemon(from: &reader, limits: limits)
            let processors = try readDaemons(from: &reader, limits: limits, max: daemonsMax)
            let failed = try readDaemons(from: &reader, limits: limits, max: daemonsMax)
            let ringSequence = try reader.readUInt64()
            return .join(JoinMessage(
                sender: sender, processors: Set(processors), failed: Set(failed), ringSequence: ringSequence,
                failedSince: try reader.readUInt64()))
        case .commit:
            let ring = try readRing(from: &reader, limits: limits)
            let members = try readDaemons(from: &reader, limits: limits, max: daemonsMax)
            let rotation = try reader.readUInt8()
            let count = try reader.readCount()
            guard count <= daemonsMax else { throw .invalidValue("\(count) commit entries") }
            var entries: [DaemonID: CommitToken.Entry] = [:]
            for _ in 0..<count {
                let daemon = try readDaemon(from: &reader, limits: limits)
                let oldRing = try readRing(from: &reader, limits: limits)
                entries[daemon] = CommitToken.Entry(
                    oldRing: oldRing, aru: try reader.readUInt64(), highSequence: try reader.readUInt64())
            }
            return .commit(CommitToken(ring: ring, members: members, entries: entries, rotation: rotation))
        case .mergeDetect:
            let ring = try readRing(from: &reader, limits: limits)
            return .mergeDetect(ring: ring, sender: try readDaemon(from: &reader, limits: limits))
        }
    }

    // MARK: - Fields

    private static func write(_ daemon: DaemonID, into writer: inout WireWriter) {
        writer.writeShortString(daemon.name)
        writer.write(daemon.incarnation)
    }

    private static func write(_ daemons: [DaemonID], into writer: inout WireWriter) {
        writer.write(UInt32(daemons.count))
        for daemon in daemons { write(daemon, into: &writer) }
    }

    private static func write(_ ring: RingID, into writer: inout WireWriter) {
        writer.write(ring.sequence)
        write(ring.representative, into: &writer)
    }

    private static func write(_ packet: RingPacket, into writer: inout WireWriter) {
        write(packet.ring, into: &writer)
        writer.write(packet.sequence)
        write(packet.sender, into: &writer)
        switch packet.content {
        case .items(let items):
            writer.write(UInt8(0))
            writer.write(UInt32(items.count))
            for item in items {
                writer.write(item.service.rawValue)
                writer.writeBlob(item.payload)
            }
        case .recovered(let inner):
            writer.write(UInt8(1))
            write(inner, into: &writer)
        }
    }

    private static func readDaemon(from reader: inout WireReader, limits: Limits) throws(WireError) -> DaemonID {
        let name = try reader.readShortString()
        guard MemberID.isValidPart(name, bytesMax: limits.daemonNameBytesMax) else { throw .invalidDaemonName(name) }
        return DaemonID(name: name, incarnation: try reader.readUInt64())
    }

    private static func readDaemons(from reader: inout WireReader, limits: Limits, max: Int) throws(WireError) -> [DaemonID] {
        let count = try reader.readCount()
        guard count <= max else { throw .invalidValue("\(count) daemons, more than \(max)") }
        var daemons: [DaemonID] = []
        for _ in 0..<count { daemons.append(try readDaemon(from: &reader, limits: limits)) }
        return daemons
    }

    private static func readRing(from reader: inout WireReader, limits: Limits) throws(WireError) -> RingID {
        let sequence = try reader.readUInt64()
        return RingID(sequence: sequence, representative: try readDaemon(from: &reader, limits: limits))
    }

    private static func readPacket(from reader: inout WireReader, limits: Limits, nested: Bool) throws(WireError) -> RingPacket {
        let ring = try readRing(from: &reader, limits: limits)
        let sequence = try reader.readUInt64()
        let sender = try readDaemon(from: &reader, limits: limits)
        switch try reader.readUInt8() {
        case 0:
            // The items' bytes are copied once, into one array their payloads are slices of
            // (not once per item: a packet carries up to a thousand small operations).
            let count = try reader.readCount()
            var spans: [(service: ServiceLevel, range: Range<Int>)] = []
            spans.reserveCapacity(count)
            let start = reader.offset
            for _ in 0..<count {
                let serviceByte = try reader.readUInt8()
                guard let service = ServiceLevel(rawValue: serviceByte) else { throw .invalidValue("service level \(serviceByte)") }
                // An item holds one client operation: its payload plus names and headers.
                let length = Int(try reader.readUInt32())
                guard length <= limits.frameBytesMax else { throw .payloadTooLarge(bytes: length, max: limits.frameBytesMax) }
                guard reader.remaining >= length else { throw .truncated }
                spans.append((service, (reader.offset - start)..<(reader.offset - start + length)))
                reader.skip(length)
            }
            let storage = reader.bytes(from: start, to: reader.offset)
            let items = spans.map { RingItem(service: $0.service, payload: storage[$0.range]) }
            return RingPacket(ring: ring, sequence: sequence, sender: sender, content: .items(items))
        case 1 where !nested:
            return RingPacket(ring: ring, sequence: sequence, sender: sender,
                              content: .recovered(try readPacket(from: &reader, limits: limits, nested: true)))
        case let other:
            throw .invalidValue("packet content \(other)")
        }
    }
}
