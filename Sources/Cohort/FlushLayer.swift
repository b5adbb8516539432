import CohortCore
import Synchronization

/// The Virtual Synchrony flush layer of one connection (``VirtualSynchrony``, the pure state
/// machine), shared by the tasks that send and the one that reads events. Groups joined with EVS
/// semantics pass through it untouched.
final class FlushLayer: Sendable {
    private struct State: Sendable {
        var core: VirtualSynchrony
        /// The groups joined with VS semantics.
        var groups: Set<GroupName> = []
    }

    let policy: FlushPolicy
    private let state: Mutex<State>
    /// `!groups.isEmpty`, written under the lock: a connection without VS groups sends and reads
    /// without taking it.
    private let anyGroups = Atomic<Bool>(false)

    init(member: MemberID, policy: FlushPolicy) {
        self.policy = policy
        state = Mutex(State(core: VirtualSynchrony(member: member)))
    }

    /// Marks `group` as a VS group (before its join is sent, so its first view is the layer's).
    func adopt(_ group: GroupName) {
        state.withLock {
            $0.groups.insert(group)
            anyGroups.store(true, ordering: .releasing)
        }
    }

    /// Whether any group is a VS group (else every event passes by untouched).
    var hasGroups: Bool { anyGroups.load(ordering: .acquiring) }

    /// Whether the message or view of `group` is the flush layer's.
    func governs(_ group: GroupName) -> Bool {
        hasGroups && state.withLock { $0.groups.contains(group) }
    }

    /// Tags an application message of a VS group with its view; nil for EVS groups and private
    /// groups. Report the write with ``written(_:)``.
    func wrap(_ message: OutgoingMessage) throws(VSError) -> (message: OutgoingMessage, group: GroupName)? {
        guard hasGroups else { return nil }
        return try state.withLock { (state) throws(VSError) -> (message: OutgoingMessage, group: GroupName)? in
            let vs = message.groups.filter { state.groups.contains($0) }
            if vs.isEmpty { return nil }
            guard message.groups.count == 1 else { throw .severalGroups }
            return (try state.core.wrap(message), vs[0])
        }
    }

    /// The tagged message of `group` is written (or failed to be): flush-oks it held back.
    func written(_ group: GroupName) -> [OutgoingMessage] {
        sends(of: state.withLock { $0.core.on(.written(group)) })
    }

    /// The application flushes `group`: the flush-ok to send.
    func flush(_ group: GroupName) -> [OutgoingMessage] {
        sends(of: state.withLock { $0.core.on(.flush(group)) })
    }

    /// Runs the events of one read through the layer, in order: the events for the application
    /// and the flush-oks to send.
    func filter(_ events: [CohortEvent]) -> (events: [CohortEvent], sends: [OutgoingMessage]) {
        state.withLock { state in
            var out: [CohortEvent] = []
            out.reserveCapacity(events.count)
            var sends: [OutgoingMessage] = []
            for event in events {
                let input: VirtualSynchrony.Event
                switch event {
                case .message(let message) where message.groups.contains(where: state.groups.contains):
                    input = .message(message)
                case .view(let view) where state.groups.contains(view.group):
                    input = .view(view)
                    if !view.members.contains(state.core.member) {
                        state.groups.remove(view.group)
                        anyGroups.store(!state.groups.isEmpty, ordering: .releasing)
                    }
                default:
                    out.append(event)
                    continue
                }
                var pending = state.core.on(input)
                var index = 0
                while index < pending.count {
                    switch pending[index] {
                    case .view(let view, _): out.append(.view(view))
                    case .message(let message): out.append(.message(message))
                    case .send(let message): sends.append(message)
                    case .flushRequest(let group):
                        switch policy {
                        case .automatic: pending += state.core.on(.flush(group))
                        case .manual: out.append(.flushRequest(group))
                        }
                    case .hold, .abandoned, .discarded:
                        // No security layer holds views in this library yet; discards are the
                        // layer's to make (other view, non-member, not VS).
                        break
                    }
                    index += 1
                }
            }
            return (out, sends)
        }
    }

    private func sends(of actions: [VirtualSynchrony.Action]) -> [OutgoingMessage] {
        actions.compactMap { if case .send(let message) = $0 { message } else { nil } }
    }
}
