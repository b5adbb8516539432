/// Why a security architecture refused a message or view.
public struct ArchitectureError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A readable reason.
    public var reason: String
    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// The daemon side of a security architecture: every message a client submits, every message
/// delivered to a local client and every view passes through these hooks (DESIGN.md §2,
/// `EncryptionPlacement` and `GroupKeySource`). The `plain` architecture is the identity.
///
/// Hooks are value types owned by the pure ``DaemonCore``; they must not do I/O.
public protocol DaemonSecurityHooks: Sendable {
    /// The registered name of the architecture these hooks implement.
    var architectureName: String { get }
    /// Inspects or transforms a client submission before it is ordered; throwing refuses it.
    mutating func admit(_ message: inout OutgoingMessage, from sender: MemberID) throws(ArchitectureError)
    /// Transforms an ordered message once before it is delivered to local members.
    mutating func prepareDelivery(_ message: inout DeliveredMessage)
    /// Transforms a view (e.g. attaches key material) before local members are told of it.
    mutating func prepareView(_ view: inout GroupView)
}

/// The client side of a security architecture: the client library passes every outgoing
/// message, every incoming message and every view through these hooks.
public protocol ClientSecurityHooks: Sendable {
    /// The registered name of the architecture these hooks implement.
    var architectureName: String { get }
    /// Transforms (e.g. seals) a message before it is sent; throwing refuses the send.
    mutating func seal(_ message: inout OutgoingMessage) throws(ArchitectureError)
    /// Transforms (e.g. opens) a delivered message; throwing drops it with an error event.
    mutating func open(_ message: inout DeliveredMessage) throws(ArchitectureError)
    /// Transforms a view before the application sees it.
    mutating func install(_ view: inout GroupView) throws(ArchitectureError)
}
