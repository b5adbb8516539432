/// Virtual Synchrony on top of the daemons' Extended Virtual Synchrony: the flush layer of one
/// client (docs/virtual-synchrony.md).
///
/// The daemons give EVS views: open groups, transitional views, and a message may be delivered
/// in a view other than the one its sender was in. This state machine, run by the client library
/// for every group of one connection, turns them into VS views, after the Spread flush library
/// (Amir's thesis, ch. 6; Friedman and van Renesse, "Strong and weak virtual synchrony in
/// Horus", 1996):
///
/// * Every data message carries the identifier of the VS view its sender had installed when it
///   sent it, and is delivered only in that view (*Sending View Delivery*), and only if its
///   sender is a member (*closed groups*).
/// * On a change of the EVS view the application gets a flush request (``Action/flushRequest(_:)``)
///   and answers with a flush (``Event/flush(_:)``); from then on it may not send in the group
///   (``wrap(_:)`` throws ``VSError/flushing(_:)``). The flush sends a *flush-ok* tagged with the
///   new EVS view's identifier, AGREED, so it is ordered after everything this member sent before.
/// * The new view is installed once every member of the newest EVS view has sent its flush-ok
///   for it. A further change while waiting (a cascade) restarts the wait under the newer view;
///   members that had flushed send their flush-ok for it without being asked again, so the
///   flush converges once the EVS membership stops changing.
/// * A joining member has no view to flush: its flush-ok goes out at once.
///
/// Why this gives VS: a member sends data only between installing a view and its flush-ok, so
/// (AGREED order, EVS failure atomicity) every member that installs the next view together with
/// it has delivered those messages before the sender's flush-ok, in the view they were sent in;
/// a message of a sender that did not come along reaches the survivors in the EVS transitional
/// view, before the next EVS regular view, hence before the next VS install.
///
/// **Secure membership hook.** With ``Settings/holdsViews`` a newly installed view is first
/// handed to a security layer (``Action/hold(_:)``) and reaches the application only on
/// ``Event/release(_:viewID:attachment:)``, with the key material the layer attaches (key
/// agreement in the Layered architecture, key delivery in Integrated VS). The layer may send in
/// the held view (``wrap(_:asSecurityLayer:)``); the application may not. Messages of the held
/// view that arrive before the release are kept and delivered after the view. A change before
/// the release abandons the held view (``Action/abandoned(_:)``): the application never sees it,
/// and the flush goes on under the newer view.
///
/// Pure: no clock, no I/O; the caller performs the actions in order.
public struct VirtualSynchrony: Sendable {
    /// How the flush layer behaves.
    public struct Settings: Sendable, Hashable {
        /// Hold every new view for a security layer until it is released (see the type's docs).
        public var holdsViews = false
        /// Creates settings.
        public init(holdsViews: Bool = false) { self.holdsViews = holdsViews }
    }

    /// What drives the flush layer.
    public enum Event: Sendable, Hashable {
        /// An EVS view of a group, as the daemon delivered it.
        case view(GroupView)
        /// A message as the daemon delivered it (after the architecture opened it).
        case message(DeliveredMessage)
        /// The application flushes `group`: it answers a flush request and sends no more in the
        /// group until the next view.
        case flush(GroupName)
        /// The security layer lets the held view of `group` with this identifier through, with
        /// `attachment` (e.g. key material) for the application's view.
        case release(GroupName, viewID: GroupViewID, attachment: [UInt8])
        /// A message ``wrap(_:asSecurityLayer:)`` tagged for `group` is written to the daemon
        /// connection (or failed to be): a flush-ok waits for every such message, so that it is
        /// ordered after them.
        case written(GroupName)
    }

    /// What the caller must do, in order.
    public enum Action: Sendable, Hashable {
        /// Deliver a VS view to the application, with the security layer's attachment (empty
        /// without a hold).
        case view(GroupView, attachment: [UInt8])
        /// Deliver a message to the application (the VS header removed).
        case message(DeliveredMessage)
        /// Ask the application to flush the group (it answers with ``Event/flush(_:)``).
        case flushRequest(GroupName)
        /// Multicast this flush-ok to the group.
        case send(OutgoingMessage)
        /// A new view waits for the security layer (``Event/release(_:viewID:attachment:)``).
        case hold(GroupView)
        /// A held view was overtaken by a membership change: the security layer drops its work.
        case abandoned(GroupView)
        /// A message not delivered: sent in another view, by a non-member, or not VS at all.
        case discarded(DeliveredMessage, reason: VSDiscard)
    }

    /// Per group: the installed view and the flush under way.
    struct GroupState: Sendable {
        /// The VS view installed (delivered, or held for the security layer).
        var installed: GroupView?
        /// Whether `installed` is held for the security layer.
        var held = false
        /// While a view is held: the view the application last received (restored if the held
        /// one is abandoned).
        var previousOfHeld: GroupView?
        /// Messages of the held view, delivered after it.
        var heldMessages: [DeliveredMessage] = []
        /// The newest EVS regular view, waiting for flush-oks.
        var pending: GroupView?
        /// Members of `installed` that every EVS view since came along with (`continuing`).
        var continuing: Set<MemberID>?
        /// The application was asked to flush and has not answered.
        var flushRequested = false
        /// The application flushed since the last install (it may not send).
        var flushed = false
        /// The members whose flush-ok for `pending` was delivered.
        var flushOKs: Set<MemberID> = []
        /// Messages tagged by `wrap` and not yet written to the daemon connection.
        var unwritten = 0
        /// A flush-ok is due once `unwritten` drops to zero.
        var flushOKDue = false

        /// The application may send: a view is installed and delivered, no flush under way.
        var canSend: Bool { installed != nil && !held && !flushed }
    }

    /// The client this layer runs for.
    public let member: MemberID
    /// Its settings.
    public let settings: Settings
    private var groups: [GroupName: GroupState] = [:]

    /// A flush layer for the client `member`.
    public init(member: MemberID, settings: Settings = Settings()) {
        self.member = member
        self.settings = settings
    }

    /// The VS view of `group` the application last received, if it is a member.
    public func view(of group: GroupName) -> GroupView? {
        guard let state = groups[group], !state.held else { return nil }
        return state.installed
    }

    /// Whether the application may send in `group` now.
    public func canSend(in group: GroupName) -> Bool { groups[group]?.canSend ?? false }

    /// Whether every group's newest view is installed and delivered: no flush, no hold under way.
    public var isSettled: Bool {
        groups.values.allSatisfy { $0.pending == nil && !$0.held && !$0.flushRequested }
    }

    /// The state of each group, for traces.
    public var debugState: String {
        groups.keys.sorted().map { group in
            let state = groups[group]!
            var parts = ["\(group): view \(state.installed.map { "\($0.viewID)" } ?? "none")"]
            if state.held { parts.append("held") }
            if let pending = state.pending {
                parts.append("pending \(pending.viewID) waiting for \(pending.members.filter { !state.flushOKs.contains($0) })")
            }
            if state.flushRequested { parts.append("flush requested") }
            if state.flushed { parts.append("flushed") }
            return parts.joined(separator: " ")
        }.joined(separator: ", ")
    }

    /// Whether a flush of `group` is asked for and not yet given.
    public func flushPending(in group: GroupName) -> Bool { groups[group]?.flushRequested ?? false }

    /// Tags an application message with the view it is sent in. Throws when the group is not
    /// the sender's (closed groups), while a flush is under way, or for several groups (a VS
    /// message names one group; private groups pass unchanged).
    ///
    /// The caller reports with ``Event/written(_:)`` when the tagged message is written (or the
    /// write failed): until then a flush-ok of the group waits, so it cannot overtake it.
    public mutating func wrap(_ message: OutgoingMessage, asSecurityLayer: Bool = false) throws(VSError) -> OutgoingMessage {
        if message.groups.allSatisfy(\.isPrivate) { return message }
        guard message.groups.count == 1, let group = message.groups.first else { throw .severalGroups }
        guard let state = groups[group], let view = state.installed else { throw .notMember(group) }
        if asSecurityLayer {
            guard state.held else { throw .flushing(group) }
        } else {
            guard state.canSend else { throw .flushing(group) }
        }
        var wrapped = message
        wrapped.payload = VSEnvelope.data(viewID: view.viewID).encoded(around: message.payload)
        groups[group]!.unwritten += 1
        return wrapped
    }

    /// Feeds one event; returns what to do.
    public mutating func on(_ event: Event) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .view(let view): onView(view, into: &actions)
        case .message(let message): onMessage(message, into: &actions)
        case .flush(let group): onFlush(group, into: &actions)
        case .release(let group, let viewID, let attachment): onRelease(group, viewID, attachment, into: &actions)
        case .written(let group): onWritten(group, into: &actions)
        }
        return actions
    }

    // MARK: - Events

    private mutating func onView(_ view: GroupView, into actions: inout [Action]) {
        let group = view.group
        guard view.members.contains(member) else {
            // Its own leave (or disconnect): no flush, nothing more of this group.
            if let state = groups.removeValue(forKey: group), state.held, let held = state.installed {
                actions.append(.abandoned(held))
            }
            actions.append(.view(view, attachment: []))
            return
        }
        var state = groups[group] ?? GroupState()
        defer { groups[group] = state }
        if state.held, let held = state.installed {
            // The security layer did not finish: the application never sees the held view;
            // it had flushed for it, so it goes on flushed.
            actions.append(.abandoned(held))
            state.held = false
            state.heldMessages = []
            state.flushed = true
            state.installed = state.previousOfHeld
        }
        if let continuing = state.continuing {
            state.continuing = continuing.intersection(view.continuing)
        }
        guard !view.transitional else {
            requestFlush(&state, group, into: &actions)
            return
        }
        state.pending = view
        state.flushOKs = []
        if state.installed == nil || state.flushed {
            sendFlushOK(&state, into: &actions)
        } else {
            requestFlush(&state, group, into: &actions)
        }
        installIfFlushed(&state, into: &actions)
    }

    private mutating func onMessage(_ message: DeliveredMessage, into actions: inout [Action]) {
        if message.groups.allSatisfy(\.isPrivate) {
            actions.append(.message(message))
            return
        }
        guard message.groups.count == 1, let group = message.groups.first else {
            actions.append(.discarded(message, reason: .notVirtualSynchrony))
            return
        }
        guard let (envelope, payload) = VSEnvelope.decode(message.payload) else {
            actions.append(.discarded(message, reason: .notVirtualSynchrony))
            return
        }
        guard var state = groups[group] else {
            actions.append(.discarded(message, reason: .notMember))
            return
        }
        defer { groups[group] = state }
        switch envelope {
        case .flushOK(let viewID):
            // A flush-ok follows the view it is for at every member (it is sent after that view
            // was delivered, and delivery is causal), so one for another view is stale. (View
            // identifiers are compared for equality only: they do not grow monotonically.)
            guard viewID == state.pending?.viewID else { return }
            state.flushOKs.insert(message.sender)
            installIfFlushed(&state, into: &actions)
        case .data(let viewID):
            guard let view = state.installed, view.viewID == viewID else {
                actions.append(.discarded(message, reason: .otherView))
                return
            }
            guard view.members.contains(message.sender) else {
                actions.append(.discarded(message, reason: .notMember))
                return
            }
            var delivered = message
            delivered.payload = payload
            if state.held {
                state.heldMessages.append(delivered)
            } else {
                actions.append(.message(delivered))
            }
        }
    }

    private mutating func onFlush(_ group: GroupName, into actions: inout [Action]) {
        guard var state = groups[group], state.flushRequested else { return }
        defer { groups[group] = state }
        state.flushRequested = false
        state.flushed = true
        if state.pending != nil {
            sendFlushOK(&state, into: &actions)
            installIfFlushed(&state, into: &actions)
        }
    }

    private mutating func onWritten(_ group: GroupName, into actions: inout [Action]) {
        guard var state = groups[group], state.unwritten > 0 else { return }
        defer { groups[group] = state }
        state.unwritten -= 1
        if state.unwritten == 0, state.flushOKDue { sendFlushOK(&state, into: &actions) }
    }

    private mutating func onRelease(_ group: GroupName, _ viewID: GroupViewID, _ attachment: [UInt8], into actions: inout [Action]) {
        guard var state = groups[group], state.held, let view = state.installed, view.viewID == viewID else { return }
        defer { groups[group] = state }
        state.held = false
        state.previousOfHeld = nil
        state.continuing = Set(view.members)
        actions.append(.view(view, attachment: attachment))
        for message in state.heldMessages { actions.append(.message(message)) }
        state.heldMessages = []
    }

    // MARK: - Flush

    private func requestFlush(_ state: inout GroupState, _ group: GroupName, into actions: inout [Action]) {
        guard state.installed != nil, !state.flushed, !state.flushRequested else { return }
        state.flushRequested = true
        actions.append(.flushRequest(group))
    }

    /// Sends the flush-ok for the pending view, once the messages tagged before it are written.
    private func sendFlushOK(_ state: inout GroupState, into actions: inout [Action]) {
        guard let view = state.pending else { return }
        guard state.unwritten == 0 else {
            state.flushOKDue = true
            return
        }
        state.flushOKDue = false
        actions.append(.send(OutgoingMessage(
            service: .agreed, messageType: VSEnvelope.messageType, groups: [view.group],
            payload: VSEnvelope.flushOK(viewID: view.viewID).encoded(around: []))))
    }

    /// Installs the pending view once every member of it has sent its flush-ok for it.
    private func installIfFlushed(_ state: inout GroupState, into actions: inout [Action]) {
        guard let pending = state.pending, pending.members.allSatisfy(state.flushOKs.contains) else { return }
        let previous = state.installed
        var view = pending
        view.transitional = false
        view.semantics = .virtualSynchrony
        if let previous {
            let old = Set(previous.members), new = Set(view.members)
            let came = (state.continuing ?? old).intersection(new)
            view.continuing = view.members.filter(came.contains)
            view.changed = view.members.filter { !old.contains($0) } + previous.members.filter { !new.contains($0) }
        } else {
            view.continuing = [member]
        }
        state.installed = view
        state.pending = nil
        state.flushOKs = []
        state.flushRequested = false
        if settings.holdsViews {
            // Until the release, `continuing` stays relative to the view the application has.
            state.continuing = state.continuing.map { $0.intersection(view.members) }
            state.held = true
            state.previousOfHeld = previous
            // The application stays flushed until the release: only the security layer sends.
            state.flushed = false
            actions.append(.hold(view))
        } else {
            state.continuing = Set(view.members)
            state.flushed = false
            actions.append(.view(view, attachment: []))
        }
    }
}

/// Why the flush layer did not deliver a message.
public enum VSDiscard: String, Sendable, Hashable {
    /// Sent in a VS view the receiver does not hold (e.g. before it joined).
    case otherView = "sent in another view"
    /// The sender is not a member of the receiver's view (closed groups).
    case notMember = "sender not a member"
    /// No VS header: sent by an EVS client, or to several groups.
    case notVirtualSynchrony = "not a virtual-synchrony message"
}

/// Why the flush layer refused to send.
public enum VSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The sender has no view of the group: VS groups are closed.
    case notMember(GroupName)
    /// A flush of the group is under way (or its new view is held for key work): no sending
    /// until the next view.
    case flushing(GroupName)
    /// A VS message names exactly one group.
    case severalGroups

    public var description: String {
        switch self {
        case .notMember(let group): "not a member of \(group): virtual-synchrony groups are closed"
        case .flushing(let group): "\(group) is flushing for a membership change: no sending until the next view"
        case .severalGroups: "a virtual-synchrony message is sent to exactly one group"
        }
    }
}

extension VirtualSynchrony {
    /// The VS view a payload that the flush layer wrapped was sent for: the sender's view for
    /// data, the new view for a flush-ok; `nil` for bytes without a flush-layer header. A
    /// security layer under VS picks the view's key with it.
    public static func taggedViewID(of payload: [UInt8]) -> GroupViewID? {
        guard payload.starts(with: VSEnvelope.magic) else { return nil }
        return payload.withUnsafeBytes { raw -> GroupViewID? in
            var reader = WireReader(raw)
            do throws(WireError) {
                _ = try reader.readBytes(count: VSEnvelope.magic.count)
                guard (1...2).contains(try reader.readUInt8()) else { return nil }
                return try reader.readViewID()
            } catch {
                return nil
            }
        }
    }
}

/// The header the flush layer puts in front of a payload: magic, kind, VS view identifier.
enum VSEnvelope: Hashable, Sendable {
    /// Application data sent in the view with this identifier.
    case data(viewID: GroupViewID)
    /// The sender flushed and is ready for the view with this identifier.
    case flushOK(viewID: GroupViewID)

    /// The message type of flush-oks (data keeps the application's).
    static let messageType: UInt16 = 0xFF5F
    static let magic: [UInt8] = [0xC0, 0x56, 0x53]

    func encoded(around payload: [UInt8]) -> [UInt8] {
        var writer = WireWriter(capacity: 40 + payload.count)
        writer.write(bytes: Self.magic)
        switch self {
        case .data(let viewID):
            writer.write(UInt8(1))
            writer.write(viewID)
        case .flushOK(let viewID):
            writer.write(UInt8(2))
            writer.write(viewID)
        }
        writer.write(bytes: payload)
        return writer.bytes
    }

    /// The header and the application's payload; nil unless the bytes start with a valid header.
    static func decode(_ bytes: [UInt8]) -> (VSEnvelope, payload: [UInt8])? {
        guard bytes.starts(with: magic) else { return nil }
        return bytes.withUnsafeBytes { raw -> (VSEnvelope, payload: [UInt8])? in
            var reader = WireReader(raw)
            do throws(WireError) {
                _ = try reader.readBytes(count: magic.count)
                let kind = try reader.readUInt8()
                let viewID = try reader.readViewID()
                let payload = try reader.readBytes(count: reader.remaining)
                switch kind {
                case 1: return (.data(viewID: viewID), payload)
                case 2: return payload.isEmpty ? (.flushOK(viewID: viewID), payload) : nil
                default: return nil
                }
            } catch {
                return nil
            }
        }
    }
}
