/// Access control: whether a principal may join, leave, send to, or send privately to a group
/// (`docs/access-control.md`). The daemon that serves the client decides, before anything is
/// ordered or forwarded; a denial is answered to that client alone and changes nothing else.
///
/// A strategy (DESIGN.md §2), like Spread's `acp_ops` table: ``AllowEverything`` when no policy
/// is configured, ``AccessPolicy`` from a policy file otherwise. Pure: the shell loads the file,
/// and replaces the strategy on SIGHUP (``DaemonCore/Event/accessControlChanged(_:)``).
public protocol AccessControl: Sendable {
    /// Whether this strategy can deny anything at all; a daemon skips the checks otherwise.
    var enforces: Bool { get }
    /// Decides one operation by `principal` on `group` (for ``AccessOperation/privateSend``,
    /// `group` is the receiver's private group `#name#daemon`).
    func decide(_ operation: AccessOperation, group: GroupName, principal: Principal) -> AccessDecision
    /// Whether `group` is closed: only its members may send to it.
    func isClosed(_ group: GroupName) -> Bool
}

/// The operations access control decides on.
public enum AccessOperation: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Joining a group.
    case join
    /// Leaving a group (a disconnect always leaves: it is never denied).
    case leave
    /// Sending to a (regular) group.
    case send
    /// Sending to a client's private group.
    case privateSend = "private-send"

    public var description: String { rawValue }
}

/// The outcome of a decision, and what made it (for the audit log and the metrics).
public struct AccessDecision: Hashable, Sendable, CustomStringConvertible {
    /// Whether the operation may go ahead.
    public var allowed: Bool
    /// What decided: `rule N` (1-based, in file order), `default`, or `closed group`.
    public var reason: String
    /// A short label for metrics: `rule`, `default`, `closed_group`.
    public var label: String

    /// Creates a decision.
    public init(allowed: Bool, reason: String, label: String) {
        self.allowed = allowed
        self.reason = reason
        self.label = label
    }

    /// Decided by rule `index` (0-based; shown 1-based).
    public static func rule(_ index: Int, allowed: Bool) -> AccessDecision {
        AccessDecision(allowed: allowed, reason: "rule \(index + 1)", label: "rule")
    }

    /// Decided by the policy's default stance.
    public static func byDefault(allowed: Bool) -> AccessDecision {
        AccessDecision(allowed: allowed, reason: "default", label: "default")
    }

    public var description: String { "\(allowed ? "allowed" : "denied") by \(reason)" }
}

/// A denied operation, as the audit log and the client see it.
public struct AccessDenial: Hashable, Sendable, CustomStringConvertible {
    /// What was attempted.
    public var operation: AccessOperation
    /// On which group.
    public var group: GroupName
    /// By whom.
    public var principal: Principal
    /// The client's member identity.
    public var member: MemberID
    /// What decided.
    public var decision: AccessDecision

    /// Creates a denial.
    public init(operation: AccessOperation, group: GroupName, principal: Principal, member: MemberID, decision: AccessDecision) {
        self.operation = operation
        self.group = group
        self.principal = principal
        self.member = member
        self.decision = decision
    }

    /// The reason the client reads.
    public var description: String {
        "\(operation) on group \(group) denied for principal \(principal) (\(decision.reason))"
    }
}

/// No access control: every operation is allowed and every group is open (Spread's and EVS's
/// semantics). What a daemon without a policy file runs.
public struct AllowEverything: AccessControl {
    /// Creates it.
    public init() {}
    public var enforces: Bool { false }
    public func decide(_ operation: AccessOperation, group: GroupName, principal: Principal) -> AccessDecision {
        .byDefault(allowed: true)
    }
    public func isClosed(_ group: GroupName) -> Bool { false }
}
