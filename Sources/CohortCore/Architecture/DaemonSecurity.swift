/// The daemon side of a security architecture (docs/architectures.md, "The seam"): a pure state
/// machine that the daemon core drives at every configuration install, with the architecture's
/// own messages among the daemons, its timers, every client's connect and submission, and every
/// view and message delivered to local clients.
///
/// What it can do, through ``DaemonSecurityAction``s and its answers:
/// * send messages to the other daemons, ordered on the ring with everything else (the Servers
///   Agreement Engine's key agreement runs on them);
/// * hold every delivery to local clients from a regular configuration install until its keys are
///   ready (``isReady(_:)``), so clients see a delay and no new API;
/// * attach key material to the views it releases (``secure(_:createdIn:)``);
/// * refuse a client's link (``refusal(of:)``) or message (``admit(_:from:now:)``);
/// * renew every group's view at one place of the total order (``DaemonSecurityAction/renewGroupViews``),
///   when it refreshed the keys views carry.
///
/// The engine runs inside the daemon core's event: no I/O, no clock (``Instant``s are given), no
/// randomness but what its maker injected. `plain` is ``PlainDaemonSecurity``, the identity.
public protocol DaemonSecurityEngine: Sendable {
    /// The registered name of the architecture.
    var architectureName: String { get }
    /// Why a client arriving over `origin` may not be served, if it may not (e.g. plain TCP
    /// where keys are handed out).
    func refusal(of origin: ClientOrigin) -> String?
    /// Handles a configuration install, a message of this architecture from a daemon (its own
    /// included), or one of its timers.
    mutating func on(_ event: DaemonSecurityEvent, now: Instant) -> [DaemonSecurityAction]
    /// Whether deliveries created in the regular configuration `epoch` may go to clients now:
    /// its keys are ready, or they never will be (a newer configuration cut its agreement
    /// short; its views then go without keys).
    func isReady(_ epoch: ConfigurationID) -> Bool
    /// Attaches key material to a view created in `epoch`, once ``isReady(_:)`` says so.
    mutating func secure(_ view: inout GroupView, createdIn epoch: ConfigurationID)
    /// Inspects or transforms a client submission before it is ordered; throwing refuses it.
    /// What it answers is performed as for ``on(_:now:)`` (e.g. a refresh asked for once keys
    /// have sealed enough data); on the message path it answers nothing. (No default: an
    /// engine whose `admit` missed this signature would silently admit everything.)
    mutating func admit(_ message: inout OutgoingMessage, from sender: MemberID, now: Instant) throws(ArchitectureError) -> [DaemonSecurityAction]
    /// Transforms an ordered message once before it is delivered to local members.
    mutating func prepareDelivery(_ message: inout DeliveredMessage)
    /// The daemons' shared key in force, for `cohort status` (the configuration it belongs to
    /// and a fingerprint, never the key); `nil` for architectures without one.
    var keyEpochDescription: String? { get }
    /// Whether an agreement of the daemons is unfinished: running, or its key not yet known to
    /// be held by every daemon. Once the ring is quiet this must be false (the simulator's
    /// liveness check).
    var isAgreeing: Bool { get }
}

extension DaemonSecurityEngine {
    public func refusal(of origin: ClientOrigin) -> String? { nil }
    public mutating func on(_ event: DaemonSecurityEvent, now: Instant) -> [DaemonSecurityAction] { [] }
    public func isReady(_ epoch: ConfigurationID) -> Bool { true }
    public mutating func secure(_ view: inout GroupView, createdIn epoch: ConfigurationID) {}
    public mutating func prepareDelivery(_ message: inout DeliveredMessage) {}
    public var keyEpochDescription: String? { nil }
    public var isAgreeing: Bool { false }
}

/// Inputs of a ``DaemonSecurityEngine``.
public enum DaemonSecurityEvent: Sendable {
    /// The daemons installed a configuration (regular or transitional), in the ring's order.
    case configurationInstalled(RingConfiguration)
    /// A message that a ``DaemonSecurityAction/broadcast(_:)`` of `from` put on the ring,
    /// delivered in the total order (this daemon's own too).
    case daemonMessage([UInt8], from: DaemonID)
    /// A timer armed with ``DaemonSecurityAction/armTimer(_:after:)`` fired.
    case timerFired(UInt64)
}

/// Outputs of a ``DaemonSecurityEngine``, performed in order by the daemon core.
public enum DaemonSecurityAction: Sendable {
    /// Order these bytes on the ring, to every daemon of the configuration (this one included):
    /// they come back as ``DaemonSecurityEvent/daemonMessage(_:from:)``.
    case broadcast([UInt8])
    /// Fire ``DaemonSecurityEvent/timerFired(_:)`` with this token after `after`.
    case armTimer(UInt64, after: Duration)
    /// ``DaemonSecurityEngine/isReady(_:)`` may have changed: held deliveries are retried.
    case keysChanged
    /// Order one renewal of every group's view (``GroupService/Event/renewViews``): the keys
    /// new views get changed at a place of the total order common to every daemon, and the
    /// views in force still carry the old ones. One daemon of the configuration asks; every
    /// daemon applies it where it is ordered.
    case renewGroupViews
    /// Something for the log and the shared metrics (docs/metrics.md).
    case report(DaemonSecurityReport)
}

/// What a daemon security engine reports, in the vocabulary every architecture shares
/// (docs/metrics.md).
public enum DaemonSecurityReport: Sendable, Hashable {
    /// The daemons began agreeing on their shared key. `run` names the agreement: its
    /// configuration, and 0 for the one at the install or n for the n-th refresh by policy.
    case agreementStarted(run: GroupViewID, daemons: Int)
    /// They agreed: `fingerprint` names the key (a hash, never the key) and `duration` runs
    /// from the install (or the refresh request) to the key in force.
    case agreementFinished(run: GroupViewID, fingerprint: UInt64, duration: Duration)
    /// A newer configuration cut the agreement `run` short.
    case agreementAbandoned(run: GroupViewID)
    /// A daemon's message of the architecture was refused (forged, replayed, stale, malformed).
    case messageRefused(reason: String)
    /// A group view got its key.
    case groupRekeyed(GroupName)
    /// A regular group view went to clients without a key: its configuration's agreement was
    /// cut short, and a newer configuration's views follow.
    case viewWithoutKey(GroupName)
}

/// The `plain` architecture's daemon side: no keys, nothing held, nothing refused.
public struct PlainDaemonSecurity: DaemonSecurityEngine {
    /// Creates the engine.
    public init() {}
    public var architectureName: String { "plain" }
    public func admit(_ message: inout OutgoingMessage, from sender: MemberID, now: Instant) throws(ArchitectureError) -> [DaemonSecurityAction] { [] }
}
