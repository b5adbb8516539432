import CohortCore

/// Checks light-weight group views as clients receive them: members that install a regular view
/// with one identifier see the same members (`view-agreement`); a view reaches only its members,
/// or a leaver told of its own leave (`view-membership`); a member stays in a group from view to
/// view until a view removes it — a view that holds it again names it among the members that
/// come along (`view-continuity`); a client receives a group's messages only while its last view
/// of the group holds it (`group-delivery`).
struct GroupViewMonitor: Sendable {
    private(set) var violations: [EVSViolation] = []
    private var regularViews: [GroupName: [GroupViewID: [MemberID]]] = [:]
    /// Per connected client, the groups its last views hold it in.
    private var membership: [MemberID: Set<GroupName>] = [:]

    mutating func connected(_ member: MemberID) { membership[member] = [] }
    mutating func disconnected(_ member: MemberID) { membership[member] = nil }

    mutating func view(_ view: GroupView, at member: MemberID) {
        if !view.transitional, view.members.contains(member) {
            if let seen = regularViews[view.group]?[view.viewID] {
                if seen != view.members {
                    violations.append(.init(property: "view-agreement", detail: "\(member) gets \(view.group) view \(view.viewID) with \(view.members), another member got \(seen)"))
                }
            } else {
                regularViews[view.group, default: [:]][view.viewID] = view.members
            }
        }
        if view.members.contains(member), membership[member]?.contains(view.group) == true, !view.continuing.contains(member) {
            violations.append(.init(property: "view-continuity", detail: "\(member) gets \(view.group) view \(view.viewID) (\(view.cause)) as a newcomer, though its last view holds it"))
        }
        if view.members.contains(member) {
            membership[member, default: []].insert(view.group)
        } else if view.cause == .leave, view.changed == [member] {
            membership[member]?.remove(view.group)
        } else {
            violations.append(.init(property: "view-membership", detail: "\(member) gets \(view.group) view \(view.viewID) (\(view.cause)) without being in it: \(view.members)"))
        }
    }

    mutating func message(_ message: DeliveredMessage, at member: MemberID) {
        for group in message.groups where !group.isPrivate {
            if !(membership[member]?.contains(group) ?? false) {
                violations.append(.init(property: "group-delivery", detail: "\(member) gets a message of \(message.sender) to \(group) without being in its view"))
            }
        }
    }
}
