import CohortCore
import Foundation

/// What one client's flush layer did in one group, in its order (the input of ``VSChecker``).
public enum VSEvent: Hashable, Sendable {
    /// A VS view delivered to the application, with the members that came into it together
    /// with this client from its previous view (`continuing`, Spread's `vs_set`).
    case install(group: String, viewID: String, members: [String], continuing: [String])
    /// The application sent message `sequence` in the view with this identifier.
    case send(group: String, sequence: UInt64, viewID: String)
    /// A message delivered to the application: its sender (client name) and sequence.
    case deliver(group: String, sender: String, sequence: UInt64)
    /// The client left the group (its own leave, or its session ended): it moves on with nobody.
    case left(group: String)
}

/// Checks the Virtual Synchrony properties (DESIGN.md §3; Friedman and van Renesse 1996, Amir's
/// thesis ch. 6) on the logs of VS clients:
///
/// * `vs-view-agreement`: members that install a view with one identifier see the same members.
/// * `vs-sending-view`: a message is delivered in the view in which its sender sent it (where
///   the sender's log records its sends), and every member that delivers it delivers it in the
///   same view (checkable on receivers' logs alone, e.g. `cohort listen --json` of real runs).
/// * `vs-closed-group`: a message is delivered only if its sender is a member of the view.
/// * `vs-same-set`: members that move together from one view to the next (each names the other
///   in the next view's `continuing`) delivered the same messages in the first. Members that
///   were parted in between and merged before either installed a view of its side do not move
///   together, and their views say so.
/// * `vs-self-delivery`: a member that installs a next view has delivered every message it sent
///   in the previous one.
/// * `vs-at-most-once`: no member delivers a message twice.
///
/// The EVS checks of the client logs (order, integrity) run beside it.
public struct VSChecker: Sendable {
    /// Per client, its events in order.
    public var logs: [String: [VSEvent]]

    /// A checker of these logs.
    public init(logs: [String: [VSEvent]]) { self.logs = logs }

    private struct Sent: Hashable { var sender: String; var sequence: UInt64 }
    private struct Transition: Hashable { var group: String; var from: String; var to: String }

    /// Every broken property; empty when all hold.
    public func violations() -> [EVSViolation] {
        var violations: [EVSViolation] = []
        func report(_ property: String, _ detail: String) {
            if violations.count < 50 { violations.append(EVSViolation(property: property, detail: detail)) }
        }
        // Where each message was sent.
        var sentIn: [String: [Sent: String]] = [:]
        for (member, events) in logs {
            for case .send(let group, let sequence, let viewID) in events {
                sentIn[group, default: [:]][Sent(sender: member, sequence: sequence)] = viewID
            }
        }
        var viewMembers: [String: [String: [String]]] = [:]
        var deliveredIn: [String: [Sent: (member: String, viewID: String)]] = [:]
        var deliveredAcross: [Transition: [(member: String, continuing: Set<String>, set: Set<Sent>)]] = [:]
        for member in logs.keys.sorted() {
            var current: [String: (viewID: String, members: Set<String>)] = [:]
            var delivered: [String: Set<Sent>] = [:]
            var ownSends: [String: Set<UInt64>] = [:]
            var everDelivered: Set<Sent> = []
            for event in logs[member]! {
                switch event {
                case .install(let group, let viewID, let members, let continuing):
                    if let seen = viewMembers[group]?[viewID] {
                        if seen != members {
                            report("vs-view-agreement", "\(member) installs \(group) view \(viewID) with \(members), another member with \(seen)")
                        }
                    } else {
                        viewMembers[group, default: [:]][viewID] = members
                    }
                    if let previous = current[group] {
                        let set = delivered[group] ?? []
                        let missing = (ownSends[group] ?? []).filter { !set.contains(Sent(sender: member, sequence: $0)) }
                        if let first = missing.min() {
                            report("vs-self-delivery", "\(member) moves from \(group) view \(previous.viewID) to \(viewID) without delivering its own message \(first) (of \(missing.count))")
                        }
                        let transition = Transition(group: group, from: previous.viewID, to: viewID)
                        let together = Set(continuing)
                        for other in deliveredAcross[transition] ?? []
                        where together.contains(other.member) && other.continuing.contains(member) && other.set != set {
                            let onlyHere = set.subtracting(other.set).count, onlyThere = other.set.subtracting(set).count
                            report("vs-same-set", "\(member) and \(other.member) move together from \(group) view \(previous.viewID) to \(viewID); \(onlyHere) messages delivered only by the first, \(onlyThere) only by the second")
                        }
                        deliveredAcross[transition, default: []].append((member, together, set))
                    }
                    current[group] = (viewID, Set(members))
                    delivered[group] = []
                    ownSends[group] = []
                case .left(let group):
                    current[group] = nil
                    delivered[group] = nil
                    ownSends[group] = nil
                case .send(let group, let sequence, let viewID):
                    if current[group]?.viewID != viewID {
                        report("vs-sending-view", "\(member) sends \(sequence) in \(group) tagged \(viewID) but has view \(current[group]?.viewID ?? "none")")
                    }
                    ownSends[group, default: []].insert(sequence)
                case .deliver(let group, let sender, let sequence):
                    let key = Sent(sender: sender, sequence: sequence)
                    if !everDelivered.insert(key).inserted {
                        report("vs-at-most-once", "\(member) delivers \(sender)'s \(sequence) in \(group) twice")
                    }
                    guard let view = current[group] else {
                        report("vs-closed-group", "\(member) delivers \(sender)'s \(sequence) in \(group) without a view of it")
                        continue
                    }
                    if !view.members.contains(sender) {
                        report("vs-closed-group", "\(member) delivers \(sender)'s \(sequence) in \(group) view \(view.viewID), which \(sender) is not in")
                    }
                    if let sent = sentIn[group]?[key], sent != view.viewID {
                        report("vs-sending-view", "\(member) delivers \(sender)'s \(sequence) in \(group) view \(view.viewID); it was sent in \(sent)")
                    }
                    if let other = deliveredIn[group]?[key] {
                        if other.viewID != view.viewID {
                            report("vs-sending-view", "\(member) delivers \(sender)'s \(sequence) in \(group) view \(view.viewID), \(other.member) in \(other.viewID)")
                        }
                    } else {
                        deliveredIn[group, default: [:]][key] = (member, view.viewID)
                    }
                    delivered[group, default: []].insert(key)
                }
            }
        }
        return violations
    }
}

extension VSChecker {
    /// One VS client's log as `cohort listen --vs --json` prints it: each VS view of `group` an
    /// install (its view id, members and `continuing`), each message to `group` a delivery whose
    /// sender is the sending member and whose sequence is the `SEQ` of a payload `NAME:SEQ:`
    /// (as `cohort send --count` numbers them). A view that does not hold the client is its
    /// leave. EVS views, other groups and error lines are skipped; a message without a number is
    /// an error, so that a log cannot pass unchecked.
    public static func events(listenJSONLines text: String, member: String, group: String) throws(EVSChecker.LogError) -> [VSEvent] {
        var events: [VSEvent] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                throw EVSChecker.LogError(line: number + 1, reason: "not a JSON object")
            }
            guard object["group"] as? String == group else { continue }
            switch object["event"] as? String {
            case "view":
                guard object["semantics"] as? String == GroupSemantics.virtualSynchrony.rawValue else { continue }
                guard let id = object["view_id"] as? String, let members = object["members"] as? [String] else {
                    throw EVSChecker.LogError(line: number + 1, reason: "view needs view_id and members")
                }
                if members.contains(member) {
                    events.append(.install(group: group, viewID: id, members: members, continuing: object["continuing"] as? [String] ?? []))
                } else {
                    events.append(.left(group: group))
                }
            case "message":
                guard let sender = object["sender"] as? String, let payload = object["payload"] as? String else {
                    throw EVSChecker.LogError(line: number + 1, reason: "message needs sender and a text payload")
                }
                let fields = payload.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard fields.count >= 2, let sequence = UInt64(fields[1]) else {
                    throw EVSChecker.LogError(line: number + 1, reason: "payload does not start NAME:SEQ:")
                }
                events.append(.deliver(group: group, sender: sender, sequence: sequence))
            default:
                continue
            }
        }
        return events
    }
}
