/// The membership and ordering protocol of the daemons: the Totem single-ring protocol (Y. Amir,
/// L. E. Moser, P. M. Melliar-Smith, D. A. Agarwal, P. Ciarfella, "The Totem single-ring ordering
/// and membership protocol", ACM TOCS 13(4), 1995), as a pure state machine.
///
/// A token circulates among the members of a ring in a fixed order; the holder broadcasts new
/// packets, each numbered with the next sequence number of the ring's one total order, and
/// rebroadcasts what others ask for. A packet is delivered once every packet before it is
/// (agreed), and a SAFE one once every member holds it. When the token is lost or a foreign
/// daemon is heard, the members gather a new membership (join messages until consensus), the
/// representative circulates a commit token twice, and the new ring recovers: the members that
/// come from the same old ring exchange the old packets some of them miss, then each delivers
/// what remains of the old ring (in the old regular configuration while it may, then in the
/// transitional configuration) and installs the new one — Extended Virtual Synchrony (Moser,
/// Amir, Melliar-Smith, Agarwal, ICDCS 1994). See `docs/membership.md`.
///
/// Driven by ``Event``s, answering with ``Action``s: the driver (the simulator, or the SwiftNIO
/// shell) moves the messages and fires the timers.
public struct TotemRing: Sendable {
    /// Timing and bounds of the protocol; validated by ``init(settings:)``.
    public struct Settings: Sendable {
        /// This daemon.
        public var daemon: DaemonID
        /// Without a token for this long, a member of a ring gathers a new membership.
        public var tokenLossTimeout: Duration = .milliseconds(200)
        /// A member resends the token it forwarded after this long without a sign of progress.
        public var tokenRetransmitInterval: Duration = .milliseconds(20)
        /// Most resends of one token.
        public var tokenRetransmitsMax: Int = 6
        /// The representative holds the token this long when the ring is idle.
        public var tokenHold: Duration = .milliseconds(10)
        /// A gathering member rebroadcasts its join message this often.
        public var joinInterval: Duration = .milliseconds(30)
        /// A gathering member gives up on the processors it has not reached consensus with after
        /// this long.
        public var consensusTimeout: Duration = .milliseconds(150)
        /// The representative of an operational ring announces it this often, so that separated
        /// components hear each other.
        public var mergeDetectInterval: Duration = .milliseconds(100)
        /// Most packets a member broadcasts per token visit.
        public var packetsPerTokenMax: Int = 16
        /// Most packets outstanding on the ring (broadcast, not yet held by every member).
        public var windowPackets: Int = 128
        /// Items are packed into one packet up to this many bytes (a larger item goes alone).
        public var packetBytesMax: Int = 1400
        /// Above this many submitted items waiting for the token, the ring asks for intake to pause.
        public var pendingItemsMax: Int = 1024
        /// Beyond this many waiting items a client item is refused (`nil`: twice
        /// ``pendingItemsMax``). A driver whose input stops only after the read under way (a
        /// socket shell takes a burst of frames per read) sets room for that burst.
        public var pendingItemsRefused: Int?
        /// Most sequence numbers in one token's retransmission list.
        public var retransmitRequestsMax: Int = 64
        /// Most daemons in a membership; a peer message naming more is dropped.
        public var daemonsMax: Int = 128
        /// Most items in one packet.
        public var itemsPerPacketMax: Int = 1024

        /// Settings with defaults for everything but the daemon.
        public init(daemon: DaemonID) { self.daemon = daemon }

        /// Throws if the settings cannot work together.
        public func validate() throws(WireError) {
            guard packetsPerTokenMax > 0, windowPackets >= packetsPerTokenMax else {
                throw .invalidValue("windowPackets must be at least packetsPerTokenMax > 0")
            }
            guard (pendingItemsRefused ?? 2 * pendingItemsMax) > pendingItemsMax else {
                throw .invalidValue("pendingItemsRefused must exceed pendingItemsMax")
            }
            guard packetBytesMax > 0, pendingItemsMax > 0, retransmitRequestsMax > 0, tokenRetransmitsMax >= 0,
                  daemonsMax > 0, itemsPerPacketMax > 0
            else { throw .invalidValue("ring bounds must be positive") }
            guard tokenHold < tokenLossTimeout, tokenRetransmitInterval < tokenLossTimeout,
                  joinInterval < consensusTimeout
            else { throw .invalidValue("token hold and retransmission must be shorter than the token loss timeout, the join interval shorter than the consensus timeout") }
        }
    }

    /// Inputs of the ring.
    public enum Event: Sendable {
        /// The daemon starts: it gathers a membership.
        case start
        /// A peer message arrived (broadcast, or sent to this daemon).
        case received(PeerMessage)
        /// A timer armed by ``Action/armTimer(_:after:)`` fired.
        case timerFired(Timer)
        /// A client operation to order.
        case submit(RingItem)
        /// An item of the layer above itself (the group service's state exchange): queued like a
        /// client item — numbered items leave in the order they were submitted — but never refused.
        case submitControl(RingItem)
    }

    /// Timers the ring asks its driver for.
    public enum Timer: Hashable, Sendable, CaseIterable {
        /// No token (or commit token) for too long.
        case tokenLoss
        /// Resend the token last forwarded.
        case tokenRetransmit
        /// Release the token held while the ring is idle.
        case tokenHold
        /// Rebroadcast the join message.
        case join
        /// Give up on processors that do not agree.
        case consensus
        /// Announce the ring.
        case mergeDetect
    }

    /// Outputs of the ring, performed by the driver in order.
    public enum Action: Sendable {
        /// Send to every daemon that can hear this one (including itself).
        case broadcast(PeerMessage)
        /// Send to one daemon.
        case send(PeerMessage, to: DaemonID)
        /// Fire ``Event/timerFired(_:)`` after `after` (replacing an earlier arming of the same timer).
        case armTimer(Timer, after: Duration)
        /// Deliver an item, in the ring's total order.
        case deliver(RingDelivery)
        /// Install a configuration (regular, or transitional).
        case install(RingConfiguration)
        /// Stop (`true`) or resume taking client operations: too many wait for the token.
        case pauseIntake(Bool)
        /// A submitted item was refused: ``Settings/pendingItemsRefused`` wait already.
        case refused(RingItem)
    }

    /// Counters of what the ring did and dropped.
    public struct Statistics: Hashable, Sendable {
        /// Peer messages dropped as malformed or out of protocol (never delivered).
        public var droppedPeerMessages = 0
        /// The same, by reason.
        public var droppedByReason: [String: Int] = [:]
        /// Stale or duplicate messages ignored (normal under loss and duplication).
        public var ignoredPeerMessages = 0
        /// Regular configurations installed.
        public var installs = 0
        /// Times the daemon started gathering a membership.
        public var gathers = 0
        /// Packets broadcast with new content.
        public var packetsBroadcast = 0
        /// Packets rebroadcast on request, or during recovery.
        public var packetsRetransmitted = 0
        /// Tokens resent after no sign of progress.
        public var tokensRetransmitted = 0
    }

    /// The state of a ring a member belongs to: the packets it holds and what it delivered.
    struct RingState: Sendable {
        var id: RingID
        var members: [DaemonID]
        var packets: [UInt64: RingPacket] = [:]
        /// All received up to: every packet up to here is held or was delivered.
        var aru: UInt64 = 0
        var high: UInt64 = 0
        var delivered: UInt64 = 0
        /// Packets up to here are discarded (delivered, and held by every member).
        var discarded: UInt64 = 0
        var lastTokenSequence: UInt64 = 0
        var previousTokenAru: UInt64 = 0
        /// Every member holds every packet up to here.
        var safe: UInt64 = 0
        /// The token's sequence at this member's previous visit, and whether that visit was quiet
        /// (everything held by everyone, nothing requested).
        var previousVisitSequence: UInt64?
        var previousVisitQuiet = false

        init(id: RingID, members: [DaemonID]) {
            self.id = id
            self.members = members
        }

        /// Keeps a packet not seen before; `false` for a duplicate or one already delivered.
        mutating func store(_ packet: RingPacket) -> Bool {
            guard packet.sequence > delivered, packets[packet.sequence] == nil else { return false }
            packets[packet.sequence] = packet
            high = max(high, packet.sequence)
            while packets[aru + 1] != nil { aru += 1 }
            return true
        }

        func successor(of daemon: DaemonID) -> DaemonID {
            let index = members.firstIndex(of: daemon) ?? 0
            return members[(index + 1) % members.count]
        }
    }

    struct RecoveryState: Sendable {
        var ring: RingState
        /// Members of the new ring that come from this member's old ring (itself included).
        var transitional: [DaemonID]
        /// The highest old-ring sequence any of them received: what the old ring can still deliver.
        var oldHigh: UInt64
        /// Old packets this member retransmits on the new ring.
        var queue: [RingPacket]
        var queueHead = 0
        /// The representative started the new ring's token.
        var tokenStarted = false
    }

    enum Phase: Sendable {
        case gather
        case commit(ring: RingID, members: [DaemonID])
        case recovery(RecoveryState)
        case operational
    }

    /// The settings the ring runs with.
    public let settings: Settings
    /// What the ring did so far.
    public private(set) var statistics = Statistics()
    var phase: Phase = .gather
    /// The last regular ring installed (before the first install: a ring of this daemon alone
    /// that no peer knows).
    var regular: RingState
    var hasInstalled = false
    var ringSequenceHigh: UInt64 = 0
    // Gather.
    var processors: Set<DaemonID> = []
    var failed: Set<DaemonID> = [] {
        didSet { if oldValue.isEmpty != failed.isEmpty { failedSince = failed.isEmpty ? 0 : ringSequenceHigh } }
    }
    /// The highest ring sequence known when the first daemon of `failed` was given up on.
    var failedSince: UInt64 = 0
    var consensus: Set<DaemonID> = [] {
        didSet { if consensus.count <= 1 { awaitingCommit = false } }
    }
    /// Agreement was complete and this member waits for the representative's commit token.
    var awaitingCommit = false
    // Client items waiting for the token.
    var pending: [RingItem] = []
    var pendingHead = 0
    var intakePaused = false
    // Token handling.
    var deadlines: [Timer: Instant] = [:]
    var lastSent: (message: PeerMessage, to: DaemonID, sequence: UInt64)?
    var retransmitsLeft = 0
    var heldToken: RingToken?
    /// When each other daemon was last heard in membership traffic (a join or a merge-detect
    /// message): a foreign daemon's failures are taken only of daemons not heard meanwhile.
    var lastHeard: [DaemonID: Instant] = [:]

    /// A ring core for `settings.daemon`; throws if the settings are inconsistent.
    public init(settings: Settings) throws(WireError) {
        try settings.validate()
        self.settings = settings
        self.regular = RingState(id: .initial(of: settings.daemon), members: [settings.daemon])
        self.processors = [settings.daemon]
    }

    var me: DaemonID { settings.daemon }

    /// The regular configuration installed last, if any.
    public var configuration: RingConfiguration? {
        hasInstalled ? RingConfiguration(ring: regular.id, previous: nil, members: regular.members) : nil
    }

    /// The protocol state: `gather`, `commit`, `recovery` or `operational` (Totem §4).
    public var phaseName: String {
        switch phase {
        case .gather: "gather"
        case .commit: "commit"
        case .recovery: "recovery"
        case .operational: "operational"
        }
    }

    /// Whether the ring is operational (not forming a new membership).
    public var isOperational: Bool {
        if case .operational = phase { return true }
        return false
    }

    /// Client items waiting for the token.
    public var pendingCount: Int { pending.count - pendingHead }

    /// The sequence number of the last packet delivered in the regular ring: daemons of one
    /// ring that show the same number have delivered the same packets (a quiescence test
    /// compares it, as a packet one daemon sent may not have reached the others yet).
    public var deliveredSequence: UInt64 { regular.delivered }

    // MARK: - Events

    /// Handles one event at time `now` and returns what the driver must do.
    public mutating func on(_ event: Event, now: Instant) -> [Action] {
        var actions: [Action] = []
        on(event, now: now, into: &actions)
        return actions
    }

    /// Handles one event at time `now`, appending what the driver must do to `actions` (drivers
    /// that reuse one buffer allocate no action array per event).
    public mutating func on(_ event: Event, now: Instant, into actions: inout [Action]) {
        switch event {
        case .start:
            enterGather(now: now, adding: [], into: &actions)
        case .received(let message):
            onMessage(message, now: now, into: &actions)
        case .timerFired(let timer):
            guard let deadline = deadlines[timer], now >= deadline else { break }
            deadlines[timer] = nil
            onTimer(timer, now: now, into: &actions)
        case .submit(let item):
            if pendingCount >= settings.pendingItemsRefused ?? 2 * settings.pendingItemsMax {
                actions.append(.refused(item))
            } else {
                pending.append(item)
                releaseHeldToken(now: now, into: &actions)
            }
        case .submitControl(let item):
            pending.append(item)
            releaseHeldToken(now: now, into: &actions)
        }
        let shouldPause = pendingCount >= settings.pendingItemsMax
        if shouldPause != intakePaused, shouldPause || pendingCount <= settings.pendingItemsMax / 2 {
            intakePaused = shouldPause
            actions.append(.pauseIntake(shouldPause))
        }
    }

    /// Takes back the items submitted and not yet broadcast, oldest first: the layer above holds
    /// its clients' items while it exchanges state (Spread swaps its protocol queue likewise).
    public mutating func withdrawPending() -> [RingItem] {
        let items = Array(pending[pendingHead...])
        pending.removeAll(keepingCapacity: true)
        pendingHead = 0
        return items
    }

    private mutating func releaseHeldToken(now: Instant, into actions: inout [Action]) {
        guard let token = heldToken else { return }
        heldToken = nil
        deadlines[.tokenHold] = nil
        releaseToken(token, now: now, into: &actions)
    }

    private mutating func arm(_ timer: Timer, after: Duration, now: Instant, into actions: inout [Action]) {
        deadlines[timer] = now.advanced(by: after)
        actions.append(.armTimer(timer, after: after))
    }

    private mutating func onTimer(_ timer: Timer, now: Instant, into actions: inout [Action]) {
        switch timer {
        case .tokenLoss:
            switch phase {
            case .operational, .recovery, .commit: enterGather(now: now, adding: [], into: &actions)
            case .gather: break
            }
        case .tokenRetransmit:
            guard let sent = lastSent, retransmitsLeft > 0 else { return }
            retransmitsLeft -= 1
            statistics.tokensRetransmitted += 1
            actions.append(.send(sent.message, to: sent.to))
            arm(.tokenRetransmit, after: settings.tokenRetransmitInterval, now: now, into: &actions)
        case .tokenHold:
            if let token = heldToken {
                heldToken = nil
                releaseToken(token, now: now, into: &actions)
            }
        case .join:
            guard case .gather = phase else { return }
            actions.append(.broadcast(.join(joinMessage)))
            arm(.join, after: settings.joinInterval, now: now, into: &actions)
        case .consensus:
            guard case .gather = phase else { return }
            // Totem §5.1: processors that have not agreed by now are considered failed; if all
            // agreed but no commit token came, the representative that should have sent it is.
            let active = processors.subtracting(failed)
            var missing = active.subtracting(consensus).subtracting([me])
            if missing.isEmpty, let representative = active.min(), representative != me {
                missing = [representative]
            }
            if !missing.isEmpty {
                failed.formUnion(missing)
                consensus = [me]
                actions.append(.broadcast(.join(joinMessage)))
            }
            arm(.consensus, after: settings.consensusTimeout, now: now, into: &actions)
            checkConsensus(now: now, into: &actions)
        case .mergeDetect:
            guard case .operational = phase, regular.members.first == me else { return }
            actions.append(.broadcast(.mergeDetect(ring: regular.id, sender: me)))
            arm(.mergeDetect, after: settings.mergeDetectInterval, now: now, into: &actions)
        }
    }

    private mutating func onMessage(_ message: PeerMessage, now: Instant, into actions: inout [Action]) {
        switch message {
        case .packet(let packet): onPacket(packet, now: now, into: &actions)
        case .token(let token): onToken(token, now: now, into: &actions)
        case .join(let join): onJoin(join, now: now, into: &actions)
        case .commit(let commit): onCommit(commit, now: now, into: &actions)
        case .mergeDetect(let ring, let sender): onMergeDetect(ring: ring, sender: sender, now: now, into: &actions)
        }
    }

    private mutating func drop(_ reason: String) {
        statistics.droppedPeerMessages += 1
        statistics.droppedByReason[reason, default: 0] += 1
    }
    private mutating func ignore() { statistics.ignoredPeerMessages += 1 }

    // MARK: - Packets

    private mutating func onPacket(_ packet: RingPacket, now: Instant, into actions: inout [Action]) {
        guard isWellFormed(packet, nested: false) else { return drop("malformed packet") }
        switch phase {
        case .operational:
            if packet.ring == regular.id {
                // (A recovery packet of this ring can still arrive after installation: it is
                // stored, as it holds a sequence number, and delivers nothing.)
                guard regular.members.contains(packet.sender) else { return drop("packet from outside the ring") }
                // Far beyond what this member holds: not buffered (the bound on buffers); the
                // token's retransmission requests bring it again when its turn comes.
                guard isWithinWindow(packet.sequence, of: regular) else { return ignore() }
                noteProgress(packet)
                guard regular.store(packet) else { return ignore() }
                deliverReady(into: &actions)
            } else if !regular.members.contains(packet.sender) {
                // A foreign daemon: gather a membership with it (Totem §5).
                enterGather(now: now, adding: [packet.sender], into: &actions)
            } else {
                ignore()
            }
        case .recovery(var recovery):
            if packet.ring == recovery.ring.id {
                guard recovery.ring.members.contains(packet.sender) else { return drop("recovery packet from outside the ring") }
                guard isWithinWindow(packet.sequence, of: recovery.ring) else { return ignore() }
                noteProgress(packet)
                guard recovery.ring.store(packet) else { return ignore() }
                if case .recovered(let old) = packet.content, old.ring == regular.id,
                   old.sequence <= recovery.oldHigh, regular.members.contains(old.sender) {
                    _ = regular.store(old)
                }
                phase = .recovery(recovery)
            } else {
                ignore()
            }
        case .gather:
            // Old-ring packets still fill gaps until the commit freezes what this member reports.
            if packet.ring == regular.id, hasInstalled, regular.members.contains(packet.sender),
               isWithinWindow(packet.sequence, of: regular), case .items = packet.content {
                _ = regular.store(packet)
            } else {
                ignore()
            }
        case .commit:
            ignore()
        }
    }

    private func isWellFormed(_ packet: RingPacket, nested: Bool) -> Bool {
        guard packet.sequence > 0 else { return false }
        switch packet.content {
        case .items(let items):
            return !items.isEmpty && items.count <= settings.itemsPerPacketMax
        case .recovered(let inner):
            return !nested && isWellFormed(inner, nested: true)
        }
    }

    private func isWithinWindow(_ sequence: UInt64, of ring: RingState) -> Bool {
        sequence <= ring.aru &+ UInt64(4 * settings.windowPackets + settings.packetsPerTokenMax)
    }

    /// A packet the successor broadcast after the token this member sent it shows the token arrived.
    private mutating func noteProgress(_ packet: RingPacket) {
        if let sent = lastSent, packet.sender == sent.to, packet.sequence > sent.sequence {
            lastSent = nil
            deadlines[.tokenRetransmit] = nil
        }
    }

    /// Delivers the regular ring's packets in order while each may be delivered: agreed once all
    /// before it are, safe once every member holds it.
    private mutating func deliverReady(into actions: inout [Action]) {
        while let packet = regular.packets[regular.delivered + 1] {
            if packet.isSafe, packet.sequence > regular.safe { break }
            regular.delivered += 1
            emitDeliveries(of: packet, into: &actions)
        }
    }

    private func emitDeliveries(of packet: RingPacket, into actions: inout [Action]) {
        guard case .items(let items) = packet.content else { return }
        for (index, item) in items.enumerated() {
            actions.append(.deliver(RingDelivery(
                item: item, sender: packet.sender, ring: packet.ring, sequence: packet.sequence, index: index)))
        }
    }

    // MARK: - Token

    private mutating func onToken(_ token: RingToken, now: Instant, into actions: inout [Action]) {
        var ring: RingState
        var recovery: RecoveryState?
        switch phase {
        case .operational: ring = regular
        case .recovery(let state): ring = state.ring; recovery = state
        case .gather, .commit: return ignore()
        }
        guard token.ring == ring.id else { return ignore() }
        guard token.tokenSequence > ring.lastTokenSequence else { return ignore() }
        guard token.aru <= token.sequence, token.sequence >= ring.high,
              token.sequence - token.aru <= UInt64(2 * settings.windowPackets + settings.packetsPerTokenMax),
              token.retransmitRequests.count <= settings.retransmitRequestsMax
        else { return drop("token out of protocol") }
        var token = token
        ring.lastTokenSequence = token.tokenSequence
        lastSent = nil
        deadlines[.tokenRetransmit] = nil
        arm(.tokenLoss, after: settings.tokenLossTimeout, now: now, into: &actions)

        // 1. Rebroadcast what others miss and this member holds.
        var requests: [UInt64] = []
        for sequence in token.retransmitRequests {
            if let packet = ring.packets[sequence] {
                statistics.packetsRetransmitted += 1
                actions.append(.broadcast(.packet(packet)))
            } else if !requests.contains(sequence) {
                requests.append(sequence)
            }
        }
        // 2. Ask for what this member misses.
        if ring.aru < token.sequence {
            var sequence = ring.aru + 1
            while sequence <= token.sequence, requests.count < settings.retransmitRequestsMax {
                if ring.packets[sequence] == nil, !requests.contains(sequence) { requests.append(sequence) }
                sequence += 1
            }
        }
        token.retransmitRequests = requests

        // 3. Broadcast new packets: old ones during recovery, client items when operational.
        if var state = recovery {
            let count = Self.broadcastNew(by: me, settings: settings, on: &ring, token: &token, into: &actions) {
                guard state.queueHead < state.queue.count else { return nil }
                defer { state.queueHead += 1 }
                return .recovered(state.queue[state.queueHead])
            }
            statistics.packetsRetransmitted += count
            recovery = state
        } else {
            statistics.packetsBroadcast += Self.broadcastNew(by: me, settings: settings, on: &ring, token: &token, into: &actions) {
                self.takeItems()
            }
        }

        // 4. All-received-up-to (Totem §4.2) and what every member surely holds: the lower of
        //    the token's aru at this visit and at the one before.
        if ring.aru < token.aru || token.aruSetter == me || token.aruSetter == nil {
            token.aru = ring.aru
            token.aruSetter = token.aru == token.sequence ? nil : me
        }
        ring.safe = max(ring.safe, min(ring.previousTokenAru, token.aru))
        ring.previousTokenAru = token.aru

        let quiet = token.aru == token.sequence && token.retransmitRequests.isEmpty
        let unchanged = ring.previousVisitSequence == token.sequence
        let idleRotation = quiet && unchanged && ring.previousVisitQuiet
        ring.previousVisitSequence = token.sequence
        ring.previousVisitQuiet = quiet

        if var state = recovery {
            // 5. Recovery is complete once a whole rotation brought nothing new and everyone
            //    holds everything: every member has every old packet it can get.
            state.ring = ring
            if token.recoveryComplete || (idleRotation && state.queueHead == state.queue.count) {
                token.recoveryComplete = true
                phase = .recovery(state)
                install(recovery: state, into: &actions)
                arm(.tokenLoss, after: settings.tokenLossTimeout, now: now, into: &actions)
                if regular.members.first == me {
                    arm(.mergeDetect, after: settings.mergeDetectInterval, now: now, into: &actions)
                }
            } else {
                phase = .recovery(state)
            }
        } else {
            // 5. Deliver, and discard what every member holds and this one delivered.
            regular = ring
            deliverReady(into: &actions)
            let discardUpTo = min(regular.delivered, regular.safe)
            while regular.discarded < discardUpTo {
                regular.discarded += 1
                regular.packets[regular.discarded] = nil
            }
            // 6. An idle ring: the representative holds the token a while.
            if idleRotation, pendingCount == 0, regular.members.first == me {
                heldToken = token
                arm(.tokenHold, after: settings.tokenHold, now: now, into: &actions)
                return
            }
        }
        forward(token, now: now, into: &actions)
    }

    /// Broadcasts up to the flow-control budget of new packets, taking content from `next`;
    /// returns how many.
    private static func broadcastNew(
        by me: DaemonID, settings: Settings, on ring: inout RingState, token: inout RingToken,
        into actions: inout [Action], next: () -> RingPacket.Content?
    ) -> Int {
        let outstanding = Int(token.sequence - token.aru)
        var budget = min(settings.packetsPerTokenMax, settings.windowPackets - outstanding)
        var broadcast = 0
        while budget > 0, let content = next() {
            token.sequence += 1
            let packet = RingPacket(ring: ring.id, sequence: token.sequence, sender: me, content: content)
            _ = ring.store(packet)
            actions.append(.broadcast(.packet(packet)))
            budget -= 1
            broadcast += 1
        }
        token.flowControlCount = UInt32(broadcast)
        return broadcast
    }

    /// Takes client items off the pending queue, packed into one packet's worth (message
    /// packing: small items share a packet).
    private mutating func takeItems() -> RingPacket.Content? {
        guard pendingHead < pending.count else { return nil }
        var items: [RingItem] = []
        var bytes = 0
        while pendingHead < pending.count, items.count < settings.itemsPerPacketMax {
            let item = pending[pendingHead]
            guard items.isEmpty || bytes + item.encodedBytes <= settings.packetBytesMax else { break }
            items.append(item)
            bytes += item.encodedBytes
            pendingHead += 1
        }
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
        } else if pendingHead >= 4096, pendingHead * 2 >= pending.count {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        return .items(items)
    }

    /// Releases a held token: broadcasts what was submitted meanwhile, and forwards it.
    private mutating func releaseToken(_ token: RingToken, now: Instant, into actions: inout [Action]) {
        guard case .operational = phase, token.ring == regular.id else { return }
        var token = token
        var ring = regular
        statistics.packetsBroadcast += Self.broadcastNew(by: me, settings: settings, on: &ring, token: &token, into: &actions) {
            self.takeItems()
        }
        if ring.aru < token.aru || token.aruSetter == me || token.aruSetter == nil {
            token.aru = ring.aru
            token.aruSetter = token.aru == token.sequence ? nil : me
        }
        ring.previousVisitSequence = token.sequence
        ring.previousVisitQuiet = false
        regular = ring
        deliverReady(into: &actions)
        forward(token, now: now, into: &actions)
    }

    private mutating func forward(_ token: RingToken, now: Instant, into actions: inout [Action]) {
        var token = token
        token.tokenSequence += 1
        let members: [DaemonID]
        switch phase {
        case .recovery(let state): members = state.ring.members
        default: members = regular.members
        }
        let successor = RingState(id: token.ring, members: members).successor(of: me)
        sendTracked(.token(token), to: successor, sequence: token.sequence, now: now, into: &actions)
    }

    /// Sends a token and keeps it for resending until the successor shows progress.
    private mutating func sendTracked(_ message: PeerMessage, to successor: DaemonID, sequence: UInt64, now: Instant, into actions: inout [Action]) {
        actions.append(.send(message, to: successor))
        lastSent = (message, successor, sequence)
        retransmitsLeft = settings.tokenRetransmitsMax
        arm(.tokenRetransmit, after: settings.tokenRetransmitInterval, now: now, into: &actions)
    }

    // MARK: - Membership: gather

    private var joinMessage: JoinMessage {
        assert(processors.contains(me), "join without self")
        return JoinMessage(sender: me, processors: processors, failed: failed, ringSequence: ringSequenceHigh, failedSince: failedSince)
    }

    /// Starts gathering a new membership (Totem §5.1).
    private mutating func enterGather(
        now: Instant, adding extra: Set<DaemonID>, checkingConsensus: Bool = true, into actions: inout [Action]
    ) {
        switch phase {
        case .operational:
            processors = Set(regular.members)
            failed = []
        case .gather:
            break
        case .commit(let ring, _):
            forgetFailures(before: ring)
        case .recovery(let state):
            forgetFailures(before: state.ring.id)
        }
        processors.insert(me)
        processors.formUnion(extra)
        retireOldIncarnations()
        phase = .gather
        statistics.gathers += 1
        consensus = [me]
        heldToken = nil
        lastSent = nil
        for timer in [Timer.tokenLoss, .tokenRetransmit, .tokenHold, .mergeDetect] { deadlines[timer] = nil }
        actions.append(.broadcast(.join(joinMessage)))
        arm(.join, after: settings.joinInterval, now: now, into: &actions)
        arm(.consensus, after: settings.consensusTimeout, now: now, into: &actions)
        if checkingConsensus { checkConsensus(now: now, into: &actions) }
    }

    /// A failed commit or recovery keeps the processors gathered, and the old ring stays the
    /// regular one (recovery's packets of the old ring are kept); but the failures that formed
    /// the new ring are older than it, as every member that installed it no longer has them
    /// and would not take them from this one (seed 8767: members that had installed the ring and
    /// one whose recovery failed never agreed again, round after round).
    private mutating func forgetFailures(before ring: RingID) {
        if failedSince < ring.sequence { failed = [] }
    }

    /// A daemon that restarted comes back with a higher incarnation: its earlier one is gone.
    private mutating func retireOldIncarnations() {
        var newest: [String: UInt64] = [:]
        for processor in processors { newest[processor.name] = max(newest[processor.name] ?? 0, processor.incarnation) }
        for processor in processors where processor.incarnation < newest[processor.name]! && processor != me {
            failed.insert(processor)
        }
    }

    private mutating func onJoin(_ join: JoinMessage, now: Instant, into actions: inout [Action]) {
        guard join.processors.count <= settings.daemonsMax, join.failed.count <= settings.daemonsMax,
              join.processors.contains(join.sender)
        else { return drop("malformed join") }
        guard join.sender != me else { return }
        hear(join.sender, now: now)
        let currentRingSequence: UInt64? = switch phase {
        case .gather: nil
        case .operational: regular.id.sequence
        case .commit(let ring, _): ring.sequence
        case .recovery(let state): state.ring.id.sequence
        }
        ringSequenceHigh = max(ringSequenceHigh, join.ringSequence)
        if let currentRingSequence {
            // A join made before its sender knew of the current ring is stale, whoever sent it:
            // from the gathering that formed the ring, or from one that went on elsewhere (its
            // failed set is of that older round). Taking it would start a new gathering for
            // every join still in flight — with several components gathering at once, a storm
            // of one-daemon rings, each undone by the next stale join (seeds 14946, 15707; an
            // exception for joins that give up on nobody still let 15707 storm). Its sender
            // learns the ring's sequence from merge detection and joins again. A join that gives
            // up on this daemon cannot lead to a common ring now either.
            if join.ringSequence < currentRingSequence { return ignore() }
            if join.failed.contains(me) { return ignore() }
            if case .operational = phase {} else if failed.contains(join.sender) { return ignore() }
            enterGather(now: now, adding: [], checkingConsensus: false, into: &actions)
        } else if failed.contains(join.sender) {
            // Given up on for this gathering: merge detection brings it back once a ring formed.
            return ignore()
        }
        let before = (processors.count, failed.count)
        processors.formUnion(join.processors)
        if join.failedSince < regular.id.sequence {
            // The sender's failures were decided before this daemon's ring formed: not taken
            // (seed 446: a daemon that had just formed a ring gave up, on every join still in
            // flight that had given up on it before, on its sender, and formed rings alone again).
        } else if join.failed.contains(me) {
            // The sender gave up on this daemon: they cannot be in one ring now.
            failed.insert(join.sender)
        } else if regular.members.contains(join.sender) {
            // A member of this daemon's own ring gathers from the same ring: its failures are
            // taken (Totem §5.1; Corosync's totemsrp likewise).
            failed.formUnion(join.failed)
        } else {
            // What a daemon of another component gave up on belongs to that component's
            // gatherings, often older ones: only daemons this one has not heard from either are
            // taken. Taking them all let given-up sets spread from component to component after
            // a heal, each fresh gathering inheriting the others' stale failures, until everyone
            // had given up on everyone and formed rings alone, again and again (seed 1470:
            // 11,405 rings in 4 s). Taking none (as Corosync does) kept a component and a foreign
            // daemon that both had a dead one in their processors from ever agreeing: each gave
            // up on it at its own time, and then on the other (seed 1546).
            failed.formUnion(join.failed.filter { !wasHeard($0, now: now) })
        }
        retireOldIncarnations()
        let changed = before != (processors.count, failed.count)
        if changed {
            // A new round of agreement: it gets a whole consensus timeout (Totem restarts the
            // timer whenever the sets change; otherwise a timer armed for the previous round
            // could fail a processor that just agreed).
            consensus = [me]
            actions.append(.broadcast(.join(joinMessage)))
            arm(.consensus, after: settings.consensusTimeout, now: now, into: &actions)
        }
        if join.processors == processors, join.failed == failed { consensus.insert(join.sender) }
        checkConsensus(now: now, into: &actions)
    }

    private mutating func onMergeDetect(ring: RingID, sender: DaemonID, now: Instant, into actions: inout [Action]) {
        guard sender != me else { return }
        hear(sender, now: now)
        // The sender's ring: joins from here on carry its sequence, so that its members do not
        // take them for stale ones.
        ringSequenceHigh = max(ringSequenceHigh, ring.sequence)
        switch phase {
        case .operational where !regular.members.contains(sender):
            enterGather(now: now, adding: [sender], into: &actions)
        case .gather where !processors.contains(sender) && !failed.contains(sender):
            processors.insert(sender)
            retireOldIncarnations()
            consensus = [me]
            actions.append(.broadcast(.join(joinMessage)))
            arm(.consensus, after: settings.consensusTimeout, now: now, into: &actions)
        default:
            ignore()
        }
    }

    /// Notes that `daemon` was heard now. The record is bounded: past twice `daemonsMax`
    /// entries, those older than a consensus timeout go.
    private mutating func hear(_ daemon: DaemonID, now: Instant) {
        lastHeard[daemon] = now
        if lastHeard.count > 2 * settings.daemonsMax {
            lastHeard = lastHeard.filter { wasHeard($0.key, now: now) }
        }
    }

    /// Whether `daemon` was heard within the last consensus timeout.
    private func wasHeard(_ daemon: DaemonID, now: Instant) -> Bool {
        guard let heard = lastHeard[daemon] else { return false }
        return now < heard.advanced(by: settings.consensusTimeout)
    }

    /// Once every processor not failed sent the same sets, the lowest of them forms the ring.
    private mutating func checkConsensus(now: Instant, into actions: inout [Action]) {
        guard case .gather = phase else { return }
        let active = processors.subtracting(failed)
        guard active.isSubset(of: consensus) else { return }
        guard active.min() == me else {
            // Agreement is complete: the representative has a whole consensus timeout to send
            // the commit token before it is given up on.
            if !awaitingCommit {
                awaitingCommit = true
                arm(.consensus, after: settings.consensusTimeout, now: now, into: &actions)
            }
            return
        }
        let members = active.sorted()
        let sequence = max(ringSequenceHigh, regular.id.sequence) + 1
        ringSequenceHigh = sequence
        let ring = RingID(sequence: sequence, representative: me)
        var token = CommitToken(ring: ring, members: members, entries: [:], rotation: 1)
        token.entries[me] = commitEntry
        phase = .commit(ring: ring, members: members)
        deadlines[.join] = nil
        deadlines[.consensus] = nil
        arm(.tokenLoss, after: settings.tokenLossTimeout, now: now, into: &actions)
        sendTracked(.commit(token), to: RingState(id: ring, members: members).successor(of: me), sequence: 0, now: now, into: &actions)
    }

    private var commitEntry: CommitToken.Entry {
        CommitToken.Entry(oldRing: regular.id, aru: regular.aru, highSequence: regular.high)
    }

    // MARK: - Membership: commit and recovery

    private mutating func onCommit(_ token: CommitToken, now: Instant, into actions: inout [Action]) {
        guard token.members.count <= settings.daemonsMax, !token.members.isEmpty,
              zip(token.members, token.members.dropFirst()).allSatisfy({ $0 < $1 }),
              token.ring.representative == token.members[0], token.rotation == 1 || token.rotation == 2,
              token.entries.keys.allSatisfy(token.members.contains)
        else { return drop("malformed commit token") }
        guard token.members.contains(me) else { return drop("commit token for a ring without this daemon") }
        let complete = token.entries.count == token.members.count
        let successor = RingState(id: token.ring, members: token.members).successor(of: me)
        var token = token
        switch phase {
        case .gather:
            guard token.rotation == 1, token.ring.representative != me, token.entries[me] == nil,
                  Set(token.members) == processors.subtracting(failed),
                  token.ring.sequence > regular.id.sequence
            else { return ignore() }
            token.entries[me] = commitEntry
            ringSequenceHigh = max(ringSequenceHigh, token.ring.sequence)
            phase = .commit(ring: token.ring, members: token.members)
            deadlines[.join] = nil
            deadlines[.consensus] = nil
            arm(.tokenLoss, after: settings.tokenLossTimeout, now: now, into: &actions)
            sendTracked(.commit(token), to: successor, sequence: 0, now: now, into: &actions)
        case .commit(let ring, _) where ring == token.ring && complete:
            let isRepresentative = token.ring.representative == me
            if isRepresentative, token.rotation == 1 {
                token.rotation = 2
            } else if isRepresentative || token.rotation != 2 {
                return ignore()
            }
            enterRecovery(token, now: now, into: &actions)
            sendTracked(.commit(token), to: successor, sequence: 0, now: now, into: &actions)
        case .recovery(var state) where state.ring.id == token.ring && complete && token.rotation == 2:
            // The second rotation is back at the representative: start the new ring's token.
            guard token.ring.representative == me, !state.tokenStarted else { return ignore() }
            state.tokenStarted = true
            phase = .recovery(state)
            lastSent = nil
            deadlines[.tokenRetransmit] = nil
            let first = RingToken(
                ring: token.ring, tokenSequence: 1, sequence: 0, aru: 0, aruSetter: nil,
                retransmitRequests: [], flowControlCount: 0, recoveryComplete: false)
            onToken(first, now: now, into: &actions)
        default:
            ignore()
        }
    }

    /// Totem §5.3: the members that come from this member's old ring retransmit, on the new ring,
    /// the old packets some of them miss.
    private mutating func enterRecovery(_ token: CommitToken, now: Instant, into actions: inout [Action]) {
        let transitional = token.members.filter { token.entries[$0]?.oldRing == regular.id }
        let entries = transitional.map { token.entries[$0]! }
        let lowAru = entries.map(\.aru).min() ?? regular.aru
        let oldHigh = entries.map(\.highSequence).max() ?? regular.high
        var queue: [RingPacket] = []
        if lowAru < oldHigh {
            for sequence in (lowAru + 1)...oldHigh {
                // The first member known to hold a packet sends it; one beyond every member's
                // aru is sent by whoever holds it.
                let responsible = transitional.first { token.entries[$0]!.aru >= sequence }
                guard responsible == nil || responsible == me, let packet = regular.packets[sequence] else { continue }
                queue.append(packet)
            }
        }
        // Packets above what the members reported are not delivered by anyone.
        for sequence in regular.packets.keys where sequence > oldHigh { regular.packets[sequence] = nil }
        ringSequenceHigh = max(ringSequenceHigh, token.ring.sequence)
        phase = .recovery(RecoveryState(
            ring: RingState(id: token.ring, members: token.members), transitional: transitional,
            oldHigh: oldHigh, queue: queue))
        arm(.tokenLoss, after: settings.tokenLossTimeout, now: now, into: &actions)
    }

    /// Ends recovery: delivers what remains of the old ring (in the old regular configuration
    /// while agreed and safe delivery allow, then in the transitional configuration), and
    /// installs the new regular configuration (EVS, Totem §5.3).
    private mutating func install(recovery: RecoveryState, into actions: inout [Action]) {
        // 1. In the old regular configuration.
        deliverReady(into: &actions)
        // 2. The transitional configuration, and the old packets that remain, in order.
        if hasInstalled {
            actions.append(.install(RingConfiguration(
                ring: recovery.ring.id, previous: regular.id, members: recovery.transitional)))
            for sequence in regular.packets.keys.sorted() where sequence > regular.delivered && sequence <= recovery.oldHigh {
                emitDeliveries(of: regular.packets[sequence]!, into: &actions)
            }
        }
        // 3. The new regular configuration.
        regular = recovery.ring
        hasInstalled = true
        phase = .operational
        processors = []
        failed = []
        consensus = []
        statistics.installs += 1
        actions.append(.install(RingConfiguration(ring: regular.id, previous: nil, members: regular.members)))
        deliverReady(into: &actions)
    }
}

/// An item delivered by the ring.
public struct RingDelivery: Hashable, Sendable {
    /// The item.
    public var item: RingItem
    /// The daemon that broadcast it.
    public var sender: DaemonID
    /// The ring it was ordered in.
    public var ring: RingID
    /// Its packet's position in the ring's total order.
    public var sequence: UInt64
    /// Its position in the packet.
    public var index: Int
}

extension TotemRing {
    /// Operational, nothing waiting for the token, everything received delivered.
    public var isIdle: Bool {
        isOperational && pendingCount == 0 && regular.aru == regular.high && regular.delivered == regular.high
    }

    /// A one-line account of the ring's state, for failure reports.
    public var debugState: String {
        let phaseName: String
        switch phase {
        case .gather: phaseName = "gather processors=\(processors.sorted()) failed=\(failed.sorted()) consensus=\(consensus.sorted())"
        case .commit(let ring, let members): phaseName = "commit \(ring) \(members)"
        case .recovery(let state): phaseName = "recovery \(state.ring.id) aru=\(state.ring.aru) high=\(state.ring.high) queue=\(state.queue.count - state.queueHead)"
        case .operational: phaseName = "operational"
        }
        return "\(phaseName) ring=\(regular.id) members=\(regular.members) aru=\(regular.aru) high=\(regular.high) delivered=\(regular.delivered) pending=\(pendingCount)"
    }
}
