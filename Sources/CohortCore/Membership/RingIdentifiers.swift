/// One run of one daemon: its name and its incarnation.
///
/// A daemon that crashes and restarts comes back with a new incarnation, so the membership
/// protocol sees a new processor and never confuses its state with the old one's (Totem, Amir et
/// al., ACM TOCS 1995, §2: a recovered processor is a new processor).
public struct DaemonID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The daemon's configured name.
    public var name: String
    /// Distinguishes this run from the daemon's earlier ones (increasing).
    public var incarnation: UInt64

    /// A daemon identity.
    public init(name: String, incarnation: UInt64) {
        self.name = name
        self.incarnation = incarnation
    }

    /// `name/incarnation`.
    public var description: String { "\(name)/\(incarnation)" }
    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.name, lhs.incarnation) < (rhs.name, rhs.incarnation) }
}

/// Identifies one ring (one regular configuration of the daemons): a sequence number higher than
/// any its members saw before, and the representative that formed it (Totem §4: ring_id).
public struct RingID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Higher than the sequence of every ring any member belonged to.
    public var sequence: UInt64
    /// The member that formed the ring (the lowest identity among its members).
    public var representative: DaemonID

    /// A ring identifier.
    public init(sequence: UInt64, representative: DaemonID) {
        self.sequence = sequence
        self.representative = representative
    }

    /// The identifier of the ring a daemon holds before it first forms one: no peer has it.
    public static func initial(of daemon: DaemonID) -> RingID { RingID(sequence: 0, representative: daemon) }

    /// `sequence.name/incarnation`.
    public var description: String { "\(sequence).\(representative)" }
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.sequence, lhs.representative) < (rhs.sequence, rhs.representative)
    }

    /// The ``ConfigurationID`` clients see for this ring.
    public var configurationID: ConfigurationID {
        ConfigurationID(epoch: sequence, representative: representative.description)
    }
}

/// A daemon configuration as the ring installs it: regular, or the transitional configuration
/// between two regular ones (Extended Virtual Synchrony).
public struct RingConfiguration: Hashable, Sendable, CustomStringConvertible {
    /// The regular configuration's ring; for a transitional configuration, the ring it leads to.
    public var ring: RingID
    /// For a transitional configuration, the regular ring it leads from; `nil` for a regular one.
    public var previous: RingID?
    /// The members, in ring order. A transitional configuration holds the members of `previous`
    /// that move on to `ring` together.
    public var members: [DaemonID]

    /// A configuration.
    public init(ring: RingID, previous: RingID?, members: [DaemonID]) {
        self.ring = ring
        self.previous = previous
        self.members = members
    }

    /// Whether this is a transitional configuration.
    public var isTransitional: Bool { previous != nil }

    /// `ring` for a regular configuration, `previous→ring` for a transitional one.
    public var description: String {
        if let previous { return "\(previous)→\(ring)" }
        return ring.description
    }
}
