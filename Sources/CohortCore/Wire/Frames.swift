/// Constants of the client protocol; see `docs/wire-protocol.md`.
public enum WireProtocol {
    /// Magic at the start of every connect frame: ASCII "COHR".
    public static let magic: UInt32 = 0x434F_4852
    /// The protocol version this build speaks.
    public static let version: UInt16 = 3
    /// Bytes of the big-endian length prefix of every frame.
    public static let lengthPrefixBytes = 4

    /// Reads the body length from the first four bytes of a frame, checking it against
    /// `frameBytesMax`. Returns `nil` while fewer than four bytes are available.
    public static func bodyLength(prefix: UnsafeRawBufferPointer, frameBytesMax: Int) throws(WireError) -> Int? {
        guard prefix.count >= lengthPrefixBytes else { return nil }
        let length = Int(UInt32(bigEndian: prefix.loadUnaligned(as: UInt32.self)))
        guard length >= 1 else { throw .truncated }
        guard length <= frameBytesMax else { throw .frameTooLarge(length: length, max: frameBytesMax) }
        return length
    }
}

/// The connect handshake a client opens every session with.
public struct ConnectRequest: Hashable, Sendable {
    /// The protocol version the client speaks.
    public var version: UInt16
    /// The client-chosen private name, unique on the daemon.
    public var privateName: String
    /// Whether the client wants group membership notifications.
    public var wantsMembership: Bool
    /// The authentication method the client picks (one the daemon offers).
    public var authMethod: String
    /// Method-specific first authentication message.
    public var authData: [UInt8]

    /// Creates a connect request.
    public init(
        version: UInt16 = WireProtocol.version, privateName: String, wantsMembership: Bool = true,
        authMethod: String = "none", authData: [UInt8] = []
    ) {
        self.version = version
        self.privateName = privateName
        self.wantsMembership = wantsMembership
        self.authMethod = authMethod
        self.authData = authData
    }
}

/// What a daemon answers a successful handshake with.
public struct ConnectAccept: Hashable, Sendable {
    /// The protocol version the session will use.
    public var version: UInt16
    /// The client's identity (its private group).
    public var member: MemberID
    /// The security architecture the daemon runs.
    public var architecture: String
    /// Who the client authenticated as (``Principal/anonymous`` for method `none`).
    public var principal: Principal
    /// The authentication method's last message to the client (e.g. SCRAM's server-final
    /// message, by which the daemon proves its own knowledge of the password verifier).
    public var authData: [UInt8]

    /// Creates an accept reply.
    public init(
        version: UInt16, member: MemberID, architecture: String, principal: Principal = .anonymous, authData: [UInt8] = []
    ) {
        self.version = version
        self.member = member
        self.architecture = architecture
        self.principal = principal
        self.authData = authData
    }
}

/// Frames a client sends to its daemon.
public enum ClientFrame: Hashable, Sendable {
    /// Opens the session; must be the first frame.
    case connect(ConnectRequest)
    /// A further authentication message, for multi-round methods.
    case authResponse([UInt8])
    /// Joins a group.
    case join(GroupName)
    /// Leaves a group.
    case leave(GroupName)
    /// Multicasts a message to one or more groups.
    case multicast(OutgoingMessage)
    /// Asks for a ``DaemonStatus``.
    case statusRequest
    /// Ends the session gracefully.
    case disconnect
    /// Fault injection (only on a daemon started with `--fault-injection`): from now on drop
    /// every protocol message to and from the named peer daemons (an empty list heals). The
    /// daemon answers with its status.
    case dropPeers([String])

    enum Kind: UInt8 {
        case connect = 0x01, authResponse = 0x02, join = 0x03, leave = 0x04, multicast = 0x05
        case statusRequest = 0x06, disconnect = 0x07, dropPeers = 0x08
    }
}

/// Frames a daemon sends to a client.
public enum DaemonFrame: Hashable, Sendable {
    /// The handshake succeeded.
    case accept(ConnectAccept)
    /// The handshake failed; the daemon closes the connection.
    case reject(ErrorCode, reason: String)
    /// A multi-round authentication method's next challenge.
    case authChallenge(method: String, data: [UInt8])
    /// A delivered message.
    case message(DeliveredMessage)
    /// A membership view of a group. (Boxed, as `status`: these payloads are the largest and
    /// rare; inline, they made every frame and action on the message path bigger to move, and
    /// a view's key and the status's daemon key epoch cost 2 % more instructions per message.)
    indirect case view(GroupView)
    /// A session error; when `fatal`, the daemon closes the session after it.
    case error(ErrorCode, fatal: Bool, reason: String)
    /// Answer to a status request.
    indirect case status(DaemonStatus)

    enum Kind: UInt8 {
        case accept = 0x81, reject = 0x82, authChallenge = 0x83, message = 0x84, view = 0x85
        case error = 0x86, status = 0x87
    }
}

// MARK: - Encoding

extension ClientFrame {
    /// The frame with its length prefix, ready for the socket.
    public func encoded() -> [UInt8] {
        var writer = WireWriter(capacity: encodedCapacityHint)
        encode(into: &writer)
        return writer.bytes
    }

    /// About the bytes the frame encodes to: room to reserve before encoding many frames.
    public var encodedCapacityHint: Int {
        if case .multicast(let message) = self { return 16 + message.payload.count + message.groups.count * 33 }
        return 64
    }

    /// Appends the frame, length prefix first.
    public func encode(into writer: inout WireWriter) {
        let start = writer.bytes.count
        writer.write(UInt32(0))
        switch self {
        case .connect(let request):
            writer.write(Kind.connect.rawValue)
            writer.write(WireProtocol.magic)
            writer.write(request.version)
            writer.write(UInt8(request.wantsMembership ? 1 : 0))
            writer.writeShortString(request.privateName)
            writer.writeShortString(request.authMethod)
            writer.writeBlob(request.authData)
        case .authResponse(let data):
            writer.write(Kind.authResponse.rawValue)
            writer.writeBlob(data)
        case .join(let group):
            writer.write(Kind.join.rawValue)
            writer.writeShortString(group.rawValue)
        case .leave(let group):
            writer.write(Kind.leave.rawValue)
            writer.writeShortString(group.rawValue)
        case .multicast(let message):
            writer.write(Kind.multicast.rawValue)
            writer.write(message.service)
            writer.write(message.messageType)
            writer.write(groups: message.groups)
            writer.writeBlob(message.payload)
        case .statusRequest:
            writer.write(Kind.statusRequest.rawValue)
        case .disconnect:
            writer.write(Kind.disconnect.rawValue)
        case .dropPeers(let names):
            writer.write(Kind.dropPeers.rawValue)
            writer.write(UInt32(names.count))
            for name in names { writer.writeShortString(name) }
        }
        writer.patchLength(at: start)
    }
}

extension DaemonFrame {
    /// The frame with its length prefix, ready for the socket.
    public func encoded() -> [UInt8] {
        var writer = WireWriter(capacity: encodedCapacityHint)
        encode(into: &writer)
        return writer.bytes
    }

    /// Appends the frame, except that a message's payload bytes are left for the caller to
    /// append right after (the length prefix and the payload's length field count them).
    /// Returns that payload, or `nil` when the frame was written whole. Lets a daemon copy a
    /// payload once per recipient, straight from the message, instead of twice.
    public func encodeLeavingPayload(into writer: inout WireWriter) -> [UInt8]? {
        guard case .message(let message) = self else {
            encode(into: &writer)
            return nil
        }
        let start = writer.bytes.count
        writer.write(UInt32(0))
        writeMessageFields(message, into: &writer)
        writer.write(UInt32(message.payload.count))
        writer.patchLength(at: start, adding: message.payload.count)
        return message.payload
    }

    private func writeMessageFields(_ message: DeliveredMessage, into writer: inout WireWriter) {
        writer.write(Kind.message.rawValue)
        writer.writeMessageHeader(message)
    }

    /// Appends the frame, length prefix first.
    public func encode(into writer: inout WireWriter) {
        let start = writer.bytes.count
        writer.write(UInt32(0))
        switch self {
        case .accept(let accept):
            writer.write(Kind.accept.rawValue)
            writer.write(accept.version)
            writer.writeShortString(accept.member.description)
            writer.writeShortString(accept.architecture)
            writer.writeShortString(accept.principal.name)
            writer.writeBlob(accept.authData)
        case .reject(let code, let reason):
            writer.write(Kind.reject.rawValue)
            writer.write(code.rawValue)
            writer.writeText(reason)
        case .authChallenge(let method, let data):
            writer.write(Kind.authChallenge.rawValue)
            writer.writeShortString(method)
            writer.writeBlob(data)
        case .message(let message):
            writeMessageFields(message, into: &writer)
            writer.writeBlob(message.payload)
        case .view(let view):
            writer.write(Kind.view.rawValue)
            writer.writeShortString(view.group.rawValue)
            writer.write(view.viewID)
            writer.write(view.cause.rawValue)
            writer.write(view.transitional)
            writer.write(members: view.members)
            writer.write(members: view.changed)
            writer.write(members: view.continuing)
            if let key = view.key {
                writer.write(true)
                writer.write(key.keyID)
                writer.writeBlob(key.secret)
            } else {
                writer.write(false)
            }
        case .error(let code, let fatal, let reason):
            writer.write(Kind.error.rawValue)
            writer.write(code.rawValue)
            writer.write(fatal)
            writer.writeText(reason)
        case .status(let status):
            writer.write(Kind.status.rawValue)
            writer.writeShortString(status.daemonName)
            writer.writeText(status.version)
            writer.writeShortString(status.architecture)
            writer.write(status.configuration)
            writer.write(UInt32(status.configurationMembers.count))
            for daemon in status.configurationMembers { writer.writeShortString(daemon) }
            writer.writeShortString(status.membershipState)
            writer.write(UInt32(status.droppedPeers.count))
            for daemon in status.droppedPeers { writer.writeShortString(daemon) }
            writer.write(members: status.clients)
            writer.write(UInt32(status.groups.count))
            for summary in status.groups {
                writer.writeShortString(summary.group.rawValue)
                writer.write(summary.viewID)
                writer.write(members: summary.members)
            }
            writer.writeShortString(status.daemonKeyEpoch ?? "")
        }
        writer.patchLength(at: start)
    }

    private var encodedCapacityHint: Int {
        if case .message(let message) = self { return 48 + message.payload.count + message.groups.count * 33 }
        return 128
    }
}

extension WireWriter {
    mutating func write(_ service: ServiceType) {
        write(service.level.rawValue)
        write(service.selfDiscard ? ServiceType.selfDiscardBit : 0)
    }

    mutating func write(groups: [GroupName]) {
        write(UInt8(truncatingIfNeeded: groups.count))
        for group in groups { writeShortString(group.rawValue) }
    }

    /// A delivered message's fields before its payload: service, type, sender, groups. The same
    /// in the client `message` frame and in the daemons' ordered items.
    mutating func writeMessageHeader(_ message: DeliveredMessage) {
        write(message.service)
        write(message.messageType)
        writeShortString(message.sender.description)
        write(groups: message.groups)
    }

    mutating func write(members: [MemberID]) {
        write(UInt32(members.count))
        for member in members { writeShortString(member.description) }
    }

    mutating func write(_ configuration: ConfigurationID) {
        write(configuration.epoch)
        writeShortString(configuration.representative)
    }

    /// Writes a view id (also the run id of an agreement): configuration, then sequence.
    public mutating func write(_ viewID: GroupViewID) {
        write(viewID.configuration)
        write(viewID.sequence)
    }
}

// MARK: - Decoding

/// What one connection's decoder remembers between frames: the last destination groups and the
/// last sender, as raw bytes and parsed. A stream of messages from one sender to one group —
/// the common case — then parses those names once instead of once per message.
public struct DecodeMemo: Sendable {
    var groupsBytes: [UInt8] = []
    var groups: [GroupName] = []
    var senderBytes: [UInt8] = []
    var sender: MemberID?

    /// An empty memo.
    public init() {}
}

extension ClientFrame {
    /// Decodes one frame body (kind byte and fields, without the length prefix).
    public static func decode(body: UnsafeRawBufferPointer, limits: Limits) throws(WireError) -> ClientFrame {
        var memo = DecodeMemo()
        return try decode(body: body, limits: limits, memo: &memo)
    }

    /// Decodes one frame body, reusing names parsed for earlier frames of the same stream.
    public static func decode(body: UnsafeRawBufferPointer, limits: Limits, memo: inout DecodeMemo) throws(WireError) -> ClientFrame {
        var reader = WireReader(body)
        let kindByte = try reader.readUInt8()
        guard let kind = Kind(rawValue: kindByte) else { throw .unknownFrameKind(kindByte) }
        let frame: ClientFrame
        switch kind {
        case .connect:
            guard try reader.readUInt32() == WireProtocol.magic else { throw .badMagic }
            let version = try reader.readUInt16()
            let flags = try reader.readUInt8()
            let name = try reader.readShortString()
            let method = try reader.readShortString()
            let data = try reader.readBlob(bytesMax: limits.authDataBytesMax)
            frame = .connect(ConnectRequest(
                version: version, privateName: name, wantsMembership: flags & 1 != 0,
                authMethod: method, authData: data))
        case .authResponse:
            frame = .authResponse(try reader.readBlob(bytesMax: limits.authDataBytesMax))
        case .join:
            frame = .join(try GroupName(try reader.readShortString(), limits: limits))
        case .leave:
            frame = .leave(try GroupName(try reader.readShortString(), limits: limits))
        case .multicast:
            let service = try reader.readService()
            let messageType = try reader.readUInt16()
            let groups = try reader.readGroups(limits: limits, memo: &memo)
            let payload = try reader.readBlob(bytesMax: limits.payloadBytesMax)
            frame = .multicast(OutgoingMessage(service: service, messageType: messageType, groups: groups, payload: payload))
        case .statusRequest:
            frame = .statusRequest
        case .disconnect:
            frame = .disconnect
        case .dropPeers:
            let count = try reader.readCount()
            var names: [String] = []
            for _ in 0..<count {
                let name = try reader.readShortString()
                guard MemberID.isValidPart(name, bytesMax: limits.daemonNameBytesMax) else { throw .invalidDaemonName(name) }
                names.append(name)
            }
            frame = .dropPeers(names)
        }
        try reader.expectEnd()
        return frame
    }

    /// Decodes one frame body from an array (tests and fuzzing).
    public static func decode(body: [UInt8], limits: Limits) throws(WireError) -> ClientFrame {
        try body.withUnsafeBytes { raw in Result { () throws(WireError) in try decode(body: raw, limits: limits) } }.get()
    }
}

extension DaemonFrame {
    /// Decodes one frame body (kind byte and fields, without the length prefix).
    public static func decode(body: UnsafeRawBufferPointer, limits: Limits) throws(WireError) -> DaemonFrame {
        var memo = DecodeMemo()
        return try decode(body: body, limits: limits, memo: &memo)
    }

    /// Decodes one frame body, reusing names parsed for earlier frames of the same stream.
    public static func decode(body: UnsafeRawBufferPointer, limits: Limits, memo: inout DecodeMemo) throws(WireError) -> DaemonFrame {
        var reader = WireReader(body)
        let kindByte = try reader.readUInt8()
        guard let kind = Kind(rawValue: kindByte) else { throw .unknownFrameKind(kindByte) }
        let frame: DaemonFrame
        switch kind {
        case .accept:
            let version = try reader.readUInt16()
            let member = try reader.readMember(limits: limits)
            let architecture = try reader.readShortString()
            let principal = Principal(try reader.readShortString())
            let authData = try reader.readBlob(bytesMax: limits.authDataBytesMax)
            frame = .accept(ConnectAccept(
                version: version, member: member, architecture: architecture, principal: principal, authData: authData))
        case .reject:
            let code = try reader.readErrorCode()
            frame = .reject(code, reason: try reader.readText())
        case .authChallenge:
            let method = try reader.readShortString()
            frame = .authChallenge(method: method, data: try reader.readBlob(bytesMax: limits.authDataBytesMax))
        case .message:
            frame = .message(try reader.readMessage(limits: limits, memo: &memo))
        case .view:
            let group = try GroupName(try reader.readShortString(), limits: limits)
            let viewID = try reader.readViewID()
            let causeByte = try reader.readUInt8()
            guard let cause = ViewCause(rawValue: causeByte) else { throw .invalidValue("view cause \(causeByte)") }
            let transitional = try reader.readBool()
            let members = try reader.readMembers(limits: limits)
            let changed = try reader.readMembers(limits: limits)
            let continuing = try reader.readMembers(limits: limits)
            var view = GroupView(
                group: group, viewID: viewID, members: members, cause: cause, changed: changed,
                transitional: transitional, continuing: continuing)
            if try reader.readBool() {
                let keyID = try reader.readUInt32()
                view.key = ViewKey(keyID: keyID, secret: try reader.readBlob(bytesMax: ViewKey.secretBytesMax))
            }
            frame = .view(view)
        case .error:
            let code = try reader.readErrorCode()
            let fatal = try reader.readBool()
            frame = .error(code, fatal: fatal, reason: try reader.readText())
        case .status:
            let daemonName = try reader.readShortString()
            let version = try reader.readText()
            let architecture = try reader.readShortString()
            let configuration = try reader.readConfigurationID()
            let daemonCount = try reader.readCount()
            var daemons: [String] = []
            for _ in 0..<daemonCount { daemons.append(try reader.readShortString()) }
            let membershipState = try reader.readShortString()
            let droppedCount = try reader.readCount()
            var dropped: [String] = []
            for _ in 0..<droppedCount { dropped.append(try reader.readShortString()) }
            let clients = try reader.readMembers(limits: limits)
            let groupCount = try reader.readCount()
            var groups: [DaemonStatus.GroupSummary] = []
            for _ in 0..<groupCount {
                let group = try GroupName(try reader.readShortString(), limits: limits)
                let viewID = try reader.readViewID()
                groups.append(.init(group: group, viewID: viewID, members: try reader.readMembers(limits: limits)))
            }
            let keyEpoch = try reader.readShortString()
            frame = .status(DaemonStatus(
                daemonName: daemonName, version: version, architecture: architecture, configuration: configuration,
                configurationMembers: daemons, membershipState: membershipState, droppedPeers: dropped,
                clients: clients, groups: groups, daemonKeyEpoch: keyEpoch.isEmpty ? nil : keyEpoch))
        }
        try reader.expectEnd()
        return frame
    }

    /// Decodes one frame body from an array (tests and fuzzing).
    public static func decode(body: [UInt8], limits: Limits) throws(WireError) -> DaemonFrame {
        try body.withUnsafeBytes { raw in Result { () throws(WireError) in try decode(body: raw, limits: limits) } }.get()
    }
}

extension WireReader {
    mutating func readService() throws(WireError) -> ServiceType {
        let levelByte = try readUInt8()
        guard let level = ServiceLevel(rawValue: levelByte) else { throw .invalidValue("service level \(levelByte)") }
        let flags = try readUInt8()
        guard flags & ~ServiceType.selfDiscardBit == 0 else { throw .invalidValue("service flags \(flags)") }
        return ServiceType(level, selfDiscard: flags & ServiceType.selfDiscardBit != 0)
    }

    /// Reads destination groups; if their bytes equal the memo's, returns the memo's names.
    mutating func readGroups(limits: Limits, memo: inout DecodeMemo) throws(WireError) -> [GroupName] {
        let start = offset
        // 1. Find the extent of the field without parsing names: count, then length-prefixed names.
        guard remaining >= 1 else { throw .truncated }
        let count = Int(peekByte(at: start))
        var end = start + 1
        for _ in 0..<count {
            guard end < offset + remaining else { throw .truncated }
            end += 1 + Int(peekByte(at: end))
        }
        guard end <= offset + remaining else { throw .truncated }
        // 2. The same bytes as the last message's groups: the same names.
        if !memo.groups.isEmpty, bytesEqual(from: start, to: end, memo.groupsBytes) {
            skip(end - start)
            return memo.groups
        }
        let groups = try readGroups(limits: limits)
        memo.groupsBytes = bytes(from: start, to: end)
        memo.groups = groups
        return groups
    }

    /// A delivered message (its header as ``WireWriter/writeMessageHeader(_:)`` writes it, then
    /// the payload blob), reusing the sender and groups of the message before.
    mutating func readMessage(limits: Limits, memo: inout DecodeMemo) throws(WireError) -> DeliveredMessage {
        var (message, payload) = try readMessageLeavingPayload(limits: limits, memo: &memo)
        message.payload = bytes(from: payload.lowerBound, to: payload.upperBound)
        return message
    }

    /// A delivered message as ``readMessage(limits:memo:)`` reads it, but with an empty payload,
    /// and where the payload's bytes are (offsets of this reader): the caller copies them only
    /// if someone receives the message.
    mutating func readMessageLeavingPayload(limits: Limits, memo: inout DecodeMemo) throws(WireError) -> (DeliveredMessage, payload: Range<Int>) {
        let service = try readService()
        let messageType = try readUInt16()
        let sender = try readSender(limits: limits, memo: &memo)
        let groups = try readGroups(limits: limits, memo: &memo)
        let length = Int(try readUInt32())
        guard length <= limits.payloadBytesMax else { throw .payloadTooLarge(bytes: length, max: limits.payloadBytesMax) }
        guard remaining >= length else { throw .truncated }
        let payload = offset..<(offset + length)
        skip(length)
        return (DeliveredMessage(service: service, messageType: messageType, sender: sender, groups: groups, payload: []), payload)
    }

    /// Reads a sender; if its bytes equal the memo's, returns the memo's member.

    mutating func readSender(limits: Limits, memo: inout DecodeMemo) throws(WireError) -> MemberID {
        let start = offset
        guard remaining >= 1 else { throw .truncated }
        let end = start + 1 + Int(peekByte(at: start))
        guard end - offset <= remaining else { throw .truncated }
        if let sender = memo.sender, bytesEqual(from: start, to: end, memo.senderBytes) {
            skip(end - start)
            return sender
        }
        let sender = try readMember(limits: limits)
        memo.senderBytes = bytes(from: start, to: end)
        memo.sender = sender
        return sender
    }

    mutating func readGroups(limits: Limits) throws(WireError) -> [GroupName] {
        let count = Int(try readUInt8())
        guard count >= 1, count <= limits.groupsPerMessageMax else { throw .badGroupCount(count) }
        var groups: [GroupName] = []
        groups.reserveCapacity(count)
        for _ in 0..<count { groups.append(try GroupName(try readShortString(), limits: limits)) }
        return groups
    }

    mutating func readMember(limits: Limits) throws(WireError) -> MemberID {
        let text = try readShortString()
        guard let member = MemberID(privateGroup: text, limits: limits) else { throw .invalidPrivateName(text) }
        return member
    }

    /// A 32-bit element count, bounded by the bytes left (every element takes at least one).
    mutating func readCount() throws(WireError) -> Int {
        let count = Int(try readUInt32())
        guard count <= remaining else { throw .truncated }
        return count
    }

    mutating func readMembers(limits: Limits) throws(WireError) -> [MemberID] {
        let count = try readCount()
        var members: [MemberID] = []
        members.reserveCapacity(count)
        for _ in 0..<count { members.append(try readMember(limits: limits)) }
        return members
    }

    mutating func readConfigurationID() throws(WireError) -> ConfigurationID {
        let epoch = try readUInt64()
        return ConfigurationID(epoch: epoch, representative: try readShortString())
    }

    /// Reads what ``WireWriter/write(_:)-(GroupViewID)`` wrote.
    public mutating func readViewID() throws(WireError) -> GroupViewID {
        let configuration = try readConfigurationID()
        return GroupViewID(configuration: configuration, sequence: try readUInt64())
    }

    mutating func readErrorCode() throws(WireError) -> ErrorCode {
        let raw = try readUInt16()
        guard let code = ErrorCode(rawValue: raw) else { throw .invalidValue("error code \(raw)") }
        return code
    }
}
