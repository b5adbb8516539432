/// Why a frame could not be decoded or a field is not acceptable. Thrown by every decoder and
/// validator of the core; the daemon turns it into an ``ErrorCode`` for the client.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The frame ended before a field did.
    case truncated
    /// A frame's declared length exceeds the configured maximum.
    case frameTooLarge(length: Int, max: Int)
    /// Bytes were left over after the last field of a frame.
    case trailingBytes(count: Int)
    /// The frame kind byte is not one this protocol version knows.
    case unknownFrameKind(UInt8)
    /// A connect frame did not start with the protocol magic.
    case badMagic
    /// A string field is not valid UTF-8.
    case invalidUTF8
    /// A group name is empty, too long or has characters outside printable ASCII.
    case invalidGroupName(String)
    /// A client's private name is empty, too long or has forbidden characters.
    case invalidPrivateName(String)
    /// A daemon name is empty, too long or has forbidden characters.
    case invalidDaemonName(String)
    /// A payload exceeds ``Limits/payloadBytesMax``.
    case payloadTooLarge(bytes: Int, max: Int)
    /// A message names more destination groups than ``Limits/groupsPerMessageMax`` (or none).
    case badGroupCount(Int)
    /// An enumerated field has a value outside its range.
    case invalidValue(String)

    public var description: String {
        switch self {
        case .truncated: "frame truncated"
        case .frameTooLarge(let length, let max): "frame of \(length) bytes exceeds the maximum of \(max)"
        case .trailingBytes(let count): "\(count) unexpected bytes after the last field"
        case .unknownFrameKind(let kind): "unknown frame kind 0x\(String(kind, radix: 16))"
        case .badMagic: "not a Cohort connect frame (bad magic)"
        case .invalidUTF8: "string field is not valid UTF-8"
        case .invalidGroupName(let name): "invalid group name \(name.debugDescription)"
        case .invalidPrivateName(let name): "invalid private name \(name.debugDescription)"
        case .invalidDaemonName(let name): "invalid daemon name \(name.debugDescription)"
        case .payloadTooLarge(let bytes, let max): "payload of \(bytes) bytes exceeds the maximum of \(max)"
        case .badGroupCount(let count): "a message must name 1 or more groups, up to the limit (got \(count))"
        case .invalidValue(let what): "invalid value: \(what)"
        }
    }

    /// The error code a daemon answers this decoding failure with.
    public var errorCode: ErrorCode {
        switch self {
        case .frameTooLarge: .frameTooLarge
        case .payloadTooLarge: .payloadTooLarge
        case .badGroupCount: .tooManyGroupsInMessage
        case .invalidGroupName: .invalidGroupName
        case .invalidPrivateName: .invalidPrivateName
        case .badMagic: .badMagic
        case .unknownFrameKind: .unknownFrameKind
        case .truncated, .trailingBytes, .invalidUTF8, .invalidValue, .invalidDaemonName: .malformedFrame
        }
    }
}

/// Typed reasons a daemon rejects a connection or ends a session, as carried by ``DaemonFrame``
/// `reject` and `error` frames. Codes are stable wire values; new ones are only ever added.
public enum ErrorCode: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// A frame could not be parsed.
    case malformedFrame = 1
    /// The frame kind is unknown.
    case unknownFrameKind = 2
    /// A frame exceeded the maximum frame size.
    case frameTooLarge = 3
    /// A payload exceeded the configured maximum.
    case payloadTooLarge = 4
    /// A message named no group or too many groups.
    case tooManyGroupsInMessage = 5
    /// A group name was invalid.
    case invalidGroupName = 6
    /// The client is already in the maximum number of groups.
    case tooManyGroupsJoined = 7
    /// The connect frame's magic was wrong.
    case badMagic = 8
    /// The client speaks a protocol version the daemon does not.
    case unsupportedVersion = 9
    /// The private name is invalid.
    case invalidPrivateName = 10
    /// Another client on this daemon already uses that private name.
    case duplicatePrivateName = 11
    /// The client asked for an authentication method the daemon does not offer.
    case authMethodNotOffered = 12
    /// Authentication failed.
    case authFailed = 13
    /// A frame other than `connect` arrived before the handshake completed.
    case frameBeforeHandshake = 14
    /// A second `connect` arrived on an established session.
    case unexpectedHandshake = 15
    /// The handshake did not complete in time.
    case handshakeTimeout = 16
    /// The client read too slowly and its queue at the daemon overflowed.
    case queueOverflow = 17
    /// The daemon is shutting down.
    case shuttingDown = 18
    /// The daemon serves its maximum number of clients.
    case tooManyClients = 19
    /// The security architecture refused the message.
    case architectureRefused = 20
    /// The daemon holds too many operations waiting for the ring; this one was dropped.
    case overloaded = 21
    /// The operation is not enabled on this daemon (fault injection without `--fault-injection`).
    case notPermitted = 22
    /// An authentication message does not follow its method's grammar, or came out of turn.
    case authMalformed = 23
    /// Too many failed authentications from this source lately; retry after the time given.
    case authThrottled = 24
    /// Access control denied a join, leave or send (non-fatal: the session goes on).
    case accessDenied = 25
    /// The architecture hands keys to clients and this link is not confidential (plain TCP):
    /// connect over TLS or the local Unix socket.
    case insecureLink = 26

    public var description: String {
        switch self {
        case .malformedFrame: "malformed frame"
        case .unknownFrameKind: "unknown frame kind"
        case .frameTooLarge: "frame too large"
        case .payloadTooLarge: "payload too large"
        case .tooManyGroupsInMessage: "bad number of groups in message"
        case .invalidGroupName: "invalid group name"
        case .tooManyGroupsJoined: "too many groups joined"
        case .badMagic: "bad magic"
        case .unsupportedVersion: "unsupported protocol version"
        case .invalidPrivateName: "invalid private name"
        case .duplicatePrivateName: "private name already in use"
        case .authMethodNotOffered: "authentication method not offered"
        case .authFailed: "authentication failed"
        case .frameBeforeHandshake: "frame before handshake"
        case .unexpectedHandshake: "unexpected second handshake"
        case .handshakeTimeout: "handshake timed out"
        case .queueOverflow: "client queue overflow"
        case .shuttingDown: "daemon shutting down"
        case .tooManyClients: "too many clients"
        case .architectureRefused: "refused by the security architecture"
        case .overloaded: "daemon overloaded"
        case .notPermitted: "operation not permitted on this daemon"
        case .authMalformed: "malformed authentication message"
        case .authThrottled: "authentication throttled"
        case .accessDenied: "access denied"
        case .insecureLink: "link not confidential enough for this architecture"
        }
    }
}
