/// The delivery guarantee a message asks for, weakest first (Spread's service types).
public enum ServiceLevel: UInt8, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// Best effort: may be lost or reordered.
    case unreliable = 1
    /// Delivered, in no particular order.
    case reliable = 2
    /// Delivered in the order the sender sent it (per sender).
    case fifo = 3
    /// Delivered after every message that causally precedes it.
    case causal = 4
    /// Delivered in one total order, identical at every member (AGREED).
    case agreed = 5
    /// Total order, and delivered only once every daemon of the configuration holds it (SAFE).
    case safe = 6

    /// The lower-case name used by the CLI and JSON output.
    public var description: String {
        switch self {
        case .unreliable: "unreliable"
        case .reliable: "reliable"
        case .fifo: "fifo"
        case .causal: "causal"
        case .agreed: "agreed"
        case .safe: "safe"
        }
    }

    /// Parses a name as printed by ``description`` (case-insensitive).
    public init?(name: String) {
        guard let level = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = level
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A service level plus flags, as carried by every client message.
public struct ServiceType: Hashable, Sendable, CustomStringConvertible {
    /// The ordering and reliability guarantee.
    public var level: ServiceLevel
    /// Do not deliver the message back to its sender (Spread's SELF_DISCARD).
    public var selfDiscard: Bool

    /// Creates a service type.
    public init(_ level: ServiceLevel, selfDiscard: Bool = false) {
        self.level = level
        self.selfDiscard = selfDiscard
    }

    /// Best effort.
    public static let unreliable = ServiceType(.unreliable)
    /// Reliable, unordered.
    public static let reliable = ServiceType(.reliable)
    /// Reliable, in sender order.
    public static let fifo = ServiceType(.fifo)
    /// Reliable, in causal order.
    public static let causal = ServiceType(.causal)
    /// Total order (the default of the CLI).
    public static let agreed = ServiceType(.agreed)
    /// Total order, delivered once every daemon holds the message.
    public static let safe = ServiceType(.safe)

    public var description: String { selfDiscard ? "\(level)+self-discard" : level.description }

    /// Flag bits of the wire encoding.
    static let selfDiscardBit: UInt8 = 0x01
}
