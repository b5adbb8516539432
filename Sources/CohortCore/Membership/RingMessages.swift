/// One client operation as the ring carries it: opaque bytes ordered with a service level.
///
/// The ring orders every item in one total order (so FIFO, causal and agreed all hold); the
/// service level decides only when an item may be delivered: a SAFE item waits until every
/// member of the ring holds it.
public struct RingItem: Hashable, Sendable {
    /// When the item may be delivered.
    public var service: ServiceLevel
    /// The operation, encoded by the layer above (the group service). A slice: the items of a
    /// received packet share one copy of its bytes.
    public var payload: ArraySlice<UInt8>

    /// An item.
    public init(service: ServiceLevel, payload: [UInt8]) {
        self.service = service
        self.payload = payload[...]
    }

    /// An item whose payload shares storage with other bytes (a received packet's).
    public init(service: ServiceLevel, payload: ArraySlice<UInt8>) {
        self.service = service
        self.payload = payload
    }

    /// Bytes the item takes in a packet.
    var encodedBytes: Int { 1 + 4 + payload.count }
}

/// A packet broadcast on a ring: a sequence number of the ring's total order, and either client
/// items packed together or, during recovery, a packet of an earlier ring retransmitted on the
/// new one (Totem §4.4).
public struct RingPacket: Hashable, Sendable {
    /// What a packet carries.
    public indirect enum Content: Hashable, Sendable {
        /// Client items, packed (several small operations in one packet).
        case items([RingItem])
        /// A packet of an earlier ring, retransmitted during recovery.
        case recovered(RingPacket)
    }

    /// The ring the packet belongs to.
    public var ring: RingID
    /// Its position in the ring's total order (from 1).
    public var sequence: UInt64
    /// The member that broadcast it.
    public var sender: DaemonID
    /// What it carries.
    public var content: Content

    /// A packet.
    public init(ring: RingID, sequence: UInt64, sender: DaemonID, content: Content) {
        self.ring = ring
        self.sequence = sequence
        self.sender = sender
        self.content = content
    }

    /// Whether delivering the packet waits for every member to hold it.
    var isSafe: Bool {
        if case .items(let items) = content { return items.contains { $0.service == .safe } }
        return false
    }
}

/// The regular token that circulates on an operational (or recovering) ring (Totem §4.2).
public struct RingToken: Hashable, Sendable {
    /// The ring.
    public var ring: RingID
    /// Increased by every member that forwards the token: a duplicate or stale copy is ignored.
    public var tokenSequence: UInt64
    /// The highest sequence number assigned on the ring.
    public var sequence: UInt64
    /// All-received-up-to: a lower bound, over the rotation, of what every member holds.
    public var aru: UInt64
    /// The member that last lowered ``aru`` (it alone may raise it again).
    public var aruSetter: DaemonID?
    /// Sequence numbers some member misses; a member holding one rebroadcasts it.
    public var retransmitRequests: [UInt64]
    /// Packets broadcast during the last rotation (flow control).
    public var flowControlCount: UInt32
    /// Recovery is complete: a member that sees this installs the new configuration.
    public var recoveryComplete: Bool

    /// A token.
    public init(
        ring: RingID, tokenSequence: UInt64, sequence: UInt64, aru: UInt64, aruSetter: DaemonID?,
        retransmitRequests: [UInt64], flowControlCount: UInt32, recoveryComplete: Bool
    ) {
        self.ring = ring
        self.tokenSequence = tokenSequence
        self.sequence = sequence
        self.aru = aru
        self.aruSetter = aruSetter
        self.retransmitRequests = retransmitRequests
        self.flowControlCount = flowControlCount
        self.recoveryComplete = recoveryComplete
    }
}

/// A join message, broadcast by a member gathering a new membership (Totem §5.1).
public struct JoinMessage: Hashable, Sendable {
    /// The sender.
    public var sender: DaemonID
    /// The processors the sender believes to be in the new membership, failed or not.
    public var processors: Set<DaemonID>
    /// The processors the sender has given up on.
    public var failed: Set<DaemonID>
    /// The highest ring sequence the sender knows.
    public var ringSequence: UInt64
    /// The highest ring sequence the sender knew when it gave up on the first daemon of
    /// `failed` (0 while `failed` is empty): the age of its failures. A receiver whose ring is
    /// newer takes none of them — they were decided before that ring formed.
    public var failedSince: UInt64

    /// A join message.
    public init(sender: DaemonID, processors: Set<DaemonID>, failed: Set<DaemonID>, ringSequence: UInt64, failedSince: UInt64) {
        self.sender = sender
        self.processors = processors
        self.failed = failed
        self.ringSequence = ringSequence
        self.failedSince = failedSince
    }
}

/// The commit token that forms a new ring: it rotates twice; the first rotation collects each
/// member's state in its old ring, the second tells every member everyone's (Totem §5.2).
public struct CommitToken: Hashable, Sendable {
    /// What a member reports of its old ring.
    public struct Entry: Hashable, Sendable {
        /// The member's old regular ring.
        public var oldRing: RingID
        /// Its all-received-up-to in the old ring.
        public var aru: UInt64
        /// The highest sequence it received in the old ring.
        public var highSequence: UInt64

        /// An entry.
        public init(oldRing: RingID, aru: UInt64, highSequence: UInt64) {
            self.oldRing = oldRing
            self.aru = aru
            self.highSequence = highSequence
        }
    }

    /// The new ring.
    public var ring: RingID
    /// Its members in ring order (sorted).
    public var members: [DaemonID]
    /// The entries filled in so far.
    public var entries: [DaemonID: Entry]
    /// 1 while collecting entries, 2 while distributing them.
    public var rotation: UInt8

    /// A commit token.
    public init(ring: RingID, members: [DaemonID], entries: [DaemonID: Entry], rotation: UInt8) {
        self.ring = ring
        self.members = members
        self.entries = entries
        self.rotation = rotation
    }
}

/// Every message daemons exchange in the membership and ordering protocol.
public enum PeerMessage: Hashable, Sendable {
    /// A broadcast packet.
    case packet(RingPacket)
    /// The regular token, sent to the next member.
    case token(RingToken)
    /// A join message, broadcast.
    case join(JoinMessage)
    /// The commit token, sent to the next member of the forming ring.
    case commit(CommitToken)
    /// The representative of an operational ring announces it, so that separated components
    /// hear each other and merge (Totem's merge detection).
    case mergeDetect(ring: RingID, sender: DaemonID)

    /// Whether this is a membership message (join, commit token, merge detection) rather than
    /// the packets and tokens of an operational ring: what traces print (the others are too many).
    public var isMembership: Bool {
        switch self {
        case .join, .commit, .mergeDetect: true
        case .packet, .token: false
        }
    }
}
