/// An operation on light-weight groups, applied by every daemon in one agreed total order.
///
/// Joins, leaves and disconnects travel through the same ordering as messages, so every daemon
/// applies them in the same order and computes identical views (DESIGN.md §1: a client join or
/// leave is one ordered message among daemons, not a daemon membership change).
public enum OrderedOperation: Hashable, Sendable {
    /// `member` joins `group`.
    case join(MemberID, GroupName)
    /// `member` leaves `group`.
    case leave(MemberID, GroupName)
    /// `member` disconnected: it leaves every group it is in.
    case disconnect(MemberID)
    /// A client message.
    case message(DeliveredMessage)
}

/// The membership of every light-weight group, as a pure state machine over ordered operations.
///
/// The table knows nothing of sessions or sockets: it maps an operation at a position of the
/// total order to the views it installs. Daemons hold identical tables because they apply
/// identical operation sequences; each daemon then delivers to its local members only.
public struct GroupTable: Sendable {
    /// One group's current view.
    public struct Group: Hashable, Sendable {
        /// Members in join order.
        public var members: [MemberID]
        /// The view identifier of the current membership.
        public var viewID: GroupViewID
    }

    /// A view change to announce: the view, and who is told of it.
    public struct ViewChange: Hashable, Sendable {
        /// The view.
        public var view: GroupView
        /// The members to notify: the new view's members, plus a leaver told of its own leave.
        public var recipients: [MemberID]
    }

    /// Groups with at least one member, by name.
    public private(set) var groups: [GroupName: Group] = [:] {
        didSet { membershipVersion &+= 1 }
    }
    /// Changes whenever any group's membership may have changed: lets a reader keep what it
    /// derived from the table (e.g. a group's local members) until then.
    public private(set) var membershipVersion: UInt64 = 0
    /// The groups each member belongs to.
    public private(set) var memberships: [MemberID: Set<GroupName>] = [:]
    /// The daemon configuration the table is applying operations in.
    public var configuration: ConfigurationID

    /// An empty table in `configuration`.
    public init(configuration: ConfigurationID) { self.configuration = configuration }

    /// The members of `group` in join order (empty if the group has none).
    public func members(of group: GroupName) -> [MemberID] { groups[group]?.members ?? [] }

    /// How many groups `member` belongs to.
    public func groupCount(of member: MemberID) -> Int { memberships[member]?.count ?? 0 }

    /// Applies a membership operation at position `sequence` of the total order and returns the
    /// views it installs. Messages change no membership; a join of a member already in the group,
    /// or a leave of one not in it, changes nothing and returns no view.
    public mutating func apply(_ operation: OrderedOperation, sequence: UInt64) -> [ViewChange] {
        let viewID = GroupViewID(configuration: configuration, sequence: sequence)
        switch operation {
        case .join(let member, let group):
            var entry = groups[group] ?? Group(members: [], viewID: viewID)
            guard !entry.members.contains(member) else { return [] }
            let previous = entry.members
            entry.members.append(member)
            entry.viewID = viewID
            groups[group] = entry
            memberships[member, default: []].insert(group)
            let view = GroupView(
                group: group, viewID: viewID, members: entry.members, cause: .join,
                changed: [member], continuing: previous)
            return [ViewChange(view: view, recipients: entry.members)]

        case .leave(let member, let group):
            guard let change = remove(member, from: group, cause: .leave, viewID: viewID) else { return [] }
            // The leaver is told of its own leave by a view it is no longer in (Spread's self-leave).
            let selfLeave = GroupView(
                group: group, viewID: viewID, members: [], cause: .leave, changed: [member], continuing: [])
            var changes = [ViewChange(view: selfLeave, recipients: [member])]
            if !change.recipients.isEmpty { changes.append(change) }
            return changes

        case .disconnect(let member):
            let joined = (memberships[member] ?? []).sorted()
            var changes: [ViewChange] = []
            for group in joined {
                if let change = remove(member, from: group, cause: .disconnect, viewID: viewID),
                   !change.recipients.isEmpty {
                    changes.append(change)
                }
            }
            memberships[member] = nil
            return changes

        case .message:
            return []
        }
    }

    private mutating func remove(
        _ member: MemberID, from group: GroupName, cause: ViewCause, viewID: GroupViewID
    ) -> ViewChange? {
        guard var entry = groups[group], let index = entry.members.firstIndex(of: member) else { return nil }
        entry.members.remove(at: index)
        memberships[member]?.remove(group)
        if memberships[member]?.isEmpty == true { memberships[member] = nil }
        if entry.members.isEmpty {
            groups[group] = nil
            return ViewChange(
                view: GroupView(group: group, viewID: viewID, members: [], cause: cause, changed: [member], continuing: []),
                recipients: [])
        }
        entry.viewID = viewID
        groups[group] = entry
        let view = GroupView(
            group: group, viewID: viewID, members: entry.members, cause: cause, changed: [member],
            continuing: entry.members)
        return ViewChange(view: view, recipients: entry.members)
    }
}

// MARK: - Daemon configuration changes

extension GroupTable {
    /// Removes every member whose daemon is not in `daemons` (they left with their daemon) and
    /// returns, per affected group, its members before and the members removed.
    public mutating func removeMembers(notOn daemons: Set<String>) -> [(group: GroupName, before: [MemberID], removed: [MemberID])] {
        var changes: [(group: GroupName, before: [MemberID], removed: [MemberID])] = []
        for name in groups.keys.sorted() {
            let entry = groups[name]!
            let removed = entry.members.filter { !daemons.contains($0.daemon) }
            guard !removed.isEmpty else { continue }
            changes.append((name, entry.members, removed))
            for member in removed {
                memberships[member]?.remove(name)
                if memberships[member]?.isEmpty == true { memberships[member] = nil }
            }
            let kept = entry.members.filter { daemons.contains($0.daemon) }
            if kept.isEmpty { groups[name] = nil } else { groups[name]!.members = kept }
        }
        return changes
    }

    /// The members of each group that are clients of `daemon`, in the group's order.
    public func members(on daemon: String) -> [(group: GroupName, members: [MemberID])] {
        groups.keys.sorted().compactMap { name in
            let local = groups[name]!.members.filter { $0.isOn(daemon: daemon) }
            return local.isEmpty ? nil : (name, local)
        }
    }

    /// Stamps every group with `viewID`, its members unchanged (a renewal of the groups' keys);
    /// returns the groups, by name.
    public mutating func renew(viewID: GroupViewID) -> [GroupName] {
        let names = groups.keys.sorted()
        for name in names { groups[name]!.viewID = viewID }
        return names
    }

    /// Replaces every group's membership by `members` (groups absent from it become empty),
    /// stamping changed groups, and the non-empty groups of `renewing`, with `viewID`; returns
    /// those groups, with their members before.
    public mutating func replaceMembership(
        with members: [GroupName: [MemberID]], viewID: GroupViewID, renewing: Set<GroupName> = []
    ) -> [(group: GroupName, before: [MemberID])] {
        var changed: [(group: GroupName, before: [MemberID])] = []
        for name in Set(groups.keys).union(members.keys).sorted() {
            let before = groups[name]?.members ?? []
            let after = members[name] ?? []
            guard before != after || (renewing.contains(name) && !after.isEmpty) else { continue }
            changed.append((name, before))
            if after.isEmpty { groups[name] = nil } else { groups[name] = Group(members: after, viewID: viewID) }
        }
        memberships = [:]
        for (name, group) in groups {
            for member in group.members { memberships[member, default: []].insert(name) }
        }
        return changed
    }
}
