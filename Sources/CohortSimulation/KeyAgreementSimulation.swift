public import CohortCore
public import CohortCrypto

/// Any key agreement protocol behind one type, so that one simulation, one test fixture and one
/// benchmark serve every registered protocol.
public struct AnyKeyAgreement: KeyAgreement {
    public static var name: String { "any" }
    /// The protocol instance.
    public var base: any KeyAgreement
    /// Wraps `base`.
    public init(_ base: any KeyAgreement) { self.base = base }
    public mutating func start(run: GroupViewID, members: [MemberID], continuing: Set<MemberID>) throws(KeyAgreementError) -> [KeyAgreementAction] {
        try base.start(run: run, members: members, continuing: continuing)
    }
    public mutating func receive(_ bytes: [UInt8]) throws(KeyAgreementError) -> [KeyAgreementAction] {
        try base.receive(bytes)
    }
}

/// Counts the exponentiations done in a group (for the key agreement figures). Small
/// exponents (BD's Xⱼ^(n−1−j)) cost a few multiplications, not an exponentiation, and are not
/// counted.
public class CountingDHGroup: DHGroup {
    /// The group counted.
    public let base: any DHGroup
    /// Exponentiations so far.
    public private(set) var exponentiations = 0

    /// Counts in `base`.
    public init(_ base: any DHGroup) { self.base = base }

    public var name: String { base.name }
    public var elementBytes: Int { base.elementBytes }
    public var generator: GroupElement { base.generator }
    public func power(_ element: GroupElement, _ exponent: Exponent) throws(CryptoError) -> GroupElement {
        if exponent.bytes.count > 8 { exponentiations += 1 }
        return try base.power(element, exponent)
    }
    public func randomExponent(using random: inout some RandomNumberGenerator) -> Exponent { base.randomExponent(using: &random) }
    public func validate(_ element: GroupElement) throws(CryptoError) { try base.validate(element) }
    public func exponent(from element: GroupElement) throws(CryptoError) -> Exponent { try base.exponent(from: element) }
}

/// ``CountingDHGroup`` for a group with the whole arithmetic (the MODP groups).
public final class CountingArithmeticDHGroup: CountingDHGroup, ArithmeticDHGroup {
    private let arithmetic: any ArithmeticDHGroup

    /// Counts in `base`.
    public init(_ base: any ArithmeticDHGroup) {
        arithmetic = base
        super.init(base)
    }

    public func multiply(_ a: GroupElement, _ b: GroupElement) throws(CryptoError) -> GroupElement { try arithmetic.multiply(a, b) }
    public func inverse(_ a: GroupElement) throws(CryptoError) -> GroupElement { try arithmetic.inverse(a) }
    public func multiplyExponents(_ a: Exponent, _ b: Exponent) throws(CryptoError) -> Exponent { try arithmetic.multiplyExponents(a, b) }
    public func invertExponent(_ a: Exponent) throws(CryptoError) -> Exponent { try arithmetic.invertExponent(a) }
}

/// `group` with an exponentiation counter, keeping its arithmetic if it has it.
public func countingExponentiations(of group: any DHGroup) -> CountingDHGroup {
    if let arithmetic = group as? any ArithmeticDHGroup { return CountingArithmeticDHGroup(arithmetic) }
    return CountingDHGroup(group)
}

/// A membership change the key agreement tests and benchmark exercise, on members numbered
/// from 0.
public enum MembershipChange: String, CaseIterable, Sendable {
    /// One member joins a formed group.
    case join
    /// One member (in the middle) leaves.
    case leave
    /// Two formed groups of about half the size merge.
    case merge
    /// A third of the group, spread through it, leaves at once.
    case partition
    /// The same members agree a new key (a policy refresh).
    case refresh

    /// The groups formed before the change (each agreeing its own key first) and the view
    /// after it, for a final group of `size` members.
    public func views(size: Int) -> (before: [[Int]], after: [Int]) {
        let all = Array(0..<size)
        switch self {
        case .join:
            return (size > 1 ? [Array(0..<(size - 1))] : [], all)
        case .leave:
            // A member in the middle leaves.
            return ([Array(0...size)], Array(0...size).filter { $0 != size / 2 })
        case .merge:
            let half = (size + 1) / 2
            return (size > 1 ? [Array(0..<half), Array(half..<size)] : [], all)
        case .partition:
            // A third of the group, spread through it, leaves at once.
            let leaving = max(1, size / 2)
            let total = size + leaving
            let gone = Set((0..<leaving).map { $0 * total / leaving + 1 })
            return ([Array(0..<total)], Array(0..<total).filter { !gone.contains($0) })
        case .refresh:
            return ([all], all)
        }
    }
}

/// An in-memory network of key agreement members: the driver of the tests and of the key
/// agreement benchmark. Delivery is FIFO per sender and interleaved across senders by a seeded
/// generator (what the group layer's FIFO/agreed delivery guarantees); one seed gives one run.
///
/// It measures what the papers report: messages and bytes, rounds, and time on the critical
/// path: each member has a ready time; handling a message starts once both the member is ready
/// and the message was sent, and the member is ready again after the measured time of the
/// handler (one thread, so CPU time unless the machine is contended). Rounds are the depth of
/// the message chains, exact under ``Delivery/byRound``.
public enum Delivery: Sendable {
    /// Any pending message, chosen at random: the adversarial interleavings correctness needs.
    case random
    /// Every message of one round before any of the next (chosen at random within the round):
    /// synchronous rounds, for the figures.
    case byRound
}

/// See ``Delivery``.
public struct KeyAgreementSimulation<Member: KeyAgreement, Random: RandomNumberGenerator> {
    /// The members' state machines.
    public var members: [MemberID: Member]
    /// Secrets established in the current run, by member.
    public private(set) var established: [MemberID: (run: GroupViewID, secret: [UInt8])] = [:]
    /// Every message sent in the current run.
    public private(set) var transcript: [[UInt8]] = []
    /// Figures of the current run.
    public private(set) var figures = Figures()

    /// What a run cost.
    public struct Figures: Hashable, Sendable {
        /// Messages sent (a broadcast counts once).
        public var messages = 0
        /// Bytes of those messages.
        public var bytes = 0
        /// The longest chain of causally dependent messages.
        public var rounds = 0
        /// CPU seconds on the critical path, up to the last member establishing the secret.
        public var criticalPathSeconds = 0.0
        /// CPU seconds of every member together.
        public var totalSeconds = 0.0
        /// Exponentiations on the critical path (with a cost probe).
        public var criticalPathExponentiations = 0
        /// Exponentiations of every member together (with a cost probe).
        public var totalExponentiations = 0
    }

    /// Reads a member's running exponentiation count (see ``CountingDHGroup``).
    public var costProbe: ((MemberID) -> Int)?

    private struct Envelope {
        let id: Int
        let bytes: [UInt8]
        let sentAt: Double
        let sentAtCost: Int
        let depth: Int
        /// A broadcast delivered back to its sender: local, so no round and no wait.
        let isOwn: Bool
    }

    /// Every message of the current run, in sending order, with who must get it.
    public private(set) var sent: [SentMessage] = []

    /// A message and its receivers.
    public struct SentMessage: Sendable {
        /// The sender.
        public var sender: MemberID
        /// The signed bytes.
        public var bytes: [UInt8]
        /// Who it goes to (the sender too, for a broadcast).
        public var receivers: [MemberID]
    }
    /// Who got each message of ``sent`` so far.
    private var deliveredTo: [Int: Set<MemberID>] = [:]
    /// Each member's previous view: VS's transitional set is what of it moves along.
    private var lastView: [MemberID: Set<MemberID>] = [:]

    /// A FIFO channel from one member to another.
    private struct Channel: Hashable {
        let sender: MemberID
        let receiver: MemberID
    }

    /// Pending messages per channel, FIFO.
    private var inFlight: [Channel: [Envelope]] = [:]
    /// Channels with pending messages, by the depth of their first one (``Delivery/byRound``
    /// takes from the shallowest; ``Delivery/random`` from any): O(1) per delivery.
    private var ready: [Int: IndexedBag<Channel>] = [:]
    private var readyCount = 0
    private var readyAt: [MemberID: Double] = [:]
    private var readyAtCost: [MemberID: Int] = [:]
    private var depthOf: [MemberID: Int] = [:]
    private var view: [MemberID] = []
    private var random: Random
    private let delivery: Delivery

    /// A network of `members`, interleaving deliveries with `random` as `delivery` says.
    public init(members: [MemberID: Member], random: Random, delivery: Delivery = .random) {
        self.members = members
        self.random = random
        self.delivery = delivery
    }

    /// Starts a run for `view` at every member of it (a membership change). Each member's
    /// transitional set is what of its previous view is in `view`. Messages still in flight are
    /// dropped: call ``flushViewChange(survivors:)`` first for VS's delivery guarantee.
    public mutating func start(run: GroupViewID, view: [MemberID]) throws(KeyAgreementError) {
        self.view = view
        established = [:]
        transcript = []
        figures = Figures()
        inFlight = [:]
        ready = [:]
        readyCount = 0
        readyAt = [:]
        readyAtCost = [:]
        depthOf = [:]
        sent = []
        deliveredTo = [:]
        let viewSet = Set(view)
        // Members outside the view are separated from it: their next transitional set excludes it.
        for (member, previous) in lastView where !viewSet.contains(member) { lastView[member] = previous.subtracting(viewSet) }
        for member in view {
            let continuing = (lastView[member] ?? [member]).intersection(viewSet).union([member])
            lastView[member] = viewSet
            let before = costProbe?(member) ?? 0
            let (actions, seconds) = try timed { () throws(KeyAgreementError) in
                try members[member]!.start(run: run, members: view, continuing: continuing)
            }
            let cost = (costProbe?(member) ?? 0) - before
            readyAt[member] = seconds
            readyAtCost[member] = cost
            depthOf[member] = 0
            figures.totalSeconds += seconds
            figures.totalExponentiations += cost
            perform(actions, from: member)
        }
    }

    /// Delivers one pending message (random sender, FIFO per sender); `false` when none is left.
    public mutating func deliverOne() throws(KeyAgreementError) -> Bool {
        guard readyCount > 0 else { return false }
        let depth: Int
        switch delivery {
        case .byRound:
            depth = ready.filter { !$0.value.isEmpty }.keys.min()!
        case .random:
            // A depth weighted by how many channels wait at it, then a channel: uniform overall.
            var pick = Int.random(in: 0..<readyCount, using: &random)
            var chosen = 0
            for key in ready.keys.sorted() where pick >= 0 {
                chosen = key
                pick -= ready[key]!.count
            }
            depth = chosen
        }
        let channel = ready[depth]!.removeRandom(using: &random)
        readyCount -= 1
        let envelope = inFlight[channel]!.removeFirst()
        if let next = inFlight[channel]!.first {
            ready[next.depth, default: IndexedBag()].insert(channel)
            readyCount += 1
        }
        let receiver = channel.receiver
        deliveredTo[envelope.id, default: []].insert(receiver)
        let before = costProbe?(receiver) ?? 0
        let (actions, seconds) = try timed { () throws(KeyAgreementError) in try members[receiver]!.receive(envelope.bytes) }
        let cost = (costProbe?(receiver) ?? 0) - before
        readyAt[receiver] = max(readyAt[receiver] ?? 0, envelope.sentAt) + seconds
        readyAtCost[receiver] = max(readyAtCost[receiver] ?? 0, envelope.sentAtCost) + cost
        if !envelope.isOwn { depthOf[receiver] = max(depthOf[receiver] ?? 0, envelope.depth) }
        figures.totalSeconds += seconds
        figures.totalExponentiations += cost
        perform(actions, from: receiver)
        return true
    }

    /// Delivers until nothing is in flight.
    public mutating func runToCompletion() throws(KeyAgreementError) {
        while try deliverOne() {}
    }

    /// The end of a view under Virtual Synchrony, before the next ``start(run:view:)``: the
    /// members that move on together (`survivors`) get the same messages of the ending run.
    /// Per sender, a message one survivor already has goes to every survivor (failure
    /// atomicity), and so does, from a surviving sender, a random further prefix of what it
    /// sent (the rest was cut off by the view change — even for its sender); a departing
    /// sender's other messages are lost. Whatever the deliveries make members send is cut off
    /// too. Returns the messages dropped, by receiver.
    public mutating func flushViewChange(survivors: Set<MemberID>) throws(KeyAgreementError) -> [MemberID: [[UInt8]]] {
        var dropped: [MemberID: [[UInt8]]] = [:]
        var bySender: [MemberID: [Int]] = [:]
        for (id, message) in sent.enumerated() { bySender[message.sender, default: []].append(id) }
        for sender in view {
            let ids = bySender[sender] ?? []
            guard !ids.isEmpty else { continue }
            let seen = ids.lastIndex { !(deliveredTo[$0] ?? []).isDisjoint(with: survivors) } ?? -1
            let cut = survivors.contains(sender) ? Int.random(in: seen...(ids.count - 1), using: &random) : seen
            for (position, id) in ids.enumerated() {
                for receiver in sent[id].receivers where survivors.contains(receiver) && !(deliveredTo[id] ?? []).contains(receiver) {
                    if position <= cut {
                        deliveredTo[id, default: []].insert(receiver)
                        _ = try members[receiver]!.receive(sent[id].bytes)
                    } else {
                        dropped[receiver, default: []].append(sent[id].bytes)
                    }
                }
            }
        }
        inFlight = [:]
        ready = [:]
        readyCount = 0
        return dropped
    }

    private mutating func enqueue(_ envelope: Envelope, from sender: MemberID, to receiver: MemberID) {
        let channel = Channel(sender: sender, receiver: receiver)
        if inFlight[channel, default: []].isEmpty {
            ready[envelope.depth, default: IndexedBag()].insert(channel)
            readyCount += 1
        }
        inFlight[channel, default: []].append(envelope)
    }

    private mutating func perform(_ actions: [KeyAgreementAction], from sender: MemberID) {
        let sentAt = readyAt[sender] ?? 0
        let sentAtCost = readyAtCost[sender] ?? 0
        let depth = (depthOf[sender] ?? 0) + 1
        for action in actions {
            switch action {
            case .broadcast(let bytes):
                let id = record(bytes, from: sender, to: view)
                for receiver in view {
                    let isOwn = receiver == sender
                    enqueue(Envelope(id: id, bytes: bytes, sentAt: sentAt, sentAtCost: sentAtCost, depth: isOwn ? depth - 1 : depth, isOwn: isOwn),
                            from: sender, to: receiver)
                }
                figures.rounds = max(figures.rounds, depth)
            case .send(let bytes, let receiver):
                let id = record(bytes, from: sender, to: [receiver])
                enqueue(Envelope(id: id, bytes: bytes, sentAt: sentAt, sentAtCost: sentAtCost, depth: depth, isOwn: false), from: sender, to: receiver)
                figures.rounds = max(figures.rounds, depth)
            case .established(let run, let secret):
                established[sender] = (run, secret)
                figures.criticalPathSeconds = max(figures.criticalPathSeconds, readyAt[sender] ?? 0)
                figures.criticalPathExponentiations = max(figures.criticalPathExponentiations, readyAtCost[sender] ?? 0)
            }
        }
    }

    private mutating func record(_ bytes: [UInt8], from sender: MemberID, to receivers: [MemberID]) -> Int {
        transcript.append(bytes)
        figures.messages += 1
        figures.bytes += bytes.count
        sent.append(SentMessage(sender: sender, bytes: bytes, receivers: receivers))
        return sent.count - 1
    }

    private func timed<T>(_ body: () throws(KeyAgreementError) -> T) throws(KeyAgreementError) -> (T, Double) {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try body()
        let elapsed = clock.now - start
        return (result, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}

/// A set with O(1) insert, remove-at-random and count, for the simulation's scheduler.
struct IndexedBag<Element: Hashable> {
    private var elements: [Element] = []
    private var positions: [Element: Int] = [:]

    var count: Int { elements.count }
    var isEmpty: Bool { elements.isEmpty }

    mutating func insert(_ element: Element) {
        guard positions[element] == nil else { return }
        positions[element] = elements.count
        elements.append(element)
    }

    mutating func removeRandom(using random: inout some RandomNumberGenerator) -> Element {
        let index = Int.random(in: 0..<elements.count, using: &random)
        let element = elements[index]
        let last = elements.removeLast()
        if index < elements.count {
            elements[index] = last
            positions[last] = index
        }
        positions[element] = nil
        return element
    }
}
