import CohortCore
import Foundation
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
            members[id] = AnyKeyAgreement(try! KeyAgreements.make(protocolName, identity: identity, group: group, random: random))
        }
        self.keys = keys
        self.directory = directory
        simulation = KeyAgreementSimulation(members: members, random: TestRandom(seed: seed), delivery: delivery)
    }

    var secrets: Set<[UInt8]> { Set(simulation.established.values.map(\.secret)) }
}

func member(_ name: String) -> MemberID { try! MemberID(name: name, daemon: "d1") }
func run(_ sequence: UInt64) -> GroupViewID { GroupViewID(configuration: ConfigurationID(epoch: 1, representative: "d1"), sequence: sequence) }

/// Messages and rounds of a fresh run of `protocolName` for `size` members (the protocols
/// that start afresh for every view; the tree protocols are checked per change below).
func expectedShape(_ protocolName: String, size: Int) -> (messages: Int, rounds: Int)? {
    switch (protocolName, size) {
    case (_, 1): (0, 0)
    case ("bd", 2): (2, 1)
    case ("bd", _): (2 * size, 2)
    case ("ckd", _): (size + 1, 3)  // offer, n − 1 replies, one broadcast of the shares
    case ("gdh", 2): (3, 2)
    case ("gdh", _): (2 * size - 1, size + 1)  // n − 2 upflow, broadcast, n − 1 factor-outs, keys
    default: nil
    }
}

/// Protocols that run on any DH group (X25519 included).
let exponentiationOnly = KeyAgreements.names.filter { !KeyAgreements.needsArithmetic($0) }
/// Protocols that keep a key tree across views.
let treeProtocols = ["tgdh", "str"]

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
        if let shape = expectedShape(protocolName, size: size) { #expect(fixture.simulation.figures.messages == shape.messages) }
    }

    @Test("messages and synchronous rounds are the protocol's", arguments: ["bd", "ckd", "gdh"], [1, 2, 3, 8])
    func rounds(protocolName: String, size: Int) throws {
        let names = (0..<size).map { "m\($0)" }
        var fixture = Fixture(protocolName: protocolName, names: names, group: group, seed: UInt64(size), delivery: .byRound)
        try fixture.simulation.start(run: run(1), view: names.map(member))
        try fixture.simulation.runToCompletion()
        let figures = fixture.simulation.figures
        #expect(fixture.secrets.count == 1)
        #expect(figures.messages == expectedShape(protocolName, size: size)?.messages)
        #expect(figures.rounds == expectedShape(protocolName, size: size)?.rounds)
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

    @Test("tampered, replayed, reordered, injected and stale messages are refused and change nothing", arguments: KeyAgreements.names)
    func adversarialMessages(protocolName: String) throws {
        let names = ["a", "b", "c"]
        var fixture = Fixture(protocolName: protocolName, names: names, group: group, seed: 7)
        try fixture.simulation.start(run: run(5), view: names.map(member))
        var c = fixture.simulation.members[member("c")]!
        try fixture.simulation.runToCompletion()
        // The first message of some other member that c gets.
        let first = try fixture.simulation.sent.first {
            let message = try KeyAgreementMessage.verified($0.bytes, directory: fixture.directory)
            return message.sequence == 0 && $0.sender != member("c") && $0.receivers.contains(member("c"))
        }!
        let sender = first.sender
        let step = try KeyAgreementMessage.verified(first.bytes, directory: fixture.directory).step
        // Modified: bytes flipped throughout are refused.
        for index in stride(from: 0, to: first.bytes.count, by: 7) {
            var modified = first.bytes
            modified[index] ^= 0x40
            #expect(throws: KeyAgreementError.self) { try c.receive(modified) }
        }
        // Accepted once, then a replay is refused.
        _ = try c.receive(first.bytes)
        #expect(throws: KeyAgreementError.replayed(sender: sender, sequence: 0)) { try c.receive(first.bytes) }
        // Injected: a message signed by a key not in the directory.
        let stranger = try SigningKey(privateKeyBytes: [UInt8](repeating: 9, count: 32))
        let injected = try KeyAgreementMessage(protocolName: protocolName, run: run(5), sender: sender, sequence: 1, step: step,
                                               elements: [group.generator]).signed(with: stranger)
        #expect(throws: KeyAgreementError.badSignature(sender: sender)) { try c.receive(injected) }
        // Reordered: once a later message of the sender was taken, an earlier one is refused
        // (here a message numbered like the first, with other contents).
        let overtaken = try KeyAgreementMessage(protocolName: protocolName, run: run(5), sender: sender, sequence: 0, step: step,
                                                elements: [group.generator]).signed(with: fixture.keys[sender]!)
        #expect(throws: KeyAgreementError.replayed(sender: sender, sequence: 0)) { try c.receive(overtaken) }
        // Stale: a message of another run; another protocol's message.
        let stale = try KeyAgreementMessage(protocolName: protocolName, run: run(4), sender: sender, sequence: 1, step: step,
                                            elements: [group.generator]).signed(with: fixture.keys[sender]!)
        #expect(throws: KeyAgreementError.wrongRun(expected: run(5), got: run(4))) { try c.receive(stale) }
        let foreign = try KeyAgreementMessage(protocolName: "other", run: run(5), sender: sender, sequence: 1, step: step,
                                              elements: [group.generator]).signed(with: fixture.keys[sender]!)
        #expect(throws: KeyAgreementError.wrongProtocol(expected: protocolName, got: "other")) { try c.receive(foreign) }
        // A signed message with an invalid element (1: outside the checked range) at the next
        // sequence number is refused, whatever its step.
        var one = [UInt8](repeating: 0, count: group.elementBytes)
        one[one.count - 1] = 1
        for step in UInt8(1)...4 {
            let weak = try KeyAgreementMessage(protocolName: protocolName, run: run(5), sender: sender, sequence: 1, step: step,
                                               elements: [GroupElement(bytes: one)]).signed(with: fixture.keys[sender]!)
            #expect(throws: KeyAgreementError.self) { try c.receive(weak) }
        }
        // The run was complete for everyone regardless.
        #expect(fixture.secrets.count == 1)
        #expect(fixture.simulation.established.count == 3)
    }

    @Test("every membership change, for group sizes 1 to 10, 16, 32 and 64, under random delivery: one new secret for the new view",
          arguments: KeyAgreements.names, MembershipChange.allCases)
    func membershipChange(protocolName: String, change: MembershipChange) throws {
        let sizes = Array(1...10) + [16, 32, 64]
        for size in sizes {
            let (before, after) = change.views(size: size)
            let everyone = Set(before.flatMap { $0 } + after).sorted().map { "m\($0)" }
            let seed = UInt64(size * 31 + change.rawValue.count)
            var fixture = Fixture(protocolName: protocolName, names: everyone, group: group, seed: seed)
            var earlier: Set<[UInt8]> = []
            for (number, view) in before.enumerated() {
                try fixture.simulation.start(run: run(UInt64(number + 1)), view: view.map { member("m\($0)") })
                try fixture.simulation.runToCompletion()
                earlier.formUnion(fixture.secrets)
            }
            let departed = Set(before.flatMap { $0 }).subtracting(after).map { member("m\($0)") }
            var departedStates = departed.map { fixture.simulation.members[$0]! }
            let final = run(UInt64(before.count + 1))
            try fixture.simulation.start(run: final, view: after.map { member("m\($0)") })
            try fixture.simulation.runToCompletion()
            let context = "\(protocolName) \(change) size \(size) seed \(seed)"
            #expect(fixture.simulation.established.count == size, "\(context)")
            #expect(fixture.secrets.count == 1, "\(context)")
            #expect(fixture.simulation.established.values.allSatisfy { $0.run == final }, "\(context)")
            #expect(fixture.secrets.isDisjoint(with: earlier), "\(context): a secret of an earlier view came back")
            // A member that left holds its old state and sees every public message of the run:
            // it is refused each one.
            for index in departedStates.indices {
                for bytes in fixture.simulation.transcript.prefix(8) {
                    #expect(throws: KeyAgreementError.self, "\(context)") { try departedStates[index].receive(bytes) }
                }
            }
        }
    }

    /// How many deliveries a run of `view` takes in `fixture`'s network, undisturbed.
    func deliveries(_ fixture: Fixture, run id: GroupViewID, view: [String]) throws -> Int {
        var probe = fixture
        try probe.simulation.start(run: id, view: view.map(member))
        var count = 0
        while try probe.simulation.deliverOne() { count += 1 }
        return count
    }

    @Test("a cascaded change at every step of a run restarts cleanly on the new membership", arguments: KeyAgreements.names)
    func cascade(protocolName: String) throws {
        let names = ["a", "b", "c", "d", "e"]
        let total = try deliveries(Fixture(protocolName: protocolName, names: names, group: group, seed: 100), run: run(1), view: names)
        for step in 0...total {
            var fixture = Fixture(protocolName: protocolName, names: names, group: group, seed: 100)
            try fixture.simulation.start(run: run(1), view: names.map(member))
            for _ in 0..<step { _ = try fixture.simulation.deliverOne() }
            // The view changes before the run finished (or just after): a — the oldest member,
            // so CKD's controller — leaves; the others end the view under VS.
            let second = ["b", "c", "d", "e"].map(member)
            let leftovers = try fixture.simulation.flushViewChange(survivors: Set(second))
            try fixture.simulation.start(run: run(2), view: second)
            // Messages of the abandoned run still arrive: each is refused.
            for (receiver, messages) in leftovers where second.contains(receiver) {
                for bytes in messages {
                    #expect(throws: KeyAgreementError.self) { try fixture.simulation.members[receiver]!.receive(bytes) }
                }
            }
            try fixture.simulation.runToCompletion()
            #expect(fixture.simulation.established.count == 4, "step \(step) of \(total)")
            #expect(fixture.simulation.established.values.allSatisfy { $0.run == run(2) })
            #expect(fixture.secrets.count == 1, "step \(step) of \(total)")
        }
    }

    @Test("a change cascading onto a merge at every step of it, and a second cascade after that", arguments: KeyAgreements.names)
    func cascadeOnMerge(protocolName: String) throws {
        let names = ["a", "b", "c", "d", "e", "f", "g"]
        var formed = Fixture(protocolName: protocolName, names: names, group: group, seed: 500)
        try formed.simulation.start(run: run(1), view: ["a", "b", "c", "d"].map(member))
        try formed.simulation.runToCompletion()
        try formed.simulation.start(run: run(2), view: ["e", "f", "g"].map(member))
        try formed.simulation.runToCompletion()
        let total = try deliveries(formed, run: run(3), view: names)
        for step in 0...total {
            var fixture = formed
            // The two merge; during the merge b and f leave; during that, g leaves too.
            try fixture.simulation.start(run: run(3), view: names.map(member))
            for _ in 0..<step { _ = try fixture.simulation.deliverOne() }
            let second = ["a", "c", "d", "e", "g"].map(member)
            _ = try fixture.simulation.flushViewChange(survivors: Set(second))
            try fixture.simulation.start(run: run(4), view: second)
            for _ in 0..<(step / 2) { _ = try fixture.simulation.deliverOne() }
            let third = ["a", "c", "d", "e"].map(member)
            _ = try fixture.simulation.flushViewChange(survivors: Set(third))
            try fixture.simulation.start(run: run(5), view: third)
            try fixture.simulation.runToCompletion()
            #expect(fixture.simulation.established.count == 4, "step \(step) of \(total)")
            #expect(fixture.simulation.established.values.allSatisfy { $0.run == run(5) })
            #expect(fixture.secrets.count == 1, "step \(step) of \(total)")
        }
    }

    @Test("a member partitioned away and back rejoins with its own component", arguments: KeyAgreements.names)
    func rejoin(protocolName: String) throws {
        let names = ["a", "b", "c", "d", "e"]
        var fixture = Fixture(protocolName: protocolName, names: names, group: group, seed: 77)
        var secrets: Set<[UInt8]> = []
        for (number, view) in [names, ["a", "b", "c"], ["d", "e"], ["d"], names, ["b", "d"], names].enumerated() {
            try fixture.simulation.start(run: run(UInt64(number + 1)), view: view.map(member))
            try fixture.simulation.runToCompletion()
            #expect(fixture.simulation.established.count == view.count, "view \(number + 1)")
            #expect(fixture.secrets.count == 1)
            #expect(fixture.secrets.isDisjoint(with: secrets))
            secrets.formUnion(fixture.secrets)
        }
    }

    @Test("works in the 2048-bit default group too, on GMP", arguments: KeyAgreements.names)
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

@Suite("Tree protocols (TGDH, STR)")
struct KeyTreeProtocolTests {
    let group = try! MODPGroup(bits: 1024, backend: .openssl)

    /// A group of `size` formed, then `change`d, in synchronous rounds: the change's figures.
    func figures(_ protocolName: String, _ change: MembershipChange, size: Int, group: any DHGroup) throws -> KeyAgreementSimulation<AnyKeyAgreement, TestRandom>.Figures {
        let (before, after) = change.views(size: size)
        let everyone = Set(before.flatMap { $0 } + after).sorted().map { "m\($0)" }
        var fixture = Fixture(protocolName: protocolName, names: everyone, group: group, seed: UInt64(size), delivery: .byRound)
        for (number, view) in before.enumerated() {
            try fixture.simulation.start(run: run(UInt64(number + 1)), view: view.map { member("m\($0)") })
            try fixture.simulation.runToCompletion()
        }
        try fixture.simulation.start(run: run(UInt64(before.count + 1)), view: after.map { member("m\($0)") })
        try fixture.simulation.runToCompletion()
        #expect(fixture.secrets.count == 1 && fixture.simulation.established.count == size)
        return fixture.simulation.figures
    }

    @Test("a leave costs one broadcast in one round; a join three messages in two rounds",
          arguments: treeProtocols, [2, 3, 5, 8, 13, 16, 33])
    func joinAndLeave(protocolName: String, size: Int) throws {
        let leave = try figures(protocolName, .leave, size: size, group: group)
        #expect(leave.messages == 1 && leave.rounds == 1, "\(leave)")
        let join = try figures(protocolName, .join, size: size, group: group)
        // The joiner's tree and the group's tree, then the sponsor's keys.
        #expect(join.messages == 3 && join.rounds == 2, "\(join)")
        // Logarithmic (TGDH) or linear (STR) work on the sponsor's path, never quadratic.
        let height = protocolName == "str" ? size : Int(Double(size).squareRoot().rounded(.up)) + 2
        #expect(leave.criticalPathExponentiations <= 2 * height + 2, "\(leave)")
        #expect(join.criticalPathExponentiations <= 3 * height + 2, "\(join)")
    }

    @Test("a partition costs STR one round; TGDH at most the tree's height", arguments: treeProtocols, [4, 8, 16, 32])
    func partition(protocolName: String, size: Int) throws {
        let partition = try figures(protocolName, .partition, size: size, group: group)
        if protocolName == "str" {
            #expect(partition.messages == 1 && partition.rounds == 1, "\(partition)")
        } else {
            #expect(partition.rounds <= 8, "\(partition)")
        }
    }

    @Test("agreement over X25519", arguments: exponentiationOnly, MembershipChange.allCases)
    func x25519(protocolName: String, change: MembershipChange) throws {
        for size in [1, 2, 7, 30] {
            _ = try figures(protocolName, change, size: size, group: X25519Group())
        }
    }
}

@Suite("Key agreement under random membership histories")
struct KeyAgreementHistoryTests {
    /// Random histories over eight members: components split, merge, lose and gain members,
    /// and changes cascade onto runs in progress at random points (ended under VS). Checked:
    /// no view ever has two secrets (abandoned runs included), every completed view's members
    /// all hold its secret, and no secret repeats. 60 seeds per protocol; more with
    /// `COHORT_KEY_AGREEMENT_SEEDS=N swift test --filter randomHistories`, one with
    /// `COHORT_KEY_AGREEMENT_SEED=S` (a failure names its seed).
    @Test("random histories with cascades: one secret per view, never stuck", arguments: KeyAgreements.names)
    func randomHistories(protocolName: String) throws {
        let group = try MODPGroup(bits: 1024, backend: .openssl)
        let everyone = (0..<8).map { "m\($0)" }
        let environment = ProcessInfo.processInfo.environment
        let seeds = environment["COHORT_KEY_AGREEMENT_SEED"].flatMap(UInt64.init).map { $0...$0 }
            ?? 1...(environment["COHORT_KEY_AGREEMENT_SEEDS"].flatMap(UInt64.init) ?? 60)
        for seed in seeds {
            do { try history(protocolName: protocolName, seed: seed, group: group, everyone: everyone) } catch {
                Issue.record("\(protocolName) seed \(seed): \(error); replay: COHORT_KEY_AGREEMENT_SEED=\(seed) swift test --filter randomHistories")
            }
        }
    }

    func history(protocolName: String, seed: UInt64, group: MODPGroup, everyone: [String]) throws {
        do {
            var random = TestRandom(seed: seed)
            var fixture = Fixture(protocolName: protocolName, names: everyone, group: group, seed: seed)
            var components: [[MemberID]] = everyone.map { [member($0)] }
            var sequence: UInt64 = 0
            var secrets: [GroupViewID: [UInt8]] = [:]
            var seen: Set<[UInt8]> = []
            func record(_ context: String) {
                for (holder, established) in fixture.simulation.established {
                    if let known = secrets[established.run] {
                        #expect(known == established.secret, "\(protocolName) seed \(seed) \(context): two secrets for \(established.run) (\(holder))")
                    } else {
                        #expect(!seen.contains(established.secret), "\(protocolName) seed \(seed) \(context): a secret came back")
                        secrets[established.run] = established.secret
                        seen.insert(established.secret)
                    }
                }
            }
            for change in 0..<10 {
                // The next view of one component: merged with another, split, or changed by one member.
                components.shuffle(using: &random)
                var view = components.removeFirst()
                switch Int.random(in: 0..<3, using: &random) {
                case 0 where !components.isEmpty:
                    view += components.removeFirst()
                case 1 where view.count > 1:
                    let cut = Int.random(in: 1..<view.count, using: &random)
                    components.append(Array(view[cut...]))
                    view = Array(view[..<cut])
                default:
                    if view.count > 1 {
                        components.append([view.removeLast()])
                    } else if !components.isEmpty {
                        view += components.removeFirst()
                    }
                }
                view.sort()
                sequence += 1
                try fixture.simulation.start(run: run(sequence), view: view)
                // Sometimes a further change cascades onto the run in progress.
                while Bool.random(using: &random) && view.count > 1 {
                    let steps = Int.random(in: 0..<(4 * view.count), using: &random)
                    for _ in 0..<steps { _ = try fixture.simulation.deliverOne() }
                    record("change \(change)")
                    let leaving = view.remove(at: Int.random(in: 0..<view.count, using: &random))
                    components.append([leaving])
                    _ = try fixture.simulation.flushViewChange(survivors: Set(view))
                    sequence += 1
                    try fixture.simulation.start(run: run(sequence), view: view)
                }
                try fixture.simulation.runToCompletion()
                #expect(fixture.simulation.established.count == view.count, "\(protocolName) seed \(seed) change \(change): stuck")
                record("change \(change)")
                components.append(view)
            }
        }
    }
}
