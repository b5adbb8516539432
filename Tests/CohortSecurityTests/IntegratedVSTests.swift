import CohortCore
import CohortCrypto
import Testing
@testable import CohortSecurity

/// Integrated VS piece by piece: the daemons' engines agreeing over one total order (what the
/// ring gives them), a cascade, forged agreement messages, the links and submissions refused,
/// and the client hooks sealing, opening and refusing. The simulator runs the whole under
/// faults (SecureSimulationTests).
@Suite("Integrated VS")
struct IntegratedVSTests {
    typealias Engine = IntegratedDaemonSecurity<SeededRandom>

    static let names = ["d1", "d2", "d3"]
    static let signingKeys: [String: SigningKey] = Dictionary(uniqueKeysWithValues: names.map { ($0, SigningKey.generate()) })
    static let publicKeys = signingKeys.mapValues(\.publicKeyBytes)
    static let group = try! GroupName("chat")

    static func daemon(_ name: String) -> DaemonID { DaemonID(name: name, incarnation: 1) }

    static func engine(_ name: String, key: SigningKey? = nil, seed: UInt64 = 1, options: ArchitectureOptions = ArchitectureOptions()) throws -> Engine {
        try Engine(daemonName: name, signingKey: key ?? signingKeys[name]!, publicKeys: publicKeys, options: options,
                   random: SeededRandom(seed: seed &+ UInt64(name.utf8.last!)))
    }

    static func configuration(_ epoch: UInt64, _ members: [String], from previous: UInt64? = nil) -> RingConfiguration {
        let ring = RingID(sequence: epoch, representative: daemon(members[0]))
        return RingConfiguration(ring: ring, previous: previous.map { RingID(sequence: $0, representative: daemon(members[0])) },
                                 members: members.map(daemon))
    }

    /// Daemons over one total order: every broadcast reaches every daemon of the configuration,
    /// in the order sent.
    struct Ring {
        var engines: [String: Engine]
        var queue: [(from: String, bytes: [UInt8])] = []
        var reports: [String: [DaemonSecurityReport]] = [:]
        /// The last timer each engine armed.
        var timers: [String: UInt64] = [:]
        /// How often each engine asked for every group's view to be renewed.
        var renewals: [String: Int] = [:]
        var now = Instant(nanoseconds: 1_000)

        mutating func perform(_ actions: [DaemonSecurityAction], at name: String) {
            for action in actions {
                switch action {
                case .broadcast(let bytes): queue.append((name, bytes))
                case .report(let report): reports[name, default: []].append(report)
                case .armTimer(let token, _): timers[name] = token
                case .renewGroupViews: renewals[name, default: 0] += 1
                case .keysChanged: break
                }
            }
        }

        /// The fingerprints each daemon reported for the agreement `run`.
        func fingerprints(of run: GroupViewID) -> [String: UInt64] {
            var found: [String: UInt64] = [:]
            for (name, list) in reports {
                for case .agreementFinished(run, let fingerprint, _) in list { found[name] = fingerprint }
            }
            return found
        }

        mutating func install(_ configuration: RingConfiguration) {
            for name in configuration.members.map(\.name) {
                perform(engines[name]!.on(.configurationInstalled(configuration), now: now), at: name)
            }
        }

        /// Delivers `limit` queued messages (all when nil) to `members`.
        mutating func run(_ members: [String], limit: Int? = nil) {
            var delivered = 0
            while !queue.isEmpty, delivered < (limit ?? .max) {
                let (from, bytes) = queue.removeFirst()
                now = now.advanced(by: .milliseconds(1))
                for name in members {
                    perform(engines[name]!.on(.daemonMessage(bytes, from: IntegratedVSTests.daemon(from)), now: now), at: name)
                }
                delivered += 1
            }
        }

        func keyOf(_ name: String, view: GroupView, epoch: ConfigurationID) -> ViewKey? {
            var view = view
            var engine = engines[name]!
            engine.secure(&view, createdIn: epoch)
            return view.key
        }
    }

    static func view(_ epoch: UInt64, sequence: UInt64 = 5, members: [String] = ["d1", "d2", "d3"]) -> GroupView {
        GroupView(group: group, viewID: GroupViewID(configuration: ConfigurationID(epoch: epoch, representative: "d1/1"), sequence: sequence),
                  members: members.map { try! MemberID(name: "m", daemon: $0) }, cause: .join, changed: [], continuing: [])
    }

    @Test("three daemons agree on one key, hold deliveries until then, and derive the same key per view, another per view")
    func agreement() throws {
        var ring = Ring(engines: try Dictionary(uniqueKeysWithValues: Self.names.map { ($0, try Self.engine($0)) }))
        let config = Self.configuration(2, Self.names)
        let epoch = config.ring.configurationID
        ring.install(config)
        for name in Self.names { #expect(!ring.engines[name]!.isReady(epoch)) }
        ring.run(Self.names)
        var fingerprints: Set<UInt64> = []
        for name in Self.names {
            #expect(ring.engines[name]!.isReady(epoch))
            for case .agreementFinished(let run, let fingerprint, _) in ring.reports[name] ?? [] {
                #expect(run == GroupViewID(configuration: epoch, sequence: 0))
                fingerprints.insert(fingerprint)
            }
            #expect(ring.engines[name]!.keyEpochDescription?.hasPrefix(epoch.description) == true)
        }
        #expect(fingerprints.count == 1)
        let keys = Self.names.map { ring.keyOf($0, view: Self.view(2), epoch: epoch) }
        #expect(keys[0] != nil && keys[0]!.secret.count == 32)
        #expect(keys.allSatisfy { $0 == keys[0] })
        let other = ring.keyOf("d1", view: Self.view(2, sequence: 6), epoch: epoch)
        #expect(other != nil && other != keys[0])
        // A transitional or empty view gets no key.
        var transitional = Self.view(2)
        transitional.transitional = true
        #expect(ring.keyOf("d1", view: transitional, epoch: epoch) == nil)
        #expect(ring.keyOf("d1", view: Self.view(2, members: []), epoch: epoch) == nil)
    }

    @Test("a cascade abandons the run, the newer configuration agrees, and the old run's stragglers change nothing")
    func cascade() throws {
        var ring = Ring(engines: try Dictionary(uniqueKeysWithValues: Self.names.map { ($0, try Self.engine($0)) }))
        let first = Self.configuration(2, Self.names)
        ring.install(first)
        ring.run(Self.names, limit: 1)
        let stragglers = ring.queue
        ring.queue = []
        // d3 goes; d1 and d2 move on together.
        ring.install(Self.configuration(3, ["d1", "d2"], from: 2))
        ring.install(Self.configuration(3, ["d1", "d2"]))
        let second = Self.configuration(3, ["d1", "d2"]).ring.configurationID
        for name in ["d1", "d2"] {
            #expect(ring.reports[name]!.contains(.agreementAbandoned(run: GroupViewID(configuration: first.ring.configurationID, sequence: 0))))
            #expect(ring.engines[name]!.isReady(first.ring.configurationID), "the old configuration's deliveries go (without keys)")
            #expect(!ring.engines[name]!.isReady(second))
        }
        ring.queue = stragglers + ring.queue
        ring.run(["d1", "d2"])
        #expect(ring.keyOf("d1", view: Self.view(3, members: ["d1", "d2"]), epoch: second)
                == ring.keyOf("d2", view: Self.view(3, members: ["d1", "d2"]), epoch: second))
        #expect(ring.keyOf("d1", view: Self.view(3, members: ["d1", "d2"]), epoch: second) != nil)
        #expect(ring.keyOf("d1", view: Self.view(2), epoch: first.ring.configurationID) == nil)
        for name in ["d1", "d2"] {
            #expect(!ring.reports[name]!.contains { if case .messageRefused = $0 { true } else { false } })
        }
    }

    @Test("agreement messages from a daemon with a rogue key, modified, or of an unknown kind are refused")
    func forgeries() throws {
        var ring = Ring(engines: ["d1": try Self.engine("d1"), "d2": try Self.engine("d2", key: .generate())])
        let config = Self.configuration(2, ["d1", "d2"])
        ring.install(config)
        ring.run(["d1"])
        #expect(ring.reports["d1"]!.contains { if case .messageRefused = $0 { true } else { false } })
        #expect(!ring.engines["d1"]!.isReady(config.ring.configurationID))
        var engine = try Self.engine("d1")
        _ = engine.on(.configurationInstalled(config), now: Instant(nanoseconds: 0))
        let refused = engine.on(.daemonMessage([0x7F, 1, 2, 3], from: Self.daemon("d2")), now: Instant(nanoseconds: 1))
        #expect(refused.contains { if case .report(.messageRefused) = $0 { true } else { false } })
        var honest = Ring(engines: ["d1": try Self.engine("d1"), "d2": try Self.engine("d2")])
        honest.install(config)
        var (from, bytes) = honest.queue.removeFirst()
        bytes[bytes.count - 1] ^= 1
        let tampered = engine.on(.daemonMessage(bytes, from: Self.daemon(from)), now: Instant(nanoseconds: 2))
        #expect(tampered.contains { if case .report(.messageRefused) = $0 { true } else { false } })
    }

    @Test("random and mutated daemon messages and client envelopes are refused, never trap, and change nothing")
    func fuzz() throws {
        var random = SeededRandom(seed: 99)
        // Daemons: random bytes, and genuine messages with one byte changed, to an engine mid-run.
        var ring = Ring(engines: try Dictionary(uniqueKeysWithValues: Self.names.map { ($0, try Self.engine($0)) }))
        let config = Self.configuration(2, Self.names)
        ring.install(config)
        let genuine = ring.queue.map(\.bytes)
        var target = ring.engines["d1"]!
        for round in 0..<2_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                if round % 4 == 0, !bytes.isEmpty { bytes[0] = 0x01 }  // past the kind byte
            } else {
                bytes = genuine[Int(random.next() % UInt64(genuine.count))]
                bytes[Int(random.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: 1 + random.next() % 255)
            }
            let actions = target.on(.daemonMessage(bytes, from: Self.daemon("d2")), now: Instant(nanoseconds: 5))
            for action in actions {
                if case .report(.agreementFinished) = action { Issue.record("a forged message finished the agreement") }
                if case .broadcast = action { Issue.record("a forged message made the engine send") }
            }
        }
        #expect(!target.isReady(config.ring.configurationID))
        // The genuine run still completes on the engine that took all that.
        ring.engines["d1"] = target
        ring.run(Self.names)
        #expect(ring.engines["d1"]!.isReady(config.ring.configurationID))
        #expect(ring.keyOf("d1", view: Self.view(2), epoch: config.ring.configurationID)
                == ring.keyOf("d2", view: Self.view(2), epoch: config.ring.configurationID))

        // Clients: random envelopes and mutated genuine ones never open; the genuine one still does.
        var alice = try Self.hooks(Self.a), bob = try Self.hooks(Self.b)
        var view = Self.keyedView()
        try alice.install(&view)
        view = Self.keyedView()
        try bob.install(&view)
        var sealed = try Self.wrapped("hello", by: Self.a, in: Self.keyedView())
        try alice.seal(&sealed)
        for round in 0..<2_000 {
            var message = Self.delivered(sealed, from: Self.a)
            if round % 2 == 0 {
                message.payload = (0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                if round % 4 == 0, message.payload.count >= 4 { message.payload.replaceSubrange(0..<4, with: sealed.payload[0..<4]) }
            } else {
                let index = Int(random.next() % UInt64(message.payload.count))
                message.payload[index] ^= UInt8(truncatingIfNeeded: 1 + random.next() % 255)
            }
            #expect(throws: ArchitectureError.self) { try bob.open(&message) }
        }
        var genuineMessage = Self.delivered(sealed, from: Self.a)
        try bob.open(&genuineMessage)
    }

    @Test("a daemon alone agrees at once")
    func alone() throws {
        var engine = try Self.engine("d1")
        let config = Self.configuration(1, ["d1"])
        let actions = engine.on(.configurationInstalled(config), now: Instant(nanoseconds: 0))
        #expect(actions.contains { if case .report(.agreementFinished) = $0 { true } else { false } })
        #expect(engine.isReady(config.ring.configurationID))
    }

    @Test("plain TCP is refused (loopback only when allowed); TLS and the Unix socket are served")
    func links() throws {
        let engine = try Self.engine("d1")
        #expect(engine.refusal(of: ClientOrigin(source: "x", address: "x", link: .tcp(loopback: false))) != nil)
        #expect(engine.refusal(of: ClientOrigin(source: "x", address: "x", link: .tcp(loopback: true))) != nil)
        #expect(engine.refusal(of: ClientOrigin(source: "x", address: "x", link: .tls)) == nil)
        #expect(engine.refusal(of: ClientOrigin(source: "x", address: "x", link: .unix)) == nil)
        var options = ArchitectureOptions()
        options.allowsLoopbackTCP = true
        let permissive = try Engine(daemonName: "d1", signingKey: Self.signingKeys["d1"]!, publicKeys: Self.publicKeys,
                                    options: options, random: SeededRandom(seed: 1))
        #expect(permissive.refusal(of: ClientOrigin(source: "x", address: "x", link: .tcp(loopback: true))) == nil)
        #expect(permissive.refusal(of: ClientOrigin(source: "x", address: "x", link: .tcp(loopback: false))) != nil)
    }

    @Test("a submission for two groups, a private group, or too short to be sealed is refused")
    func admission() throws {
        var engine = try Self.engine("d1")
        let sender = try MemberID(name: "a", daemon: "d1")
        var two = OutgoingMessage(service: .agreed, groups: [Self.group, try GroupName("other")], payload: [UInt8](repeating: 0, count: 40))
        let now = Instant(nanoseconds: 1)
        #expect(throws: ArchitectureError.self) { try engine.admit(&two, from: sender, now: now) }
        var short = OutgoingMessage(service: .agreed, groups: [Self.group], payload: [1, 2, 3])
        #expect(throws: ArchitectureError.self) { try engine.admit(&short, from: sender, now: now) }
        var fine = OutgoingMessage(service: .agreed, groups: [Self.group], payload: [UInt8](repeating: 0, count: 40))
        #expect(try engine.admit(&fine, from: sender, now: now).isEmpty)
    }

    // MARK: - Refresh by policy

    /// Three daemons with `options` that agreed on their configuration's key.
    static func keyedRing(options: ArchitectureOptions) throws -> (ring: Ring, epoch: ConfigurationID) {
        var ring = Ring(engines: try Dictionary(uniqueKeysWithValues: names.map { ($0, try engine($0, options: options)) }))
        let config = configuration(2, names)
        ring.install(config)
        ring.run(names)
        return (ring, config.ring.configurationID)
    }

    @Test("time-out: one daemon's timer refreshes the key at every daemon alike, where the last ready is ordered; one renewal of the views is asked for")
    func refreshByTimeOut() throws {
        var options = ArchitectureOptions()
        options.daemonKeyMaxAge = .seconds(60)
        var (ring, epoch) = try Self.keyedRing(options: options)
        let first = GroupViewID(configuration: epoch, sequence: 0)
        let second = GroupViewID(configuration: epoch, sequence: 1)
        let before = ring.keyOf("d1", view: Self.view(2), epoch: epoch)
        #expect(before != nil)
        #expect(Set(ring.fingerprints(of: first).values).count == 1)
        #expect(ring.timers.count == 3, "every daemon arms the key's time-out")

        // A stale token does nothing; d2's own does.
        #expect(ring.engines["d2"]!.on(.timerFired(ring.timers["d2"]! &+ 7), now: ring.now).isEmpty)
        ring.perform(ring.engines["d2"]!.on(.timerFired(ring.timers["d2"]!), now: ring.now), at: "d2")
        #expect(ring.queue.count == 1 && ring.queue[0].bytes[0] == 0x02, "a request is ordered")
        // d3's timer fires too before the request is delivered: it asks as well; the second
        // request is moot.
        ring.perform(ring.engines["d3"]!.on(.timerFired(ring.timers["d3"]!), now: ring.now), at: "d3")
        ring.run(Self.names)

        let refreshed = ring.fingerprints(of: second)
        #expect(refreshed.count == 3 && Set(refreshed.values).count == 1, "every daemon has one refreshed key: \(refreshed)")
        #expect(refreshed["d1"] != ring.fingerprints(of: first)["d1"])
        #expect(ring.renewals.values.reduce(0, +) == 1, "one daemon asks for the renewal: \(ring.renewals)")
        let after = Self.names.map { ring.keyOf($0, view: Self.view(2), epoch: epoch) }
        #expect(after.allSatisfy { $0 == after[0] } && after[0] != before, "new views get the new key everywhere")
        for name in Self.names {
            #expect(ring.engines[name]!.keyEpochDescription?.contains("(refresh 1)") == true)
            #expect(!(ring.reports[name] ?? []).contains { if case .messageRefused = $0 { true } else { false } })
        }
    }

    @Test("data-out: a daemon asks once its clients submitted its share of the bytes, and once only")
    func refreshByDataOut() throws {
        var options = ArchitectureOptions()
        options.daemonKeyMaxAge = nil
        options.daemonKeyMaxBytes = 300
        var (ring, _) = try Self.keyedRing(options: options)
        #expect(ring.timers.isEmpty, "no time-out, no timer")
        let sender = try MemberID(name: "a", daemon: "d1")
        var asked: [Int] = []
        for index in 0..<6 {
            var message = OutgoingMessage(service: .agreed, groups: [Self.group], payload: [UInt8](repeating: 0, count: 40))
            let actions = try ring.engines["d1"]!.admit(&message, from: sender, now: ring.now)
            if !actions.isEmpty { asked.append(index) }
            ring.perform(actions, at: "d1")
        }
        // d1's share is 300 / 3 daemons = 100 bytes: the third message reaches it.
        #expect(asked == [2])
        ring.run(Self.names)
        let refreshed = ring.fingerprints(of: GroupViewID(configuration: Self.configuration(2, Self.names).ring.configurationID, sequence: 1))
        #expect(refreshed.count == 3 && Set(refreshed.values).count == 1)
    }

    @Test("a configuration change cuts a refresh short; a forged request is refused; readies ordered in the transitional configuration still count")
    func refreshCutShortAndForged() throws {
        var options = ArchitectureOptions()
        options.daemonKeyMaxAge = .seconds(60)
        var (ring, epoch) = try Self.keyedRing(options: options)
        // Forged: d2's real request with one bit of its signature flipped.
        ring.perform(ring.engines["d2"]!.on(.timerFired(ring.timers["d2"]!), now: ring.now), at: "d2")
        var forged = ring.queue.removeFirst().bytes
        forged[forged.count - 1] ^= 1
        for name in Self.names {
            let actions = ring.engines[name]!.on(.daemonMessage(forged, from: Self.daemon("d2")), now: ring.now)
            #expect(actions.contains { if case .report(.messageRefused) = $0 { true } else { false } })
            #expect(!actions.contains { if case .report(.agreementStarted) = $0 { true } else { false } })
        }

        // d2 asked already for this key: its timer does not ask again; d1's does.
        #expect(ring.engines["d2"]!.on(.timerFired(ring.timers["d2"]!), now: ring.now).isEmpty)
        ring.perform(ring.engines["d1"]!.on(.timerFired(ring.timers["d1"]!), now: ring.now), at: "d1")
        // Deliver up to the readies, then a transitional configuration before the last ready:
        // the refresh still completes where its last ready is ordered.
        ring.run(Self.names, limit: 2)
        let pending = ring.queue
        ring.queue = []
        for name in Self.names { ring.perform(ring.engines[name]!.on(.configurationInstalled(Self.configuration(3, Self.names, from: 2)), now: ring.now), at: name) }
        ring.queue = pending
        ring.run(Self.names)
        let second = GroupViewID(configuration: epoch, sequence: 1)
        #expect(ring.fingerprints(of: second).count == 3 && Set(ring.fingerprints(of: second).values).count == 1)

        // The regular configuration after it agrees afresh; a refresh in it that a further
        // regular install cuts short is reported abandoned, and the newest configuration agrees.
        let third = Self.configuration(3, Self.names)
        ring.install(third)
        ring.run(Self.names)
        ring.perform(ring.engines["d3"]!.on(.timerFired(ring.timers["d3"]!), now: ring.now), at: "d3")
        ring.run(Self.names, limit: 1)
        ring.queue = []
        let fourth = Self.configuration(4, Self.names)
        ring.install(fourth)
        ring.run(Self.names)
        for name in Self.names {
            #expect(ring.reports[name]!.contains(.agreementAbandoned(run: GroupViewID(configuration: third.ring.configurationID, sequence: 1))))
            #expect(ring.engines[name]!.isReady(fourth.ring.configurationID))
        }
        #expect(Set(ring.fingerprints(of: GroupViewID(configuration: fourth.ring.configurationID, sequence: 0)).values).count == 1)
    }

    // MARK: - Client hooks

    static let a = try! MemberID(name: "a", daemon: "d1")
    static let b = try! MemberID(name: "b", daemon: "d2")
    static let c = try! MemberID(name: "c", daemon: "d3")

    /// A keyed view of a and b, as their daemons deliver it.
    static func keyedView(sequence: UInt64 = 1, secret: [UInt8] = Array(repeating: 9, count: 32)) -> GroupView {
        GroupView(group: group, viewID: GroupViewID(configuration: ConfigurationID(epoch: 1, representative: "d1/1"), sequence: sequence),
                  members: [a, b], cause: .join, changed: [b], continuing: [a],
                  key: ViewKey(keyID: IntegratedDaemonSecurity<SeededRandom>.keyID(of: secret), secret: secret))
    }

    /// A payload of `member`'s flush layer sent in `view` (the flush layer run to its install).
    static func wrapped(_ text: String, by member: MemberID, in view: GroupView) throws -> OutgoingMessage {
        var vs = VirtualSynchrony(member: member)
        var events: [VirtualSynchrony.Event] = [.view(view)]
        while !events.isEmpty {
            for action in vs.on(events.removeFirst()) {
                switch action {
                case .send(let message):
                    // Every member's flush-ok, delivered in order.
                    for sender in view.members {
                        events.append(.message(DeliveredMessage(service: message.service, messageType: message.messageType, sender: sender,
                                                                groups: message.groups, payload: message.payload)))
                    }
                case .flushRequest(let group): events.append(.flush(group))
                default: break
                }
            }
        }
        return try vs.wrap(OutgoingMessage(service: .agreed, groups: [group], payload: Array(text.utf8)))
    }

    static func hooks(_ member: MemberID) throws -> IntegratedClientSecurity {
        try IntegratedClientSecurity(member: member, options: ArchitectureOptions())
    }

    static func delivered(_ message: OutgoingMessage, from sender: MemberID) -> DeliveredMessage {
        DeliveredMessage(service: message.service, messageType: message.messageType, sender: sender, groups: message.groups, payload: message.payload)
    }

    @Test("a sealed message opens at every member of its view, once; the application sees the key id, never the secret")
    func sealAndOpen() throws {
        var alice = try Self.hooks(Self.a), bob = try Self.hooks(Self.b)
        var view = Self.keyedView()
        try alice.install(&view)
        #expect(view.key?.secret.isEmpty == true && view.key?.keyID == Self.keyedView().key?.keyID)
        var bobsView = Self.keyedView()
        try bob.install(&bobsView)
        let plain = try Self.wrapped("hello", by: Self.a, in: Self.keyedView())
        var message = plain
        try alice.seal(&message)
        #expect(message.payload != plain.payload)
        #expect(!message.payload.starts(with: plain.payload.prefix(8)))
        var atBob = Self.delivered(message, from: Self.a)
        try bob.open(&atBob)
        #expect(atBob.payload == plain.payload)
        var atAlice = Self.delivered(message, from: Self.a)
        try alice.open(&atAlice)
        #expect(atAlice.payload == plain.payload)
        var again = Self.delivered(message, from: Self.a)
        #expect(throws: ArchitectureError.self) { try bob.open(&again) }
    }

    @Test("a modified byte, another sender, another group or type, an unknown key: each refused or not for this member")
    func refusals() throws {
        var alice = try Self.hooks(Self.a), bob = try Self.hooks(Self.b), carol = try Self.hooks(Self.c)
        var view = Self.keyedView()
        try alice.install(&view)
        view = Self.keyedView()
        try bob.install(&view)
        var message = try Self.wrapped("hello", by: Self.a, in: Self.keyedView())
        try alice.seal(&message)
        func kind(_ hooks: inout IntegratedClientSecurity, _ message: DeliveredMessage) -> ArchitectureError.Kind? {
            var message = message
            do throws(ArchitectureError) {
                try hooks.open(&message)
                return nil
            } catch {
                return error.kind
            }
        }
        for index in [0, 5, 12, 20, message.payload.count - 1] {
            var tampered = Self.delivered(message, from: Self.a)
            tampered.payload[index] ^= 0x40
            let got = kind(&bob, tampered)
            #expect(got != nil, "byte \(index) modified")
            if index >= 4 { #expect(got == .refused, "byte \(index) modified") }
        }
        #expect(kind(&bob, Self.delivered(message, from: Self.c)) == .refused, "sealed by a, said to be from c")
        var otherGroup = Self.delivered(message, from: Self.a)
        otherGroup.groups = [try GroupName("other")]
        #expect(kind(&bob, otherGroup) == .refused)
        var otherType = Self.delivered(message, from: Self.a)
        otherType.messageType = 7
        #expect(kind(&bob, otherType) == .refused)
        var truncated = Self.delivered(message, from: Self.a)
        truncated.payload = Array(truncated.payload.prefix(10))
        #expect(kind(&bob, truncated) == .refused)
        #expect(kind(&carol, Self.delivered(message, from: Self.a)) == .notForThisMember, "carol never held the key")
        #expect(kind(&bob, Self.delivered(message, from: Self.a)) == nil, "the genuine message still opens")
    }

    @Test("sealing needs the flush layer's tag and the view's key; a key for a view the member is not in is refused")
    func sealingNeeds() throws {
        var alice = try Self.hooks(Self.a)
        var unwrapped = OutgoingMessage(service: .agreed, groups: [Self.group], payload: Array("raw".utf8))
        #expect(throws: ArchitectureError.self) { try alice.seal(&unwrapped) }
        var keyless = Self.keyedView()
        keyless.key = nil
        try alice.install(&keyless)
        var message = try Self.wrapped("hi", by: Self.a, in: keyless)
        #expect(throws: ArchitectureError.self) { try alice.seal(&message) }
        var carol = try Self.hooks(Self.c)
        var notHers = Self.keyedView()
        #expect(throws: ArchitectureError.self) { try carol.install(&notHers) }
        #expect(carol.heldKeyIDs.isEmpty)
    }

    @Test("keys of views before the one the flush layer installed go; leaving the group drops them all")
    func keyRetention() throws {
        var alice = try Self.hooks(Self.a)
        var views = (1...3).map { Self.keyedView(sequence: UInt64($0), secret: Array(repeating: UInt8($0), count: 32)) }
        for index in views.indices { try alice.install(&views[index]) }
        #expect(alice.heldKeyIDs.count == 3)
        alice.viewInstalled(views[1])
        #expect(alice.heldKeyIDs == [views[1].key!.keyID, views[2].key!.keyID])
        var left = views[2]
        left.members = [Self.b]
        alice.viewInstalled(left)
        #expect(alice.heldKeyIDs.isEmpty)
    }
}
