/// A message as a client submits it to its daemon.
public struct OutgoingMessage: Hashable, Sendable {
    /// Ordering and delivery guarantee.
    public var service: ServiceType
    /// A 16-bit type tag chosen by the application (Spread's `mess_type`).
    public var messageType: UInt16
    /// One or more destination groups; private groups (`#name#daemon`) address one client.
    public var groups: [GroupName]
    /// Application bytes.
    public var payload: [UInt8]

    /// Creates an outgoing message.
    public init(service: ServiceType, messageType: UInt16 = 0, groups: [GroupName], payload: [UInt8]) {
        self.service = service
        self.messageType = messageType
        self.groups = groups
        self.payload = payload
    }
}

/// A message as a daemon delivers it to a client.
public struct DeliveredMessage: Hashable, Sendable {
    /// Ordering and delivery guarantee it was sent with.
    public var service: ServiceType
    /// The application's type tag.
    public var messageType: UInt16
    /// The sending client.
    public var sender: MemberID
    /// The groups it was sent to.
    public var groups: [GroupName]
    /// Application bytes.
    public var payload: [UInt8]

    /// Creates a delivered message.
    public init(service: ServiceType, messageType: UInt16, sender: MemberID, groups: [GroupName], payload: [UInt8]) {
        self.service = service
        self.messageType = messageType
        self.sender = sender
        self.groups = groups
        self.payload = payload
    }
}

/// Why a group's membership changed (Spread's CAUSED_BY_*).
public enum ViewCause: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// A client joined.
    case join = 1
    /// A client left.
    case leave = 2
    /// A client disconnected (or its daemon dropped it).
    case disconnect = 3
    /// The daemon configuration changed (partition, merge, crash).
    case network = 4
    /// The membership is unchanged; the view renews the group's key (a refresh of the daemons'
    /// key by policy, docs/architectures.md).
    case rekey = 5

    /// Lower-case name, as printed in JSON.
    public var description: String {
        switch self {
        case .join: "join"
        case .leave: "leave"
        case .disconnect: "disconnect"
        case .network: "network"
        case .rekey: "rekey"
        }
    }
}

/// The two group semantics (DESIGN.md §1): what the daemons give, and what the client library
/// builds on it with a flush.
public enum GroupSemantics: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Extended Virtual Synchrony: open groups, transitional views; a message may be delivered
    /// in a view other than its sender's.
    case extendedVirtualSynchrony = "evs"
    /// Virtual Synchrony: closed groups, a flush before every view, Sending View Delivery.
    case virtualSynchrony = "vs"

    /// `evs` or `vs`, as the CLI and JSON name them.
    public var description: String { rawValue }
}

/// One membership view of a group, as delivered to its members.
public struct GroupView: Hashable, Sendable {
    /// The group.
    public var group: GroupName
    /// Identifier of this view; identical at every member.
    public var viewID: GroupViewID
    /// Members in join order (empty in the notification a leaving member gets of its own leave).
    public var members: [MemberID]
    /// What caused the change.
    public var cause: ViewCause
    /// The members that joined, left or disconnected.
    public var changed: [MemberID]
    /// Whether this is a transitional view (EVS): members that move on together, delivered
    /// before the next regular view after a daemon configuration change.
    public var transitional: Bool
    /// Members of the previous view that come into this one together with the receiver
    /// (Spread's `vs_set`); virtual synchrony and key agreement build on it.
    public var continuing: [MemberID]
    /// Which semantics delivered the view: the daemons deliver EVS views; the client library's
    /// flush layer turns them into VS views (``VirtualSynchrony``). Not on the wire.
    public var semantics: GroupSemantics = .extendedVirtualSynchrony
    /// The group key of this view, when the daemons make group keys (Integrated VS: attached by
    /// the members' daemons to regular views only). The client library keeps the secret and
    /// hands the application the view with ``ViewKey/secret`` emptied: applications see the id.
    public var key: ViewKey?

    /// Creates a view.
    public init(
        group: GroupName, viewID: GroupViewID, members: [MemberID], cause: ViewCause,
        changed: [MemberID], transitional: Bool = false, continuing: [MemberID], key: ViewKey? = nil
    ) {
        self.key = key
        self.group = group
        self.viewID = viewID
        self.members = members
        self.cause = cause
        self.changed = changed
        self.transitional = transitional
        self.continuing = continuing
    }
}

/// A view's group key as a daemon delivers it: K_{g,i} and its 32-bit id (docs/architectures.md).
public struct ViewKey: Hashable, Sendable, CustomStringConvertible {
    /// Most bytes a key secret may have on the wire.
    public static let secretBytesMax = 64
    /// The key's id, carried in the clear header of every message sealed under it.
    public var keyID: UInt32
    /// The key itself (32 bytes); empty in the view an application receives.
    public var secret: [UInt8]

    /// Creates a view key.
    public init(keyID: UInt32, secret: [UInt8]) {
        self.keyID = keyID
        self.secret = secret
    }

    /// The id in hex, as logs and `cohort listen --json` print it (never the secret).
    public var description: String { Self.hex(keyID) }

    /// `id` as eight hex digits.
    public static func hex(_ id: UInt32) -> String {
        let digits = String(id, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}

/// A snapshot of a daemon for `cohort status`.
public struct DaemonStatus: Hashable, Sendable {
    /// The daemon's name.
    public var daemonName: String
    /// The daemon's software version.
    public var version: String
    /// The security architecture it runs.
    public var architecture: String
    /// The current daemon configuration.
    public var configuration: ConfigurationID
    /// Daemons in the current configuration (`name/incarnation`).
    public var configurationMembers: [String]
    /// The names of the daemons in the current configuration (without their incarnations).
    public var configurationMemberNames: Set<String> {
        Set(configurationMembers.map { $0.split(separator: "/", maxSplits: 1).first.map(String.init) ?? $0 })
    }
    /// The membership protocol's state: `gather`, `commit`, `recovery` or `operational`.
    public var membershipState: String
    /// Peers whose traffic this daemon drops (fault injection; empty in normal operation).
    public var droppedPeers: [String]
    /// Clients connected to this daemon.
    public var clients: [MemberID]
    /// Every group with its members, by name.
    public var groups: [GroupSummary]
    /// The daemons' shared key in force, for architectures that have one: the configuration
    /// it was agreed in and a short fingerprint (never the key); `nil` otherwise.
    public var daemonKeyEpoch: String?

    /// One group in a status snapshot.
    public struct GroupSummary: Hashable, Sendable {
        /// The group.
        public var group: GroupName
        /// Its current view.
        public var viewID: GroupViewID
        /// Its members in join order.
        public var members: [MemberID]
        /// Creates a summary.
        public init(group: GroupName, viewID: GroupViewID, members: [MemberID]) {
            self.group = group
            self.viewID = viewID
            self.members = members
        }
    }

    /// Creates a status snapshot.
    public init(
        daemonName: String, version: String, architecture: String, configuration: ConfigurationID,
        configurationMembers: [String], membershipState: String = "operational", droppedPeers: [String] = [],
        clients: [MemberID], groups: [GroupSummary], daemonKeyEpoch: String? = nil
    ) {
        self.daemonName = daemonName
        self.version = version
        self.architecture = architecture
        self.configuration = configuration
        self.configurationMembers = configurationMembers
        self.membershipState = membershipState
        self.droppedPeers = droppedPeers
        self.clients = clients
        self.groups = groups
        self.daemonKeyEpoch = daemonKeyEpoch
    }
}
