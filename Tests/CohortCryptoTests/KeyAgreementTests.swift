import CohortCore
import CohortSimulation
import Testing
@testable import CohortCrypto

typealias BD = BurmesterDesmedt<TestRandom>
typealias CKD = CentralizedKeyDistribution<TestRandom>

/// Members `names` running `protocolName` in `group`, with deterministic keys and randomness.
struct Fixture {
    let keys: [MemberID: SigningKey]
    let directory: MemberKeyDirectory
    var simulation: KeyAgreementSimulation<AnyKeyAgreement, TestRandom>

    init(protocolName: String = "bd", names: [String], group: any DHGroup, seed: UInt64, delivery: Delivery = .random) {
        var keys: [MemberID: SigningKey] = [:]
        for name in names {
            keys[member(name)] = try! SigningKey(privateKeyBytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 &+ name.count &* 17 &+ Int(name.utf8.first!)) })
        }
        var directory = MemberKeyDirectory()
        for (id, key) in keys { directory.set(key.publicKeyBytes, for: id) }
        var members: [MemberID: AnyKeyAgreement] = [:]
        for (index, name) in names.enumerated() {
            let id = member(name)
            let identity = KeyAgreementIdentity(member: id, signingKey: keys[id]!, directory: directory)
            let random = TestRandom(seed: seed &* 1000 &+ UInt64(index))
            switch protocolName {
            case BD.name: members[id] = AnyKeyAgreement(BD(identity: identity, group: group as! any ArithmeticDHGroup, random: random))
            case CKD.name: members[id] = AnyKeyAgreement(CKD(identity: identity, group: group, random: random))
            default: fatalError("unknown protocol \(protocolName)")
            }
        }
        self.keys = keys
        self.directory = directory
        simulation = KeyAgreementSimulation(members: members, random: TestRandom(seed: seed), delivery: delivery)
    }

    var secrets: Set<[UInt8]> { Set(simulation.established.values.map(\.secret)) }
}

func member(_ name: String) -> MemberID { try! MemberID(name: name, daemon: "d1") }
func run(_ sequence: UInt64) -> GroupViewID { GroupViewID(configuration: ConfigurationID(epoch: 1, representative: "d1"), sequence: sequence) }

/// Messages and rounds of one run of `protocolName` for `size` members.
func expectedShape(_ protocolName: String, size: Int) -> (messages: Int, rounds: Int) {
    switch (protocolName, size) {
    case (_, 1): (0, 0)
    case ("bd", 2): (2, 1)
    case ("bd", _): (2 * size, 2)
    default: (size + 1, 3)  // ckd: offer, n − 1 replies, one broadcast of the shares
    }
}

@Suite("Key agreement protocols")
struct KeyAgreementProtocolTests {
    /// A group per test: a group's backend contexts are not shared between threads.
    let group = try! MODPGroup(bits: 1024, backend: .openssl)

    @Test("every member agrees on one secret, for group sizes 1 to 12, under random delivery",
          arguments: KeyAgreements.names, Array(1...12))
    func agreement(protocolName: String, size: Int) throws {
        let names = (0..<size).map { "m\($0)" }
        var fixture = Fixture(protocolName: protocolName, names: names, group: group, seed: UInt64(size))
        try fixture.simulation.start(run: run(1), view: names.map(member))
        try fixture.simulation.runToCompletion()
        #expect(fixture.simulation.established.count == size, "seed \(size)")
        #expect(fixture.secrets.count == 1)
        #expect(fixture.simulation.established.values.allSatisfy { $0.run == run(1) })
        #expect(fixture.simulation.figures.messages == expectedShape(protocolName, size: size).messages)
    }

    @Test("messages and synchronous rounds are the protocol's", arguments: KeyAgreements.names, [1, 2, 3, 8])
    func rounds(protocolName: String, size: Int) throws {
        let names = (0..<size).map { "m\($0)" }
        var fixture = Fixture(protocolName: protocolName, names: names, group: group, seed: UInt64(size), delivery: .byRound)
        try fixture.simulation.start(run: run(1), view: names.map(member))
        try fixture.simulation.runToCompletion()
        let figures = fixture.simulation.figures
        #expect(fixture.secrets.count == 1)
        #expect(figures.messages == expectedShape(protocolName, size: size).messages)
        #expect(figures.rounds == expectedShape(protocolName, size: size).rounds)
        #expect(figures.criticalPathSeconds > 0 || size == 1)
        #expect(figures.criticalPathSeconds <= figures.totalSeconds)
    }

    @Test("a new view gets a new secret; a member that left cannot follow the new run", arguments: KeyAgreements.names)
    func nextView(protocolName: String) throws {
        let names = ["a", "b", "c", "d"]
        var fixture = Fixture(protocolName: protocolName, names: names, group: group, seed: 42)
        try fixture.simulation.start(run: run(1), view: names.map(member))
        try fixture.simulation.runToCompletion()
        let first = fixture.simulation.established[member("a")]!.secret
        var leaving = fixture.simulation.members[member("d")]!
        // d leaves: a, b, c agree on view 2.
        try fixture.simulation.start(run: run(2), view: ["a", "b", "c"].map(member))
        try fixture.simulation.runToCompletion()
        let second = fixture.simulation.established[member("a")]!.secret
        #expect(second != first)
        #expect(fixture.secrets == [second])
        // d holds its old state and every public message of run 2: it is refused each one.
        for bytes in fixture.simulation.transcript {
            #expect(throws: KeyAgreementError.self) { try leaving.receive(bytes) }
        }
    }

    @Test("tampered, replayed, reordered, injected and stale messages are refused and change nothing")
    func adversarialMessages() throws {
        let names = ["a", "b", "c"]
        var fixture = Fixture(names: names, group: group, seed: 7)
        try fixture.simulation.start(run: run(5), view: names.map(member))
        // b's first broadcast.
        let fromB = try fixture.simulation.transcript.first {
            try KeyAgreementMessage.verified($0, directory: fixture.directory).sender == member("b")
        }!
        var c = fixture.simulation.members[member("c")]!
        // Modified: bytes flipped throughout are refused.
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
                                              elements: [group.generator]).signed(with: fixture.keys[member("b")]!)
        #expect(throws: KeyAgreementError.outOfOrder(sender: member("b"), expected: 1, got: 2)) { try c.receive(skipped) }
        // Stale: a message of another run.
        let stale = try KeyAgreementMessage(protocolName: "bd", run: run(4), sender: member("b"), sequence: 1, step: 2,
                                            elements: [group.generator]).signed(with: fixture.keys[member("b")]!)
        #expect(throws: KeyAgreementError.wrongRun(expected: run(5), got: run(4))) { try c.receive(stale) }
        // A signed but invalid element (1: outside the checked range) is refused.
        var one = [UInt8](repeating: 0, count: group.elementBytes)
        one[one.count - 1] = 1
        let weak = try KeyAgreementMessage(protocolName: "bd", run: run(5), sender: member("a"), sequence: 0, step: 1,
                                           elements: [GroupElement(bytes: one)]).signed(with: fixture.keys[member("a")]!)
        #expect(throws: KeyAgreementError.self) { try c.receive(weak) }
        // c, having taken b's genuine message already, still completes the run with the others
        // (the simulation's copy of b's message to c is then a replay for this c, so run the
        // original c instead).
        try fixture.simulation.runToCompletion()
        #expect(fixture.secrets.count == 1)
        #expect(fixture.simulation.established.count == 3)
    }

    @Test("a cascaded change at any point of a run restarts cleanly on the new membership",
          arguments: KeyAgreements.names, Array(0..<12))
    func cascade(protocolName: String, step: Int) throws {
        let names = ["a", "b", "c", "d", "e"]
        var fixture = Fixture(protocolName: protocolName, names: names, group: group, seed: UInt64(100 + step))
        try fixture.simulation.start(run: run(1), view: names.map(member))
        for _ in 0..<step { _ = try fixture.simulation.deliverOne() }
        // The view changes before the run finished (or just after): a — the oldest member, so
        // CKD's controller — leaves.
        let leftovers = fixture.simulation.dropInFlight()
        let second = ["b", "c", "d", "e"].map(member)
        try fixture.simulation.start(run: run(2), view: second)
        // Messages of the abandoned run still arrive: each is refused.
        for (receiver, messages) in leftovers where second.contains(receiver) {
            for bytes in messages {
                #expect(throws: KeyAgreementError.self) { try fixture.simulation.members[receiver]!.receive(bytes) }
            }
        }
        try fixture.simulation.runToCompletion()
        #expect(fixture.simulation.established.count == 4)
        #expect(fixture.simulation.established.values.allSatisfy { $0.run == run(2) })
        #expect(fixture.secrets.count == 1)
    }

    @Test("works in the 2048-bit default group too", arguments: KeyAgreements.names)
    func defaultGroup(protocolName: String) throws {
        let names = ["a", "b", "c", "d", "e"]
        var fixture = Fixture(protocolName: protocolName, names: names, group: try MODPGroup(bits: 2048, backend: .gmp), seed: 9)
        try fixture.simulation.start(run: run(1), view: names.map(member))
        try fixture.simulation.runToCompletion()
        #expect(fixture.secrets.count == 1)
        #expect(fixture.simulation.established.count == 5)
    }
}

@Suite("Centralized key distribution")
struct CentralizedKeyDistributionTests {
    @Test("agreement over X25519, the controller being the oldest member")
    func x25519() throws {
        let names = ["a", "b", "c", "d", "e", "f"]
        var fixture = Fixture(protocolName: CKD.name, names: names, group: X25519Group(), seed: 3)
        try fixture.simulation.start(run: run(1), view: names.map(member))
        try fixture.simulation.runToCompletion()
        #expect(fixture.secrets.count == 1 && fixture.simulation.established.count == 6)
        // Only the controller broadcasts; the others send to it alone.
        let senders = try fixture.simulation.transcript.map { try KeyAgreementMessage.verified($0, directory: fixture.directory).sender }
        #expect(senders.filter { $0 == member("a") }.count == 2)
    }

    @Test("a forged share, an offer from a non-controller and a share message from a member are refused")
    func adversarial() throws {
        let group = try MODPGroup(bits: 1024, backend: .openssl)
        let names = ["a", "b", "c"]
        var fixture = Fixture(protocolName: CKD.name, names: names, group: group, seed: 5, delivery: .byRound)
        try fixture.simulation.start(run: run(1), view: names.map(member))
        var b = fixture.simulation.members[member("b")]!
        // An offer signed by c (not the controller) is refused.
        let fakeOffer = try KeyAgreementMessage(protocolName: CKD.name, run: run(1), sender: member("c"), sequence: 0, step: 1,
                                                elements: [try group.power(group.generator, Exponent(bytes: [7]))]).signed(with: fixture.keys[member("c")]!)
        #expect(throws: KeyAgreementError.self) { try b.receive(fakeOffer) }
        // Take a's real offer, then a share message whose share for b is garbage: refused, and
        // refused without establishing anything.
        let offer = fixture.simulation.transcript[0]
        _ = try b.receive(offer)
        let forged = try KeyAgreementMessage(protocolName: CKD.name, run: run(1), sender: member("a"), sequence: 1, step: 3,
                                             elements: [], payload: [[UInt8](repeating: 1, count: 48), [UInt8](repeating: 2, count: 48)])
            .signed(with: fixture.keys[member("a")]!)
        #expect(throws: KeyAgreementError.crypto(.authenticationFailed)) { try b.receive(forged) }
        // The genuine run still completes for everyone.
        try fixture.simulation.runToCompletion()
        #expect(fixture.secrets.count == 1 && fixture.simulation.established.count == 3)
    }
}
