/// Light-weight client groups across daemons: the group table replicated on every daemon by the
/// ring's total order (DESIGN.md §1).
///
/// Joins, leaves, disconnects and client messages are items of the ring, so every daemon applies
/// them in one order and computes identical views. When the daemon configuration changes, each
/// group that loses members gets a transitional view (the members that come along), and once the
/// new configuration is installed the daemons exchange their local memberships (one ordered state
/// item each, as Spread's group state exchange does) and every group gets a view with cause
/// NETWORK. Client operations wait in the daemon while the exchange is open (as Spread swaps its
/// protocol queue for the groups queue), so that none is ordered against a table the exchange
/// may yet fail to complete. A view tells each recipient which members came with it from its
/// previous view (`continuing`).
///
/// A pure state machine like the ring it drives: ``on(_:now:)`` takes an ``Event`` and returns
/// ``Action``s, among them the ring's messages and timers for the driver to carry.
public struct GroupService: Sendable {
    /// Inputs.
    public enum Event: Sendable {
        /// Start the ring.
        case start
        /// A peer message arrived.
        case peer(PeerMessage)
        /// A ring timer fired.
        case timerFired(TotemRing.Timer)
        /// A local client joins a group.
        case join(MemberID, GroupName)
        /// A local client leaves a group.
        case leave(MemberID, GroupName)
        /// A local client is gone: it leaves every group.
        case disconnect(MemberID)
        /// A local client's message (its sender is the client).
        case multicast(DeliveredMessage)
        /// A message of the security architecture to every daemon of the configuration
        /// (``DaemonSecurityAction/broadcast(_:)``): ordered at once, even while the state
        /// exchange holds client operations (the daemons' key agreement runs meanwhile).
        case security([UInt8])
        /// Give every group a view with the same members and a new id (cause ``ViewCause/rekey``),
        /// at this item's place in the total order: the security architecture refreshed the
        /// keys its views carry (``DaemonSecurityAction/renewGroupViews``). Ordered at once like
        /// ``security(_:)``; applied after the state exchange if one is open.
        case renewViews
    }

    /// Outputs, performed by the driver in order.
    public enum Action: Sendable {
        /// Carry a ring message to every daemon that can hear this one.
        case broadcast(PeerMessage)
        /// Carry a ring message to one daemon.
        case send(PeerMessage, to: DaemonID)
        /// Arm a ring timer.
        case armTimer(TotemRing.Timer, after: Duration)
        /// Stop or resume taking client operations.
        case pauseIntake(Bool)
        /// Deliver a view to local members. (Boxed, as in ``DaemonFrame``: views are rare, and
        /// an inline one made every action bigger to move.)
        indirect case view(GroupView, to: [MemberID])
        /// Deliver a message to local members; `origin` identifies it in the ring's order.
        case message(DeliveredMessage, to: [MemberID], origin: ItemOrigin)
        /// The daemon configuration changed (regular or transitional).
        case configuration(RingConfiguration)
        /// An ordered item did not decode (a peer bug or attack): dropped, counted.
        case droppedItem(WireError)
        /// An item was delivered in the total order (only with ``reportsOrder``; for checkers).
        case ordered(ItemOrigin, ServiceLevel)
        /// A local client's operation was refused: twice the ring's pending limit waits already
        /// (intake should have been paused); the client is to be told. (A disconnect is never
        /// refused.)
        case refused(MemberID)
        /// A local client's disconnect was ordered: it left every group everywhere, and its
        /// private name may serve a new session (until then, views and messages for the old
        /// session's groups would reach the new one).
        case departed(MemberID)
        /// A security architecture's message from a daemon (``Event/security(_:)``), delivered
        /// in the total order.
        case security([UInt8], from: DaemonID)
    }

    /// Identifies an ordered item: its daemon and that daemon's count of items submitted.
    public struct ItemOrigin: Hashable, Sendable {
        /// The daemon that submitted it.
        public var daemon: DaemonID
        /// Its number among that daemon's items (from 1, increasing).
        public var sequence: UInt64
    }

    /// What one daemon tells the others when a configuration is installed: its local clients'
    /// memberships.
    struct StateExchange: Sendable {
        var configuration: RingConfiguration
        var expected: Set<DaemonID>
        var received: [(daemon: DaemonID, memberships: [(group: GroupName, members: [MemberID])])] = []
        /// Other items delivered before the exchange completed: those of daemons that completed
        /// it (and so send again) while this one still waits for a state item it may never get.
        var buffered: [(operation: GroupOperation, origin: ItemOrigin, viewSequence: UInt64)] = []
    }

    /// The ring underneath.
    public private(set) var ring: TotemRing
    /// The replicated group table.
    public private(set) var table: GroupTable
    /// Bounds on what an ordered item may carry.
    public let limits: Limits
    private var submitted: UInt64 = 0
    private var exchange: StateExchange?
    /// Client items (encoded, their item number not yet set) that wait for the open exchange to
    /// complete, oldest first. Ordering them meanwhile would apply them to a table that a cascade
    /// can leave without their sender's state: a client's messages then reached nobody, itself
    /// included, with no view telling it why (the VS self-delivery check, seed 2008).
    private var held: [RingItem] = []
    /// The ring asks for intake to pause (its queue is long).
    private var ringBacklogged = false
    /// ``held`` reached the ring's pending limit.
    private var heldBacklogged = false
    /// Whether intake is paused (the last ``Action/pauseIntake(_:)`` said so).
    private var intakePaused = false
    /// This daemon's own clients' memberships, in join order: what its state items say (the
    /// table holds them too, but names other daemons' clients as well).
    private var ownMemberships: [GroupName: [MemberID]] = [:]
    /// A transitional configuration installed while the state exchange was open: its departed
    /// members leave once the exchange completes, or silently if the next regular configuration
    /// cuts it short.
    private var deferredTransitional: RingConfiguration?
    /// Between a transitional configuration and the next regular one: the old ring's hash.
    private var transitionalViews: UInt64?
    /// The daemons of the current configuration (regular, or transitional), by name.
    private var currentDaemons: Set<String> = []
    /// Items that did not decode.
    public private(set) var droppedItems = 0
    /// The last sender and groups decoded: a stream of messages does not re-parse them.
    private var decodeMemo = DecodeMemo()
    /// The ring's actions for one event, reused.
    private var ringActions: [TotemRing.Action] = []
    /// Each group's local members, valid for the table's `membershipVersion` noted beside.
    private var localMembersCache: [GroupName: [MemberID]] = [:]
    private var localMembersVersion: UInt64 = .max
    /// The group looked up last and its local members: a flood to one group finds it here
    /// without hashing the name (a decoded name is the memo's string, so `==` compares storage).
    private var lastLocalMembers: (group: GroupName, members: [MemberID])?
    /// Report every delivered item with ``Action/ordered(_:_:)`` (simulations and logs).
    public var reportsOrder = false

    /// A group service on a ring with `settings`.
    public init(ring settings: TotemRing.Settings, limits: Limits = Limits()) throws(WireError) {
        ring = try TotemRing(settings: settings)
        table = GroupTable(configuration: RingID.initial(of: settings.daemon).configurationID)
        self.limits = limits
    }

    private var me: DaemonID { ring.settings.daemon }

    /// Whether the daemons are operational and the group state is exchanged: client operations
    /// are ordered without delay.
    public var isStable: Bool { ring.isOperational && exchange == nil }

    // MARK: - Events

    /// Handles one event at `now`.
    public mutating func on(_ event: Event, now: Instant) -> [Action] {
        var actions: [Action] = []
        on(event, now: now, into: &actions)
        return actions
    }

    /// Handles one event at `now`, appending the actions to `actions` (a driver's reused buffer).
    public mutating func on(_ event: Event, now: Instant, into actions: inout [Action]) {
        switch event {
        case .start: drive(.start, now: now, into: &actions)
        case .peer(let message): drive(.received(message), now: now, into: &actions)
        case .timerFired(let timer): drive(.timerFired(timer), now: now, into: &actions)
        case .join(let member, let group): submit(.join(member, group), service: .agreed, now: now, into: &actions)
        case .leave(let member, let group): submit(.leave(member, group), service: .agreed, now: now, into: &actions)
        case .disconnect(let member): submit(.disconnect(member), service: .agreed, now: now, into: &actions)
        case .multicast(let message): submit(.message(message), service: message.service.level, now: now, into: &actions)
        case .security(let bytes):
            submitted += 1
            let item = RingItem(service: .agreed, payload: GroupOperation.security(bytes).encoded(sequence: submitted))
            drive(.submitControl(item), now: now, into: &actions)
        case .renewViews:
            submitted += 1
            drive(.submitControl(RingItem(service: .agreed, payload: GroupOperation.renew.encoded(sequence: submitted))), now: now, into: &actions)
        }
    }

    private mutating func submit(_ operation: GroupOperation, service: ServiceLevel, now: Instant, into actions: inout [Action]) {
        // Every item is ordered (UNRELIABLE to AGREED share the total order); SAFE waits for all.
        let service: ServiceLevel = service == .safe ? .safe : .agreed
        // A disconnect is never refused: a member left in its groups would stay there for good.
        let refusable: Bool
        if case .disconnect = operation { refusable = false } else { refusable = true }
        guard exchange == nil else {
            if refusable, held.count >= ring.settings.pendingItemsRefused ?? 2 * ring.settings.pendingItemsMax {
                if let client = operation.client { actions.append(.refused(client)) }
            } else {
                held.append(RingItem(service: service, payload: operation.encoded(sequence: 0)))
                noteHeld(into: &actions)
            }
            return
        }
        submitted += 1
        let item = RingItem(service: service, payload: operation.encoded(sequence: submitted))
        drive(refusable ? .submit(item) : .submitControl(item), now: now, client: operation.client, into: &actions)
    }

    /// Hands the held client items to the ring, numbered now: items leave in the order of their
    /// numbers.
    private mutating func releaseHeld(now: Instant, into actions: inout [Action]) {
        let items = held
        held = []
        noteHeld(into: &actions)
        for item in items {
            submitted += 1
            var payload = Array(item.payload)
            for index in 0..<8 { payload[index] = UInt8(truncatingIfNeeded: submitted >> (56 - 8 * index)) }
            // Never refused: `held` is bounded as the ring's queue is.
            drive(.submitControl(RingItem(service: item.service, payload: payload)), now: now, into: &actions)
        }
    }

    /// Pauses intake once the held items reach the ring's pending limit (they are released all at
    /// once, so it resumes then).
    private mutating func noteHeld(into actions: inout [Action]) {
        heldBacklogged = held.count >= ring.settings.pendingItemsMax
        updateIntake(into: &actions)
    }

    /// Tells the driver to pause intake while the ring's queue or the held items are long, and
    /// to resume it once neither is.
    private mutating func updateIntake(into actions: inout [Action]) {
        let paused = ringBacklogged || heldBacklogged
        guard paused != intakePaused else { return }
        intakePaused = paused
        actions.append(.pauseIntake(paused))
    }

    /// Runs the ring on `event`; a refused submission is reported as `client`'s.
    private mutating func drive(_ event: TotemRing.Event, now: Instant, client: MemberID? = nil, into actions: inout [Action]) {
        var ringActions = self.ringActions
        self.ringActions = []
        ring.on(event, now: now, into: &ringActions)
        defer {
            ringActions.removeAll(keepingCapacity: true)
            self.ringActions = ringActions
        }
        for action in ringActions {
            switch action {
            case .broadcast(let message): actions.append(.broadcast(message))
            case .send(let message, let to): actions.append(.send(message, to: to))
            case .armTimer(let timer, let after): actions.append(.armTimer(timer, after: after))
            case .pauseIntake(let paused):
                ringBacklogged = paused
                updateIntake(into: &actions)
            case .refused: if let client { actions.append(.refused(client)) }
            case .deliver(let delivery): onDelivery(delivery, now: now, into: &actions)
            case .install(let configuration): onInstall(configuration, now: now, into: &actions)
            }
        }
    }

    // MARK: - Ordered items

    private mutating func onDelivery(_ delivery: RingDelivery, now: Instant, into actions: inout [Action]) {
        let decoded: (sequence: UInt64, operation: GroupOperation, payload: Range<Int>?)
        do {
            decoded = try GroupOperation.decodeLeavingPayload(delivery.item.payload, limits: limits, memo: &decodeMemo)
        } catch {
            droppedItems += 1
            actions.append(.droppedItem(error))
            return
        }
        let origin = ItemOrigin(daemon: delivery.sender, sequence: decoded.sequence)
        if reportsOrder { actions.append(.ordered(origin, delivery.item.service)) }
        if case .security(let bytes) = decoded.operation {
            // The architecture's own protocol: never held by the state exchange.
            actions.append(.security(bytes, from: delivery.sender))
            return
        }
        let viewSequence = delivery.sequence << 16 | UInt64(delivery.index)
        if let open = exchange {
            // (Mutated in place: the buffer can grow long while a state item is awaited.)
            if case .state(let configuration, let memberships) = decoded.operation,
               configuration == open.configuration.ring.configurationID, open.expected.contains(delivery.sender),
               !open.received.contains(where: { $0.daemon == delivery.sender }) {
                exchange!.received.append((delivery.sender, memberships))
                if exchange!.received.count == open.expected.count {
                    completeExchange(viewSequence: viewSequence, now: now, into: &actions)
                }
            } else {
                let operation = decoded.operation.filling(payload: decoded.payload, from: delivery.item.payload)
                exchange!.buffered.append((operation, origin, viewSequence))
            }
            return
        }
        apply(decoded.operation, origin: origin, viewSequence: viewSequence,
              payloadIn: delivery.item.payload, at: decoded.payload, into: &actions)
    }

    /// Applies an ordered operation. A message whose payload was left in its item (in `item`, at
    /// `range`) gets it copied only when it has local recipients.
    private mutating func apply(
        _ operation: GroupOperation, origin: ItemOrigin, viewSequence: UInt64,
        payloadIn item: ArraySlice<UInt8> = [], at range: Range<Int>? = nil, into actions: inout [Action]
    ) {
        switch operation {
        case .state, .security:
            // A state item of an exchange that completed without it (its sender left): stale.
            // (Security items never get here.)
            return
        case .renew:
            // Only a daemon of the configuration renews (a stale item of one that left is ignored).
            guard currentDaemons.contains(origin.daemon.name) else { return }
            let viewID = GroupViewID(configuration: table.configuration, sequence: nextViewSequence(viewSequence))
            for group in table.renew(viewID: viewID) {
                let members = table.members(of: group)
                let local = members.filter { $0.isOn(daemon: me.name) }
                guard !local.isEmpty else { continue }
                let view = GroupView(group: group, viewID: viewID, members: members, cause: .rekey, changed: [], continuing: members)
                actions.append(.view(view, to: local))
            }
        case .message(let message):
            let recipients = localRecipients(of: message)
            guard !recipients.isEmpty else { return }
            // The payload is copied out of the packet's bytes only now that someone receives it.
            guard case .message(let filled) = operation.filling(payload: range, from: item) else { return }
            actions.append(.message(filled, to: recipients, origin: origin))
        case .join(let member, _), .leave(let member, _), .disconnect(let member):
            // Only a daemon's own clients are its to add or remove (a forged or stale item is ignored).
            guard member.isOn(daemon: origin.daemon.name) else { return }
            // A join from a daemon that left (delivered in the transitional configuration) is stale.
            if case .join = operation, !currentDaemons.contains(member.daemon) { return }
            let ordered: OrderedOperation
            switch operation {
            case .join(_, let group): ordered = .join(member, group)
            case .leave(_, let group): ordered = .leave(member, group)
            default: ordered = .disconnect(member)
            }
            if member.isOn(daemon: me.name) { recordOwn(ordered) }
            for change in table.apply(ordered, sequence: nextViewSequence(viewSequence)) {
                let local = change.recipients.filter { $0.isOn(daemon: me.name) }
                if !local.isEmpty { actions.append(.view(change.view, to: local)) }
            }
            if case .disconnect = ordered, member.isOn(daemon: me.name) { actions.append(.departed(member)) }
        }
    }

    /// Keeps ``ownMemberships`` up to date with an ordered operation of one of this daemon's
    /// clients.
    private mutating func recordOwn(_ operation: OrderedOperation) {
        switch operation {
        case .join(let member, let group):
            if !(ownMemberships[group]?.contains(member) ?? false) { ownMemberships[group, default: []].append(member) }
        case .leave(let member, let group):
            ownMemberships[group]?.removeAll { $0 == member }
            if ownMemberships[group]?.isEmpty == true { ownMemberships[group] = nil }
        case .disconnect(let member):
            for group in ownMemberships.keys.sorted() {
                ownMemberships[group]?.removeAll { $0 == member }
                if ownMemberships[group]?.isEmpty == true { ownMemberships[group] = nil }
            }
        case .message:
            break
        }
    }

    private mutating func localRecipients(of message: DeliveredMessage) -> [MemberID] {
        if message.groups.count == 1, !message.groups[0].isPrivate {
            // The common case: one group, whose local members are kept from message to message
            // (the same array each time, so that the daemon core can keep what it maps it to).
            let members = localMembers(of: message.groups[0])
            guard message.service.selfDiscard, message.sender.isOn(daemon: me.name) else { return members }
            return members.filter { $0 != message.sender }
        }
        var seen: Set<MemberID> = []
        var recipients: [MemberID] = []
        for group in message.groups {
            let members = group.privateMember.map { [$0] } ?? table.members(of: group)
            for member in members where member.isOn(daemon: me.name) && seen.insert(member).inserted {
                if message.service.selfDiscard, member == message.sender { continue }
                recipients.append(member)
            }
        }
        return recipients
    }

    /// The members of `group` on this daemon, from the cache while the table's memberships
    /// stay as they were.
    private mutating func localMembers(of group: GroupName) -> [MemberID] {
        if localMembersVersion != table.membershipVersion {
            localMembersCache.removeAll(keepingCapacity: true)
            lastLocalMembers = nil
            localMembersVersion = table.membershipVersion
        }
        if let last = lastLocalMembers, last.group == group { return last.members }
        let members: [MemberID]
        if let cached = localMembersCache[group] {
            members = cached
        } else {
            members = table.members(of: group).filter { $0.isOn(daemon: me.name) }
            localMembersCache[group] = members
        }
        lastLocalMembers = (group, members)
        return members
    }

    /// The sequence number naming views made by the item at `viewSequence` (its packet's
    /// sequence and index) of the current regular configuration; between a transitional
    /// configuration and the next regular one, the high bit set, the old ring's hash, and the
    /// item's position (daemons that move on together may split the old ring's last items
    /// differently between the regular and the transitional configuration, so the name comes
    /// from the item, not from a count).
    /// (The high bit is ``GroupViewID/isOfTransitionalConfiguration``.)
    private func nextViewSequence(_ viewSequence: UInt64) -> UInt64 {
        guard let previous = transitionalViews else { return viewSequence }
        return 1 << 63 | previous << 32 | (viewSequence & 0xFFFF_FFFF)
    }

    /// 31 bits of FNV-1a over the ring's identifier.
    static func hash31(_ ring: RingID) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in ring.description.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash & 0x7FFF_FFFF
    }

    // MARK: - Configuration changes

    private mutating func onInstall(_ configuration: RingConfiguration, now: Instant, into actions: inout [Action]) {
        actions.append(.configuration(configuration))
        if configuration.isTransitional {
            // Until the next regular configuration, views are those of this component alone:
            // they are named after the ring it moves to, with the old ring's hash and the high
            // bit, so that no other component names a different view alike.
            table.configuration = configuration.ring.configurationID
            transitionalViews = Self.hash31(configuration.previous!)
            currentDaemons = Set(configuration.members.map(\.name))
            if exchange == nil {
                removeDeparted(keeping: configuration, into: &actions)
            } else {
                // A cascade: the exchange of the ending configuration goes on with the state
                // items delivered in the transitional configuration (daemons that move on
                // together deliver the same old items, but may split them differently between
                // the regular and the transitional configuration); the departed leave after it.
                deferredTransitional = configuration
            }
            return
        }
        // An exchange still open is cut short: no daemon that moves on with this one got every
        // state either, and the next exchange tells everything again.
        if exchange != nil { abandonExchange() }
        currentDaemons = Set(configuration.members.map(\.name))
        table.configuration = configuration.ring.configurationID
        transitionalViews = nil
        exchange = StateExchange(configuration: configuration, expected: Set(configuration.members))
        // The client items not yet broadcast wait for the exchange too, before those held
        // already (a state item, a security message or a renewal of a configuration cut short
        // is stale: it goes).
        let unsent = ring.withdrawPending().filter { !GroupOperation.isOfConfiguration($0.payload) }
        held.insert(contentsOf: unsent, at: 0)
        noteHeld(into: &actions)
        let memberships = ownMemberships.keys.sorted().map { (group: $0, members: ownMemberships[$0]!) }
        submitted += 1
        let item = RingItem(
            service: .agreed,
            payload: GroupOperation.state(configuration: configuration.ring.configurationID, memberships).encoded(sequence: submitted))
        drive(.submitControl(item), now: now, into: &actions)
    }

    /// The transitional configuration: members of daemons that did not come along leave their
    /// groups; each group that lost members gets a transitional view.
    private mutating func removeDeparted(keeping configuration: RingConfiguration, into actions: inout [Action]) {
        let daemons = Set(configuration.members.map(\.name))
        let viewID = GroupViewID(configuration: configuration.ring.configurationID, sequence: 0)
        for change in table.removeMembers(notOn: daemons) {
            let remaining = change.before.filter { daemons.contains($0.daemon) }
            let local = remaining.filter { $0.isOn(daemon: me.name) }
            guard !local.isEmpty else { continue }
            let view = GroupView(
                group: change.group, viewID: viewID, members: remaining, cause: .network,
                changed: change.removed, transitional: true, continuing: remaining)
            actions.append(.view(view, to: local))
        }
    }

    /// Every member of the configuration told its memberships (delivered in the configuration or
    /// its transitional one): the table becomes their union, every group gets a NETWORK view, the
    /// items of other daemons delivered meanwhile apply, and this daemon's held items go to the
    /// ring.
    private mutating func completeExchange(viewSequence: UInt64, now: Instant, into actions: inout [Action]) {
        guard let exchange else { return }
        self.exchange = nil
        var members: [GroupName: [MemberID]] = [:]
        for state in exchange.received {
            for (group, list) in state.memberships {
                for member in list where member.isOn(daemon: state.daemon.name) && !(members[group]?.contains(member) ?? false) {
                    members[group, default: []].append(member)
                }
            }
        }
        let viewID = GroupViewID(configuration: table.configuration, sequence: nextViewSequence(viewSequence))
        // Every group gets a NETWORK view, changed or not: the exchange is the same at every
        // daemon of the configuration, so all members of a group get the same view. (Renewing
        // only the groups that had a transitional view here left members on daemons of other
        // components without it: a view the others had was one they never got; found by the
        // VS liveness check, seed 136.) EVS: a transitional view is always followed by a
        // regular one.
        for change in table.replaceMembership(with: members, viewID: viewID, renewing: Set(members.keys)) {
            let after = table.members(of: change.group)
            let local = after.filter { $0.isOn(daemon: me.name) }
            guard !local.isEmpty else { continue }
            let continuing = after.filter(change.before.contains)
            let changed = Array(Set(after).symmetricDifference(change.before)).sorted()
            let view = GroupView(
                group: change.group, viewID: viewID, members: after, cause: .network,
                changed: changed, continuing: continuing)
            actions.append(.view(view, to: local))
        }
        for entry in exchange.buffered {
            apply(entry.operation, origin: entry.origin, viewSequence: entry.viewSequence, into: &actions)
        }
        if let transitional = deferredTransitional {
            deferredTransitional = nil
            removeDeparted(keeping: transitional, into: &actions)
        }
        releaseHeld(now: now, into: &actions)
    }

    /// A cascade cut the exchange short: the states and items delivered meanwhile are dropped
    /// and no view is given (as Spread does), since the daemons moving on together may hold
    /// different tables until an exchange completes. The items buffered came from daemons that
    /// completed the exchange and left: their views were never installed here, so neither are
    /// the messages sent in them. The departed leave the table silently; the next exchange's
    /// NETWORK views tell who is there.
    private mutating func abandonExchange() {
        exchange = nil
        if let transitional = deferredTransitional {
            deferredTransitional = nil
            _ = table.removeMembers(notOn: Set(transitional.members.map(\.name)))
        }
    }
}

/// An operation the group service orders through the ring.
enum GroupOperation: Sendable {
    case join(MemberID, GroupName)
    case leave(MemberID, GroupName)
    case disconnect(MemberID)
    case message(DeliveredMessage)
    /// A daemon's local memberships, sent when the configuration `configuration` is installed
    /// (an item submitted for one configuration can be delivered in the next, after a cascade:
    /// the name tells a stale one apart).
    case state(configuration: ConfigurationID, [(group: GroupName, members: [MemberID])])
    /// A message of the security architecture among the daemons (opaque here).
    case security([UInt8])
    /// Every group gets a new view of the same members (``GroupService/Event/renewViews``).
    case renew

    private enum Kind: UInt8 { case join = 1, leave, disconnect, message, state, security, renew }

    /// Most bytes of a security message.
    static let securityBytesMax = 64 * 1024

    /// Whether an encoded item is a state item (its kind follows the 8-byte item number).
    static func isState(_ payload: ArraySlice<UInt8>) -> Bool {
        payload.count > 8 && payload[payload.startIndex + 8] == Kind.state.rawValue
    }

    /// Whether an encoded item belongs to the configuration it was submitted in: a state item,
    /// a security message or a renewal (a newer configuration makes its own).
    static func isOfConfiguration(_ payload: ArraySlice<UInt8>) -> Bool {
        guard payload.count > 8 else { return false }
        let kind = payload[payload.startIndex + 8]
        return kind == Kind.state.rawValue || kind == Kind.security.rawValue || kind == Kind.renew.rawValue
    }

    /// The client the operation comes from (none for a state item).
    var client: MemberID? {
        switch self {
        case .join(let member, _), .leave(let member, _), .disconnect(let member): member
        case .message(let message): message.sender
        case .state, .security, .renew: nil
        }
    }

    /// The item payload: the submitting daemon's item number, then the operation.
    func encoded(sequence: UInt64) -> [UInt8] {
        // Room for the whole item at once: growing a payload-sized buffer would copy it again.
        var writer = WireWriter(capacity: capacity)
        writer.write(sequence)
        switch self {
        case .join(let member, let group):
            writer.write(Kind.join.rawValue)
            writer.writeShortString(member.description)
            writer.writeShortString(group.rawValue)
        case .leave(let member, let group):
            writer.write(Kind.leave.rawValue)
            writer.writeShortString(member.description)
            writer.writeShortString(group.rawValue)
        case .disconnect(let member):
            writer.write(Kind.disconnect.rawValue)
            writer.writeShortString(member.description)
        case .message(let message):
            // The fields of the client `message` frame (wire-protocol.md).
            writer.write(Kind.message.rawValue)
            writer.writeMessageHeader(message)
            writer.writeBlob(message.payload)
        case .state(let configuration, let memberships):
            writer.write(Kind.state.rawValue)
            writer.write(configuration)
            writer.write(UInt32(memberships.count))
            for (group, members) in memberships {
                writer.writeShortString(group.rawValue)
                writer.write(members: members)
            }
        case .security(let bytes):
            writer.write(Kind.security.rawValue)
            writer.writeBlob(bytes)
        case .renew:
            writer.write(Kind.renew.rawValue)
        }
        return writer.bytes
    }

    /// The operation with its message's payload copied from `item` (where `range` says), if it
    /// was left out.
    func filling(payload range: Range<Int>?, from item: ArraySlice<UInt8>) -> GroupOperation {
        guard case .message(var message) = self, let range else { return self }
        message.payload = Array(item[(item.startIndex + range.lowerBound)..<(item.startIndex + range.upperBound)])
        return .message(message)
    }

    /// Bytes enough for the encoding (sequence, kind, header fields of at most 255 bytes each).
    private var capacity: Int {
        if case .security(let bytes) = self { return 16 + bytes.count }
        guard case .message(let message) = self else { return 64 }
        return 32 + 256 * (1 + message.groups.count) + message.payload.count
    }

    static func decode(_ payload: [UInt8], limits: Limits) throws(WireError) -> (sequence: UInt64, operation: GroupOperation) {
        var memo = DecodeMemo()
        let decoded = try decodeLeavingPayload(payload[...], limits: limits, memo: &memo)
        return (decoded.sequence, decoded.operation.filling(payload: decoded.payload, from: payload[...]))
    }

    /// Decodes an item payload, reusing the sender and groups parsed for the item before. A
    /// message's payload bytes are not copied: the message comes with an empty payload and
    /// `payload` says where in the item its bytes are.
    static func decodeLeavingPayload(_ payload: ArraySlice<UInt8>, limits: Limits, memo: inout DecodeMemo) throws(WireError) -> (sequence: UInt64, operation: GroupOperation, payload: Range<Int>?) {
        try payload.withUnsafeBytes { raw in
            Result { () throws(WireError) in
                var reader = WireReader(raw)
                let sequence = try reader.readUInt64()
                let kindByte = try reader.readUInt8()
                guard let kind = Kind(rawValue: kindByte) else { throw WireError.invalidValue("group operation \(kindByte)") }
                let operation: GroupOperation
                var payloadRange: Range<Int>?
                switch kind {
                case .join, .leave:
                    let member = try reader.readMember(limits: limits)
                    let group = try GroupName(try reader.readShortString(), limits: limits)
                    guard !group.isPrivate else { throw WireError.invalidGroupName(group.rawValue) }
                    operation = kind == .join ? .join(member, group) : .leave(member, group)
                case .disconnect:
                    operation = .disconnect(try reader.readMember(limits: limits))
                case .message:
                    let (message, range) = try reader.readMessageLeavingPayload(limits: limits, memo: &memo)
                    operation = .message(message)
                    payloadRange = range
                case .state:
                    let configuration = try reader.readConfigurationID()
                    let count = try reader.readCount()
                    var memberships: [(group: GroupName, members: [MemberID])] = []
                    for _ in 0..<count {
                        let group = try GroupName(try reader.readShortString(), limits: limits)
                        memberships.append((group, try reader.readMembers(limits: limits)))
                    }
                    operation = .state(configuration: configuration, memberships)
                case .security:
                    operation = .security(try reader.readBlob(bytesMax: securityBytesMax))
                case .renew:
                    operation = .renew
                }
                try reader.expectEnd()
                return (sequence, operation, payloadRange)
            }
        }.get()
    }
}
