/// A name of a light-weight client group, or of a client's private group.
///
/// Regular group names are 1...``Limits/groupNameBytesMax`` printable ASCII characters
/// (0x21-0x7E) without `#`. Private group names have the form `#member#daemon` (see
/// ``MemberID``); a message sent to one reaches that client alone, as in Spread.
public struct GroupName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The name as it travels on the wire.
    public let rawValue: String

    /// Validates `rawValue` against `limits`; throws ``WireError/invalidGroupName(_:)``.
    public init(_ rawValue: String, limits: Limits = Limits()) throws(WireError) {
        if rawValue.first == "#" {
            guard MemberID(privateGroup: rawValue, limits: limits) != nil else {
                throw .invalidGroupName(rawValue)
            }
        } else {
            guard rawValue.utf8.count <= limits.groupNameBytesMax,
                  Self.isValidName(rawValue.utf8, allowHash: false)
            else { throw .invalidGroupName(rawValue) }
        }
        self.rawValue = rawValue
    }

    /// Wraps a name already known to be valid (a private group built from a ``MemberID``).
    init(unchecked rawValue: String) { self.rawValue = rawValue }

    /// Whether this is a client's private group (`#member#daemon`).
    public var isPrivate: Bool { rawValue.utf8.first == UInt8(ascii: "#") }

    /// The member this private group belongs to, or `nil` for a regular group.
    public var privateMember: MemberID? {
        isPrivate ? MemberID(privateGroup: rawValue, limits: Limits(groupNameBytesMax: .max)) : nil
    }

    public var description: String { rawValue }
    public static func < (lhs: GroupName, rhs: GroupName) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Printable ASCII (0x21-0x7E), non-empty, optionally without `#`.
    static func isValidName(_ utf8: String.UTF8View, allowHash: Bool) -> Bool {
        guard !utf8.isEmpty else { return false }
        for byte in utf8 {
            guard byte >= 0x21, byte <= 0x7E else { return false }
            if !allowHash, byte == UInt8(ascii: "#") { return false }
        }
        return true
    }
}

/// The identity of a connected client: its private name, unique on its daemon, and the daemon.
///
/// Rendered as its private group name `#name#daemon`, which is what members lists and sender
/// fields carry on the wire. Only the rendering is stored (with where the name ends): an
/// identity is copied into every message its member sends and every list of members, and one
/// string is one reference count to keep, not three. ``name`` and ``daemon`` are read from it.
public struct MemberID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// `#name#daemon`.
    public let description: String
    /// UTF-8 bytes of the name (after the first `#`).
    private let nameBytes: Int

    /// The client-chosen private name (1...``Limits/privateNameBytesMax`` characters).
    public var name: String { String(decoding: nameUTF8, as: UTF8.self) }
    /// The name of the daemon the client is connected to.
    public var daemon: String { String(decoding: daemonUTF8, as: UTF8.self) }

    private var nameUTF8: Substring.UTF8View {
        let utf8 = description.utf8
        let start = utf8.index(after: utf8.startIndex)
        return description[start..<utf8.index(start, offsetBy: nameBytes)].utf8
    }

    private var daemonUTF8: Substring.UTF8View {
        let utf8 = description.utf8
        return description[utf8.index(utf8.startIndex, offsetBy: nameBytes + 2)...].utf8
    }

    /// Whether the member is connected to the daemon named `daemon` (without making a string).
    public func isOn(daemon: String) -> Bool { daemonUTF8.elementsEqual(daemon.utf8) }

    /// Creates a member identity; both parts must be valid names (printable ASCII without `#`).
    public init(name: String, daemon: String, limits: Limits = Limits()) throws(WireError) {
        guard Self.isValidPart(name, bytesMax: limits.privateNameBytesMax) else { throw .invalidPrivateName(name) }
        guard Self.isValidPart(daemon, bytesMax: limits.daemonNameBytesMax) else { throw .invalidDaemonName(daemon) }
        self.description = "#\(name)#\(daemon)"
        self.nameBytes = name.utf8.count
    }

    /// Parses a private group name `#name#daemon`; `nil` if it is not one.
    public init?(privateGroup: String, limits: Limits = Limits()) {
        var text = privateGroup
        let nameBytes = text.withUTF8 { bytes -> Int? in
            guard bytes.count >= 4, bytes[0] == UInt8(ascii: "#"),
                  let second = bytes[1...].firstIndex(of: UInt8(ascii: "#"))
            else { return nil }
            let name = UnsafeBufferPointer(rebasing: bytes[1..<second])
            let daemon = UnsafeBufferPointer(rebasing: bytes[(second + 1)...])
            guard Self.isValidPart(name, bytesMax: limits.privateNameBytesMax),
                  Self.isValidPart(daemon, bytesMax: limits.daemonNameBytesMax)
            else { return nil }
            return name.count
        }
        guard let nameBytes else { return nil }
        self.description = text
        self.nameBytes = nameBytes
    }

    /// The private group name, `#name#daemon`.
    public var privateGroup: GroupName { GroupName(unchecked: description) }

    public static func == (lhs: MemberID, rhs: MemberID) -> Bool { lhs.description == rhs.description }
    public func hash(into hasher: inout Hasher) { hasher.combine(description) }

    /// By daemon, then by name (bytewise: both are ASCII).
    public static func < (lhs: MemberID, rhs: MemberID) -> Bool {
        if !lhs.daemonUTF8.elementsEqual(rhs.daemonUTF8) {
            return lhs.daemonUTF8.lexicographicallyPrecedes(rhs.daemonUTF8)
        }
        return lhs.nameUTF8.lexicographicallyPrecedes(rhs.nameUTF8)
    }

    static func isValidPart(_ part: String, bytesMax: Int) -> Bool {
        var part = part
        return part.withUTF8 { isValidPart($0, bytesMax: bytesMax) }
    }

    static func isValidPart(_ part: UnsafeBufferPointer<UInt8>, bytesMax: Int) -> Bool {
        guard !part.isEmpty, part.count <= bytesMax else { return false }
        return part.allSatisfy { $0 >= 0x21 && $0 <= 0x7E && $0 != UInt8(ascii: "#") }
    }
}

/// Identifies one daemon configuration (a membership of the daemon group).
///
/// With one daemon, `epoch` is the daemon's incarnation; the EVS core numbers configurations by
/// its ring sequence and names the representative that formed it.
public struct ConfigurationID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Monotonically increasing number of the configuration.
    public var epoch: UInt64
    /// The daemon that formed the configuration.
    public var representative: String

    /// Creates a configuration identifier.
    public init(epoch: UInt64, representative: String) {
        self.epoch = epoch
        self.representative = representative
    }

    public var description: String { "\(epoch).\(representative)" }
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.epoch, lhs.representative) < (rhs.epoch, rhs.representative)
    }
}

/// Identifies one view of one group: the configuration it was installed in and the position of
/// the installing operation in that configuration's total order. Every daemon applies the same
/// ordered operations, so every daemon computes the same identifier for the same view.
public struct GroupViewID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The daemon configuration in which the view was installed.
    public var configuration: ConfigurationID
    /// Sequence number of the ordered operation that installed the view.
    public var sequence: UInt64

    /// Creates a group view identifier.
    public init(configuration: ConfigurationID, sequence: UInt64) {
        self.configuration = configuration
        self.sequence = sequence
    }

    /// Whether the view was made in a transitional configuration: its ``configuration`` names
    /// the ring the component moves to, and the high bit of its sequence marks it (with the
    /// old ring's hash), so no other component names a different view alike. Such a view
    /// belongs to the regular configuration before it (a security architecture keys it with
    /// that configuration's key).
    public var isOfTransitionalConfiguration: Bool { sequence >> 63 == 1 }

    /// `epoch.representative.sequence`, as `cohort listen --json` prints it.
    public var description: String { "\(configuration).\(sequence)" }
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.configuration, lhs.sequence) < (rhs.configuration, rhs.sequence)
    }
}

/// A daemon-local handle for one client connection, assigned by the shell.
public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    /// The raw number; unique for the lifetime of one daemon process.
    public var rawValue: UInt64
    /// Wraps a raw session number.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "s\(rawValue)" }
}

/// A point on a monotonic time line, injected by the driver (the NIO shell or the simulator).
/// Cores never read a clock; they compare instants they are given.
public struct Instant: Hashable, Comparable, Sendable {
    /// Nanoseconds since an arbitrary origin chosen by the driver.
    public var nanoseconds: UInt64
    /// Creates an instant.
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    /// The instant `duration` later (saturating at the end of time; negative durations clamp to 0).
    public func advanced(by duration: Duration) -> Instant {
        let (seconds, attoseconds) = duration.components
        let delta = max(0, seconds) &* 1_000_000_000 &+ max(0, attoseconds / 1_000_000_000)
        let (sum, overflow) = nanoseconds.addingReportingOverflow(UInt64(delta))
        return Instant(nanoseconds: overflow ? .max : sum)
    }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
    /// The time from `rhs` to `lhs` (zero if `rhs` is later).
    public static func - (lhs: Self, rhs: Self) -> Duration {
        .nanoseconds(Int64(clamping: lhs.nanoseconds - min(lhs.nanoseconds, rhs.nanoseconds)))
    }
}
