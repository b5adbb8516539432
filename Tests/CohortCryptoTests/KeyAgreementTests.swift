import CohortCore
import Testing
@testable import CohortCrypto

/// An in-memory driver: every member's state machine, and the messages in flight. Delivery is
/// FIFO per sender and randomly interleaved across senders (what agreed or FIFO delivery of the
/// group layer guarantees), chosen by a seed.
struct AgreementNetwork {
    var members: [MemberID: BurmesterDesmedt<TestRandom>]
    /// Per receiver, per sender, the queue of messages not yet delivered.
    var inFlight: [MemberID: [MemberID: [[UInt8]]]] = [:]
    var established: [MemberID: (GroupViewID, [UInt8])] = [:]
    /// Every message broadcast, for eavesdropper tests.
    var transcript: [[UInt8]] = []
    var random: TestRandom
    let keys: [MemberID: SigningKey]

    init(names: [String], group: any ArithmeticDHGroup, seed: UInt64) {
        random = TestRandom(state: seed)
        var keys: [MemberID: SigningKey] = [:]
        for name in names { keys[member(name)] = try! SigningKey(privateKeyBytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 &+ name.count &* 17 &+ Int(name.utf8.first!)) }) }
        var directory = MemberKeyDirectory()
        for (member, key) in keys { directory.set(key.publicKeyBytes, for: member) }
        self.keys = keys
        members = [:]
        for (index, name) in names.enumerated() {
            let id = member(name)
            members[id] = BurmesterDesmedt(
                identity: KeyAgreementIdentity(member: id, signingKey: keys[id]!, directory: directory),
                group: group, random: TestRandom(state: seed &* 1000 &+ UInt64(index)))
        }
    }

    mutating func start(run: GroupViewID, members view: [MemberID]) throws {
        established = [:]
        for id in view { try perform(try members[id]!.start(run: run, members: view), from: id, view: view) }
    }

    mutating func perform(_ actions: [KeyAgreementAction], from sender: MemberID, view: [MemberID]) throws {
        for action in actions {
            switch action {
            case .broadcast(let bytes):
                transcript.append(bytes)
                for receiver in view where receiver != sender { inFlight[receiver, default: [:]][sender, default: []].append(bytes) }
            case .send(let bytes, let receiver):
                transcript.append(bytes)
                inFlight[receiver, default: [:]][sender, default: []].append(bytes)
            case .established(let run, let secret):
                established[sender] = (run, secret)
            }
        }
    }

    /// Delivers one random pending message (FIFO per sender); false when none is left.
    mutating func deliverOne(view: [MemberID]) throws -> Bool {
        let pending = inFlight.flatMap { receiver, queues in queues.filter { !$0.value.isEmpty }.map { (receiver, $0.key) } }
            .sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        guard let (receiver, sender) = pending.randomElement(using: &random) else { return false }
        let bytes = inFlight[receiver]![sender]!.removeFirst()
        try perform(try members[receiver]!.receive(bytes), from: receiver, view: view)
        return true
    }

    mutating func runToCompletion(view: [MemberID]) throws {
        while try deliverOne(view: view) {}
    }
}

func member(_ name: String) -> MemberID { try! MemberID(name: name, daemon: "d1") }
func run(_ sequence: UInt64) -> GroupViewID { GroupViewID(configuration: ConfigurationID(epoch: 1, representative: "d1"), sequence: sequence) }

@Suite("Burmester-Desmedt")
struct BurmesterDesmedtTests {
    /// A group per test: a group's backend contexts are not shared between threads.
    let group = try! MODPGroup(bits: 1024, backend: .openssl)

    @Test("every member agrees on one secret, for group sizes 1 to 12, under random delivery", arguments: Array(1...12))
    func agreement(size: Int) throws {
        let names = (0..<size).map { "m\($0)" }
        var network = AgreementNetwork(names: names, group: group, seed: UInt64(size))
        let view = names.map(member)
        try network.start(run: run(1), members: view)
        try network.runToCompletion(view: view)
        #expect(network.established.count == size, "seed \(size)")
        let secrets = Set(network.established.values.map(\.1))
        #expect(secrets.count == 1)
        #expect(network.established.values.allSatisfy { $0.0 == run(1) })
        // Message count: 2n broadcasts (n for two members, none for one).
        #expect(network.transcript.count == (size == 1 ? 0 : size == 2 ? 2 : 2 * size))
    }

    @Test("a new view gets a new secret; a member that left cannot follow the new run")
    func nextView() throws {
        let names = ["a", "b", "c", "d"]
        var network = AgreementNetwork(names: names, group: group, seed: 42)
        try network.start(run: run(1), members: names.map(member))
        try network.runToCompletion(view: names.map(member))
        let first = network.established[member("a")]!.1
        let leaving = network.members[member("d")]!
        // d leaves: a, b, c agree on view 2.
        let view2 = ["a", "b", "c"].map(member)
        network.transcript = []
        try network.start(run: run(2), members: view2)
        try network.runToCompletion(view: view2)
        let second = network.established[member("a")]!.1
        #expect(second != first)
        #expect(Set(network.established.values.map(\.1)) == [second])
        // d holds its old state and every public message of run 2: it is refused each one.
        var eavesdropper = leaving
        for bytes in network.transcript {
            #expect(throws: KeyAgreementError.self) { try eavesdropper.receive(bytes) }
        }
    }

    @Test("tampered, replayed, reordered, injected and stale messages are refused and change nothing")
    func adversarialMessages() throws {
        let names = ["a", "b", "c"]
        var network = AgreementNetwork(names: names, group: group, seed: 7)
        let view = names.map(member)
        try network.start(run: run(5), members: view)
        // b's first broadcast, as c would receive it.
        let fromB = network.inFlight[member("c")]![member("b")]![0]
        var c = network.members[member("c")]!
        // Modified: every byte flipped in turn is refused.
        for index in stride(from: 0, to: fromB.count, by: 7) {
            var modified = fromB
            modified[index] ^= 0x40
            #expect(throws: KeyAgreementError.self) { try c.receive(modified) }
        }
        // Accepted once, then a replay is refused.
        _ = try c.receive(fromB)
        #expect(throws: KeyAgreementError.replayed(sender: member("b"), sequence: 0)) { try c.receive(fromB) }
        // Injected: a message signed by a key not in the directory.
        let stranger = try SigningKey(privateKeyBytes: [UInt8](repeating: 9, count: 32))
        let injected = try KeyAgreementMessage(protocolName: "bd", run: run(5), sender: member("b"), sequence: 1, step: 2,
                                               elements: [group.generator]).signed(with: stranger)
        #expect(throws: KeyAgreementError.badSignature(sender: member("b"))) { try c.receive(injected) }
        // Reordered: b's sequence 2 before 1.
        let skipped = try KeyAgreementMessage(protocolName: "bd", run: run(5), sender: member("b"), sequence: 2, step: 2,
                                              elements: [group.generator]).signed(with: network.keys[member("b")]!)
        #expect(throws: KeyAgreementError.outOfOrder(sender: member("b"), expected: 1, got: 2)) { try c.receive(skipped) }
        // Stale: a message of another run.
        let stale = try KeyAgreementMessage(protocolName: "bd", run: run(4), sender: member("b"), sequence: 1, step: 2,
                                            elements: [group.generator]).signed(with: network.keys[member("b")]!)
        #expect(throws: KeyAgreementError.wrongRun(expected: run(5), got: run(4))) { try c.receive(stale) }
        // A signed but invalid element (1, outside the subgroup check) is refused.
        var one = [UInt8](repeating: 0, count: group.elementBytes)
        one[one.count - 1] = 1
        let weak = try KeyAgreementMessage(protocolName: "bd", run: run(5), sender: member("a"), sequence: 0, step: 1,
                                           elements: [GroupElement(bytes: one)]).signed(with: network.keys[member("a")]!)
        #expect(throws: KeyAgreementError.self) { try c.receive(weak) }
        // After all that, the run still completes with the genuine messages.
        network.members[member("c")] = c
        network.inFlight[member("c")]![member("b")]!.removeFirst()
        try network.runToCompletion(view: view)
        #expect(Set(network.established.values.map(\.1)).count == 1)
        #expect(network.established.count == 3)
    }

    @Test("a cascaded change at any point of a run restarts cleanly on the new membership", arguments: Array(0..<12))
    func cascade(step: Int) throws {
        let names = ["a", "b", "c", "d", "e"]
        var network = AgreementNetwork(names: names, group: group, seed: UInt64(100 + step))
        let first = names.map(member)
        try network.start(run: run(1), members: first)
        for _ in 0..<step { _ = try network.deliverOne(view: first) }
        // The view changes before the run finished (or just after): e leaves, f never existed.
        let second = ["a", "b", "c", "d"].map(member)
        let leftovers = network.inFlight
        network.inFlight = [:]
        try network.start(run: run(2), members: second)
        // Messages of the abandoned run still arrive: each is refused.
        for (receiver, queues) in leftovers where second.contains(receiver) {
            for bytes in queues.values.joined() {
                #expect(throws: KeyAgreementError.self) { try network.members[receiver]!.receive(bytes) }
            }
        }
        try network.runToCompletion(view: second)
        #expect(network.established.count == 4)
        #expect(network.established.values.allSatisfy { $0.0 == run(2) })
        #expect(Set(network.established.values.map(\.1)).count == 1)
    }

    @Test("works in the 2048-bit default group too")
    func defaultGroup() throws {
        let names = ["a", "b", "c", "d", "e"]
        var network = AgreementNetwork(names: names, group: try MODPGroup(bits: 2048, backend: .gmp), seed: 9)
        try network.start(run: run(1), members: names.map(member))
        try network.runToCompletion(view: names.map(member))
        #expect(Set(network.established.values.map(\.1)).count == 1)
        #expect(network.established.count == 5)
    }
}
