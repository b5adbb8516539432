/// An access-control policy: principals and their roles, rules on group-name patterns, closed
/// groups, and a default stance (`docs/access-control.md`; the file form is parsed by
/// `AccessPolicyFile` in CohortConfiguration).
///
/// A decision looks at every rule that matches the operation, the principal (by name, by one of
/// its roles, or `*`) and the group (by pattern). **Deny wins**: one matching deny rule denies,
/// whatever allows it elsewhere; otherwise one matching allow rule allows; otherwise the default
/// stance decides.
public struct AccessPolicy: AccessControl, Hashable {
    /// Allow or deny.
    public enum Effect: String, Sendable, Hashable {
        /// The rule allows.
        case allow
        /// The rule denies.
        case deny
    }

    /// One rule.
    public struct Rule: Sendable, Hashable {
        /// Whether it allows or denies.
        public var effect: Effect
        /// The operations it covers.
        public var operations: Set<AccessOperation>
        /// Principals it names; `*` is every principal.
        public var principals: Set<String>
        /// Roles it names: a principal with one of them matches.
        public var roles: Set<String>
        /// The groups it covers.
        public var groups: [GroupPattern]

        /// Creates a rule; it must name at least one operation, subject and group.
        public init(
            _ effect: Effect, _ operations: Set<AccessOperation>, principals: Set<String> = [], roles: Set<String> = [],
            groups: [GroupPattern]
        ) throws(AccessPolicyError) {
            guard !operations.isEmpty else { throw AccessPolicyError("a rule must name at least one operation") }
            guard !principals.isEmpty || !roles.isEmpty else {
                throw AccessPolicyError("a rule must name principals or roles (principals: ['*'] for everyone)")
            }
            guard !groups.isEmpty else { throw AccessPolicyError("a rule must name at least one group pattern") }
            self.effect = effect
            self.operations = operations
            self.principals = principals
            self.roles = roles
            self.groups = groups
        }

        func matches(_ operation: AccessOperation, group: GroupName, principal: Principal, roles principalRoles: Set<String>) -> Bool {
            operations.contains(operation)
                && (principals.contains("*") || principals.contains(principal.name) || !roles.isDisjoint(with: principalRoles))
                && groups.contains { $0.matches(group.rawValue) }
        }
    }

    /// What happens when no rule matches.
    public var defaultEffect: Effect
    /// Roles by principal name; the roles listed under `*` belong to every principal.
    public var roles: [String: Set<String>]
    /// Groups only their members may send to.
    public var closedGroups: [GroupPattern]
    /// The rules, in file order (the order only numbers them: deny wins regardless).
    public var rules: [Rule]

    /// Creates a policy.
    public init(defaultEffect: Effect, roles: [String: Set<String>] = [:], closedGroups: [GroupPattern] = [], rules: [Rule] = []) {
        self.defaultEffect = defaultEffect
        self.roles = roles
        self.closedGroups = closedGroups
        self.rules = rules
    }

    public var enforces: Bool { true }

    public func decide(_ operation: AccessOperation, group: GroupName, principal: Principal) -> AccessDecision {
        let principalRoles = (roles[principal.name] ?? []).union(roles["*"] ?? [])
        var allowingRule: Int?
        for (index, rule) in rules.enumerated() where rule.matches(operation, group: group, principal: principal, roles: principalRoles) {
            if rule.effect == .deny { return .rule(index, allowed: false) }
            if allowingRule == nil { allowingRule = index }
        }
        if let allowingRule { return .rule(allowingRule, allowed: true) }
        return .byDefault(allowed: defaultEffect == .allow)
    }

    public func isClosed(_ group: GroupName) -> Bool {
        closedGroups.contains { $0.matches(group.rawValue) }
    }
}

/// A pattern on group names: exact (`news`), prefix (`chat-*`), or any wildcard pattern with `*`
/// (any run of characters, also none) and `?` (one character) anywhere (`*-admin`, `team-?`).
/// `*` alone matches every group; private groups (`#name#daemon`) are matched like any other name.
public struct GroupPattern: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written.
    public let text: String
    private let bytes: [UInt8]

    /// Parses a pattern: 1 to 100 printable ASCII characters.
    public init(_ text: String) throws(AccessPolicyError) {
        guard !text.isEmpty, text.utf8.count <= 100, text.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw AccessPolicyError("invalid group pattern \(text.debugDescription): 1-100 printable ASCII characters, * and ? as wildcards")
        }
        self.text = text
        bytes = Array(text.utf8)
    }

    /// Whether `name` matches. Iterative glob matching with one backtrack point: linear in
    /// practice, never exponential.
    public func matches(_ name: String) -> Bool {
        let star = UInt8(ascii: "*"), any = UInt8(ascii: "?")
        var pattern = 0, subject = 0
        var starAt: Int?, subjectAtStar = 0
        let subjectBytes = Array(name.utf8)
        while subject < subjectBytes.count {
            if pattern < bytes.count, bytes[pattern] == any || bytes[pattern] == subjectBytes[subject] {
                pattern += 1
                subject += 1
            } else if pattern < bytes.count, bytes[pattern] == star {
                starAt = pattern
                subjectAtStar = subject
                pattern += 1
            } else if let starAt {
                pattern = starAt + 1
                subjectAtStar += 1
                subject = subjectAtStar
            } else {
                return false
            }
        }
        while pattern < bytes.count, bytes[pattern] == star { pattern += 1 }
        return pattern == bytes.count
    }

    public var description: String { text }
}

/// A policy that cannot be built: what is wrong, and where.
public struct AccessPolicyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why.
    public var reason: String
    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
