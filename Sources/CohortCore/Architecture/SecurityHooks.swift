/// Why a security architecture refused a message or view.
public struct ArchitectureError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of refusal it is: the client library reports the kinds differently.
    public enum Kind: Hashable, Sendable {
        /// Refused: modified, replayed, forged, or not allowed (an error event).
        case refused
        /// Sealed under a key this member never held: a message of a view it was not in (the
        /// flush layer would discard it too); dropped and counted, no error event.
        case notForThisMember
    }

    /// A readable reason.
    public var reason: String
    /// The kind of refusal.
    public var kind: Kind
    /// Creates an error.
    public init(_ reason: String, kind: Kind = .refused) {
        self.reason = reason
        self.kind = kind
    }
    public var description: String { reason }
}

/// The client side of a security architecture: the client library passes every outgoing
/// message, every incoming message and every view through these hooks (docs/architectures.md,
/// "The seam").
public protocol ClientSecurityHooks: Sendable {
    /// The registered name of the architecture these hooks implement.
    var architectureName: String { get }
    /// Whether groups must be joined with Virtual Synchrony (the architecture keys VS views).
    var requiresVirtualSynchrony: Bool { get }
    /// Transforms (e.g. seals) a message before it is sent; throwing refuses the send.
    mutating func seal(_ message: inout OutgoingMessage) throws(ArchitectureError)
    /// Transforms (e.g. opens) a delivered message; throwing drops it (an error event for
    /// ``ArchitectureError/Kind/refused``).
    mutating func open(_ message: inout DeliveredMessage) throws(ArchitectureError)
    /// Takes what the architecture needs from a daemon's view (e.g. its key) before the flush
    /// layer and the application see it.
    mutating func install(_ view: inout GroupView) throws(ArchitectureError)
    /// The flush layer installed `view` for the application (after ``install(_:)`` took it):
    /// what belongs to the views before it in its group may go (their messages are delivered
    /// or discarded by now).
    mutating func viewInstalled(_ view: GroupView)
}

extension ClientSecurityHooks {
    /// By default the application chooses the semantics.
    public var requiresVirtualSynchrony: Bool { false }
    /// By default nothing is kept per view.
    public mutating func viewInstalled(_ view: GroupView) {}
}
