public import CohortCore
import Foundation

/// A deterministic simulation of daemons running the ``GroupService`` (light-weight groups over
/// the ``TotemRing`` membership and ordering protocol) and their clients, over a faulty network: one 64-bit seed decides everything (the options too, in swarm
/// mode), so a failing run replays exactly from its seed.
///
/// The network loses, duplicates and delays messages (a base delay plus an exponentially
/// distributed one, so messages overtake each other); faults partition the daemons (isolate
/// one, split in two, random components), merge components, crash daemons and restart them
/// with a new incarnation. A run has two phases (after TigerBeetle's VOPR): a *safety* phase with
/// faults and client traffic, then a *liveness* phase that heals the network and requires the
/// live daemons to converge on one ring within a bounded time. The EVS checker judges the
/// daemons' delivery logs, and the clients' (order, integrity, at-most-once); a few properties
/// are checked online, on every delivery and install, and so are group views (members that
/// install a view with one identifier see the same members; a view reaches only its members; a
/// client receives a group's messages only while it is a member).
public struct ClusterSimulation: Sendable {
    /// What a run does; ``swarm(seed:daemons:)`` draws them from the seed.
    public struct Options: Sendable, Hashable, CustomStringConvertible {
        /// Daemons at the start.
        public var daemons = 5
        /// Clients, spread over the daemons round-robin.
        public var clients = 10
        /// Probability that a message is lost.
        public var lossRate = 0.02
        /// Probability that a message is delivered twice.
        public var duplicateRate = 0.01
        /// Fixed part of a message's delay, in milliseconds.
        public var delayBaseMilliseconds = 1.0
        /// Mean of the exponential part of a message's delay, in milliseconds.
        public var delayMeanMilliseconds = 1.0
        /// Longest delay of a message, in milliseconds.
        public var delayMaxMilliseconds = 40.0
        /// Each daemon submits a client item about this often, in milliseconds.
        public var submitIntervalMilliseconds = 5.0
        /// Length of the safety phase, in milliseconds.
        public var safetyMilliseconds: UInt64 = 2_000
        /// Time the liveness phase allows for convergence, in milliseconds.
        public var livenessMilliseconds: UInt64 = 4_000
        /// Mean time between faults, in milliseconds; 0 disables faults.
        public var faultIntervalMilliseconds = 250.0
        /// Partition faults (isolate, split, random components) and merges.
        public var partitions = true
        /// Crash and restart faults.
        public var crashes = true
        /// Probability that a daemon stalls after handling an event (a real daemon's event loop
        /// busy or descheduled): until the stall ends, its messages and timers wait, then run in
        /// a shuffled order. Safety phase only.
        public var stallRate = 0.0
        /// Longest stall, in milliseconds.
        public var stallMaxMilliseconds = 100.0
        /// The clients run the Virtual Synchrony flush layer (``VirtualSynchrony``) over the
        /// daemons' EVS, and the VS checker judges what their applications see.
        public var virtualSynchrony = false
        /// VS clients answer a flush request after up to this long, in milliseconds.
        public var flushDelayMaxMilliseconds = 10.0
        /// VS clients hold each new view for a simulated security layer that releases it after
        /// up to ``flushDelayMaxMilliseconds`` (the secure membership hook).
        public var holdsViews = false

        /// Default options.
        public init() {}

        /// Options drawn from `seed` (swarm testing: each seed exercises a different mix).
        public static func swarm(seed: UInt64, daemons: Int? = nil, clients: Int? = nil) -> Options {
            var random = SeededRandom(seed: seed ^ 0x5157_4152_4D00_0000)
            var options = Options()
            options.daemons = daemons ?? [2, 3, 3, 4, 5, 5, 6, 7].randomElement(using: &random)!
            options.clients = clients ?? options.daemons * [1, 2, 3].randomElement(using: &random)!
            options.lossRate = [0, 0.01, 0.02, 0.05, 0.1].randomElement(using: &random)!
            options.duplicateRate = [0, 0, 0.01, 0.05].randomElement(using: &random)!
            options.delayMeanMilliseconds = [0.2, 1, 2, 5].randomElement(using: &random)!
            options.submitIntervalMilliseconds = [1, 3, 10, 30].randomElement(using: &random)!
            options.faultIntervalMilliseconds = [100, 200, 400, 800].randomElement(using: &random)!
            options.partitions = random.next() % 4 != 0
            options.crashes = random.next() % 3 != 0
            if !options.partitions && !options.crashes { options.partitions = true }
            options.stallRate = [0, 0, 0.002, 0.01].randomElement(using: &random)!
            options.stallMaxMilliseconds = [20, 100, 400].randomElement(using: &random)!
            return options
        }

        /// Swarm options with VS clients: the flush delay and the security hold drawn from the
        /// seed too.
        public static func virtualSynchronySwarm(seed: UInt64, daemons: Int? = nil, clients: Int? = nil) -> Options {
            var options = swarm(seed: seed, daemons: daemons, clients: clients)
            var random = SeededRandom(seed: seed ^ 0x5653_464C_5553_4800)
            options.virtualSynchrony = true
            options.flushDelayMaxMilliseconds = [0.5, 2, 10, 40].randomElement(using: &random)!
            options.holdsViews = random.next() % 3 == 0
            return options
        }

        public var description: String {
            "daemons=\(daemons) clients=\(clients) loss=\(lossRate) duplicate=\(duplicateRate) delay=\(delayBaseMilliseconds)+exp(\(delayMeanMilliseconds))ms submit=\(submitIntervalMilliseconds)ms faults=\(faultIntervalMilliseconds)ms partitions=\(partitions) crashes=\(crashes)\(stallRate > 0 ? " stalls=\(stallRate)x\(stallMaxMilliseconds)ms" : "")\(virtualSynchrony ? " vs flush<=\(flushDelayMaxMilliseconds)ms\(holdsViews ? " hold" : "")" : "")"
        }
    }

    /// What a run did, and what broke.
    public struct Summary: Sendable, Hashable {
        /// The seed.
        public var seed: UInt64
        /// The options the run used.
        public var options: Options
        /// Broken properties (empty when every one holds).
        public var violations: [EVSViolation] = []
        /// Partition faults injected.
        public var partitions = 0
        /// Merges (healing a partition).
        public var merges = 0
        /// Crashes.
        public var crashes = 0
        /// Restarts.
        public var restarts = 0
        /// Faults injected while a membership change was running.
        public var cascades = 0
        /// Client messages sent.
        public var messagesSubmitted = 0
        /// Client messages delivered, summed over clients.
        public var messagesDelivered = 0
        /// Ordered items (client operations and state exchanges) delivered, summed over daemons.
        public var itemsDelivered = 0
        /// Group views delivered, summed over clients.
        public var viewsDelivered = 0
        /// Regular configurations installed, summed over daemons.
        public var installs = 0
        /// Peer messages sent (a broadcast counts once per receiver).
        public var peerMessages = 0
        /// Peer messages the daemons dropped as malformed or out of protocol.
        public var droppedPeerMessages = 0
        /// The same, by reason.
        public var droppedByReason: [String: Int] = [:]
        /// Milliseconds from healing the network to one ring of all live daemons, if reached.
        public var convergenceMilliseconds: UInt64?
        /// VS: views delivered to applications, summed over clients.
        public var vsViewsDelivered = 0
        /// VS: flushes the applications gave.
        public var vsFlushes = 0
        /// VS: sends the flush layer refused (flushing, or not a member).
        public var vsRefusedSends = 0
        /// VS: messages the flush layer did not deliver, by reason.
        public var vsDiscarded: [String: Int] = [:]
        /// VS: held views abandoned by a further membership change.
        public var vsAbandonedHolds = 0
        /// Security: daemon keys agreed, summed over daemons.
        public var daemonKeys = 0
        /// Security: daemon keys agreed by a refresh (time-out, data-out), summed over daemons.
        public var daemonKeyRefreshes = 0
        /// Security: renewals of every group's view asked for after a refresh.
        public var viewRenewals = 0
        /// Security: key agreements a newer configuration cut short, summed over daemons.
        public var abandonedAgreements = 0
        /// Security: regular views delivered without a key (their agreement cut short).
        public var keylessViews = 0
        /// Security: daemons' architecture messages refused, by reason.
        public var refusedSecurityMessages: [String: Int] = [:]
        /// Security: messages opened by clients.
        public var messagesOpened = 0
        /// Security: sends a client could not seal (its view came without a key).
        public var unsealedSends = 0

        /// An empty summary of a run of `seed`.
        public init(seed: UInt64, options: Options) {
            self.seed = seed
            self.options = options
        }

        /// Adds another run's counts and violations to these.
        public mutating func accumulate(_ other: Summary) {
            violations += other.violations
            partitions += other.partitions
            merges += other.merges
            crashes += other.crashes
            restarts += other.restarts
            cascades += other.cascades
            messagesSubmitted += other.messagesSubmitted
            messagesDelivered += other.messagesDelivered
            itemsDelivered += other.itemsDelivered
            viewsDelivered += other.viewsDelivered
            installs += other.installs
            peerMessages += other.peerMessages
            droppedPeerMessages += other.droppedPeerMessages
            droppedByReason.merge(other.droppedByReason, uniquingKeysWith: +)
            vsViewsDelivered += other.vsViewsDelivered
            vsFlushes += other.vsFlushes
            vsRefusedSends += other.vsRefusedSends
            vsDiscarded.merge(other.vsDiscarded, uniquingKeysWith: +)
            vsAbandonedHolds += other.vsAbandonedHolds
            daemonKeys += other.daemonKeys
            abandonedAgreements += other.abandonedAgreements
            daemonKeyRefreshes += other.daemonKeyRefreshes
            viewRenewals += other.viewRenewals
            keylessViews += other.keylessViews
            refusedSecurityMessages.merge(other.refusedSecurityMessages, uniquingKeysWith: +)
            messagesOpened += other.messagesOpened
            unsealedSends += other.unsealedSends
        }
    }

    private func makeRing(_ daemon: DaemonID) -> GroupService {
        var settings = ringSettings
        settings.daemon = daemon
        var service = try! GroupService(ring: settings)
        service.reportsOrder = true
        return service
    }

    private func makeStage(_ node: Node) -> SecureDelivery? {
        guard let architecture, let ring = node.ring else { return nil }
        return SecureDelivery(engine: architecture.makeEngine(node.id), epoch: ring.table.configuration)
    }

    private enum Event: Sendable {
        case start(node: Int, incarnation: UInt64)
        case deliver(from: Int, to: Int, incarnation: UInt64, message: PeerMessage)
        case timer(node: Int, incarnation: UInt64, timer: TotemRing.Timer)
        case client(Int)
        /// A VS client's flush layer sends (a flush-ok) through its daemon.
        case clientSend(client: Int, member: MemberID, message: OutgoingMessage)
        /// A VS client's application answers a flush request.
        case flush(client: Int, member: MemberID, group: GroupName)
        /// A VS client's security layer releases a held view.
        case release(client: Int, member: MemberID, group: GroupName, viewID: GroupViewID)
        /// A timer of a daemon's security engine.
        case securityTimer(node: Int, incarnation: UInt64, token: UInt64)
        case fault
        case heal
        case check
    }

    private struct Node {
        var name: String
        var incarnation: UInt64
        var ring: GroupService?
        /// Its security stage, when the run has an architecture.
        var stage: SecureDelivery?
        var component = 0
        /// Stalled until then: its events wait.
        var busyUntil: UInt64 = 0
        var lastLoggedSend: UInt64 = 0
        var intakePaused = false
        var id: DaemonID { DaemonID(name: name, incarnation: incarnation) }
        /// The daemon's name in the logs (`name/incarnation`), kept rather than rebuilt per event.
        var process: String

        init(name: String, incarnation: UInt64) {
            self.name = name
            self.incarnation = incarnation
            self.process = DaemonID(name: name, incarnation: incarnation).description
        }
    }

    /// The seed.
    public let seed: UInt64
    /// The options.
    public let options: Options
    /// Ring settings for every daemon (the daemon's identity is filled in per daemon).
    public var ringSettings = TotemRing.Settings(daemon: DaemonID(name: "template", incarnation: 0))
    /// The security architecture the daemons and clients run, if any: each daemon's group
    /// service output goes through a ``SecureDelivery`` stage with the architecture's engine,
    /// as in `DaemonCore`, and each VS client's views and messages through its hooks; the
    /// security checker judges keys, views and messages.
    public var architecture: SimulatedArchitecture?

    private var random: SeededRandom
    private var queue = EventQueue<Event>()
    private var nodes: [Node] = []
    private var now: UInt64 = 0
    private var logs: [String: [EVSEvent]] = [:]
    private var summary: Summary
    private var healed = false
    private var stableChecks = 0
    private var done = false
    private var online = OnlineEVSMonitor()
    private var security = SecurityMonitor()
    private let traceMember = ProcessInfo.processInfo.environment["COHORT_SIM_TRACE_MEMBER"]
    /// `COHORT_SIM_TRACE_DAEMON=d3`: print the membership messages and timers d3 handles.
    private let traceDaemon = ProcessInfo.processInfo.environment["COHORT_SIM_TRACE_DAEMON"]
    /// `COHORT_SIM_TRACE_SECURITY=1`: print every daemon's security reports and broadcasts.
    private let traceSecurity = ProcessInfo.processInfo.environment["COHORT_SIM_TRACE_SECURITY"] != nil

    private var clients: [Client] = []
    private var clientLogs: [String: [EVSEvent]] = [:]
    private var views = GroupViewMonitor()
    /// VS runs: what each client's application saw.
    private var vsLogs: [String: [VSEvent]] = [:]
    /// Clients with an open session: a daemon delivers nothing to a session that is gone.
    private var connected: Set<MemberID> = []
    /// Clients whose session ended and whose disconnect is not ordered yet: their daemon refuses
    /// their name meanwhile (as `DaemonCore` does).
    private var departing: Set<MemberID> = []
    private static let groupNames = ["g1", "g2", "g3"].map { try! GroupName($0) }

    /// A simulated client: connected to one daemon, in some groups, sending.
    private struct Client {
        var name: String
        var daemon: Int
        /// The daemon incarnation it is connected to, if connected.
        var incarnation: UInt64?
        var member: MemberID?
        var sent: UInt64 = 0
        /// Groups it asked to join and has not left.
        var joined: Set<GroupName> = []
        /// Its flush layer, in VS runs.
        var vs: VirtualSynchrony?
        /// Its security architecture's hooks, in runs with one.
        var hooks: (any ClientSecurityHooks)?
        /// Sessions it opened.
        var sessions = 0
    }

    /// A simulation of `options` driven by `seed`.
    public init(seed: UInt64, options: Options) {
        self.seed = seed
        self.options = options
        self.random = SeededRandom(seed: seed)
        self.summary = Summary(seed: seed, options: options)
    }

    /// Runs the simulation to its end and returns what happened.
    public mutating func run() -> Summary {
        setUp()
        if options.faultIntervalMilliseconds > 0 {
            queue.push(.fault, at: milliseconds(100 + exponential(options.faultIntervalMilliseconds)))
        }
        queue.push(.heal, at: milliseconds(Double(options.safetyMilliseconds)))
        let end = milliseconds(Double(options.safetyMilliseconds + options.livenessMilliseconds))
        let trace = ProcessInfo.processInfo.environment["COHORT_SIM_TRACE"] != nil
        var events = 0
        while !done, let (time, event) = queue.pop() {
            guard time <= end else { break }
            events += 1
            if trace, events % 20_000 == 0 {
                print("t=\(time / 1_000_000)ms events=\(events) queue=\(queue.count) \(nodes.map { $0.ring?.ring.debugState ?? "crashed" })")
            }
            now = time
            if let node = Self.target(of: event), time < nodes[node].busyUntil {
                // Stalled: the event runs when the stall ends, in a shuffled order.
                queue.push(event, at: nodes[node].busyUntil + random.next() % 1_000_000)
                continue
            }
            handle(event)
            if options.stallRate > 0, !healed, let node = Self.target(of: event), unit() < options.stallRate {
                nodes[node].busyUntil = now + milliseconds(1 + unit() * (options.stallMaxMilliseconds - 1))
            }
        }
        return finish()
    }

    /// The daemon an event runs on, if any.
    private static func target(of event: Event) -> Int? {
        switch event {
        case .start(let node, _), .timer(let node, _, _), .deliver(_, let node, _, _): node
        case .securityTimer(let node, _, _): node
        case .client, .clientSend, .flush, .release, .fault, .heal, .check: nil
        }
    }

    private mutating func setUp() {
        for index in 0..<options.daemons {
            var node = Node(name: "d\(index + 1)", incarnation: 1)
            node.ring = makeRing(node.id)
            node.stage = makeStage(node)
            nodes.append(node)
            queue.push(.start(node: index, incarnation: 1), at: milliseconds(Double(random.next() % 20)))
        }
        for index in 0..<options.clients {
            clients.append(Client(name: "c\(index + 1)", daemon: index % options.daemons))
            queue.push(.client(index), at: milliseconds(30 + exponential(options.submitIntervalMilliseconds)))
        }
    }

    private mutating func finish() -> Summary {
        if summary.convergenceMilliseconds == nil {
            let states = nodes.compactMap { node in node.ring.map { "\(node.process): \($0.ring.debugState)" } }
            summary.violations.append(EVSViolation(
                property: "liveness",
                detail: "no single ring of the live daemons \(options.livenessMilliseconds) ms after healing; \(states.joined(separator: "; "))"))
        }
        for node in nodes {
            if let service = node.ring {
                summary.droppedPeerMessages += service.ring.statistics.droppedPeerMessages + service.droppedItems
                summary.droppedByReason.merge(service.ring.statistics.droppedByReason, uniquingKeysWith: +)
            }
        }
        if options.virtualSynchrony, summary.convergenceMilliseconds != nil, !done, !flushesSettled {
            let waiting = clients.compactMap { client in
                client.vs.flatMap { $0.isSettled ? nil : "\(client.member?.description ?? client.name): \($0.debugState)" }
            }
            summary.violations.append(EVSViolation(
                property: "vs-liveness",
                detail: "daemons converged but flushes did not finish \(options.livenessMilliseconds) ms after healing; \(waiting.joined(separator: "; "))"))
        }
        summary.violations += online.violations
        summary.violations += views.violations
        if architecture != nil {
            summary.messagesOpened = security.messagesOpened
            summary.violations += security.violations
            if summary.convergenceMilliseconds != nil {
                for node in nodes where (node.stage?.heldCount ?? 0) > 0 {
                    summary.violations.append(EVSViolation(
                        property: "security-liveness",
                        detail: "\(node.process) still holds \(node.stage!.heldCount) deliveries for keys after the daemons converged"))
                }
            }
            if done {
                // Quiet: nothing in flight, so an agreement (or a refresh) still open is stuck.
                for node in nodes where node.ring != nil && node.stage?.engine.isAgreeing == true {
                    summary.violations.append(EVSViolation(
                        property: "security-liveness",
                        detail: "\(node.process) has an unfinished daemon key agreement once the ring is quiet: \(node.stage!.engine.keyEpochDescription ?? "no key")"))
                }
            }
        }
        if let traceMember, let log = vsLogs[traceMember] {
            for event in log { print("vs-log \(traceMember): \(event)") }
        }
        summary.violations += VSChecker(logs: vsLogs).violations()
        summary.violations += EVSChecker(logs: logs, quiescent: done).violations()
        // Clients: at-most-once, integrity, FIFO, causal and agreed order (their logs hold no
        // configurations, so the configuration properties are the daemons').
        summary.violations += EVSChecker(logs: clientLogs, quiescent: false).violations().map {
            EVSViolation(property: "client-\($0.property)", detail: $0.detail)
        }
        return summary
    }

    // MARK: - Events

    private mutating func handle(_ event: Event) {
        switch event {
        case .start(let index, let incarnation):
            guard nodes[index].incarnation == incarnation, nodes[index].ring != nil else { return }
            perform(index, nodes[index].ring!.on(.start, now: instant))
        case .deliver(let from, let to, let incarnation, let message):
            guard nodes[to].incarnation == incarnation, nodes[to].ring != nil,
                  nodes[from].component == nodes[to].component
            else { return }
            if traceDaemon == nodes[to].name, message.isMembership {
                print("t=\(now / 1_000)us \(nodes[to].process) <- \(nodes[from].name) \(message) [\(nodes[to].ring!.ring.debugState)]")
            }
            perform(to, nodes[to].ring!.on(.peer(message), now: instant))
            if traceDaemon == nodes[to].name, message.isMembership, let ring = nodes[to].ring {
                print("    -> [\(ring.ring.debugState)]")
            }
        case .timer(let index, let incarnation, let timer):
            guard nodes[index].incarnation == incarnation, nodes[index].ring != nil else { return }
            if traceDaemon == nodes[index].name, timer != .tokenRetransmit, timer != .tokenHold {
                print("t=\(now / 1_000)us \(nodes[index].process) timer \(timer) [\(nodes[index].ring!.ring.debugState)]")
            }
            perform(index, nodes[index].ring!.on(.timerFired(timer), now: instant))
            if traceDaemon == nodes[index].name, timer != .tokenRetransmit, timer != .tokenHold, let ring = nodes[index].ring {
                print("    -> [\(ring.ring.debugState)]")
            }
        case .securityTimer(let index, let incarnation, let token):
            guard nodes[index].incarnation == incarnation, nodes[index].ring != nil, nodes[index].stage != nil else { return }
            // The liveness phase starts no new perturbation: as faults, stalls and client sends
            // stop at the heal, so do refreshes by time-out (one in progress goes on to its
            // end). A key refreshed every few hundred milliseconds renews every group's view,
            // and the flushes it starts would never let the run fall quiet.
            guard !healed else { return }
            var actions: [GroupService.Action] = []
            var effects = SecureDelivery.Effects()
            nodes[index].stage!.timerFired(token, now: instant, into: &actions, effects: &effects)
            performSecured(index, actions)
            perform(index, effects: effects)
        case .clientSend(let index, let member, let message):
            let client = clients[index]
            guard client.member == member, client.incarnation == nodes[client.daemon].incarnation,
                  nodes[client.daemon].ring != nil
            else { return }
            guard !nodes[client.daemon].intakePaused else {
                // The daemon does not read from its clients now: the send waits.
                queue.push(event, at: now + milliseconds(1))
                return
            }
            var message = message
            if clients[index].hooks != nil {
                do {
                    try clients[index].hooks!.seal(&message)
                } catch {
                    // A flush-ok of a view without a key, or of one the flush layer has moved past
                    // since: dropped, as the client library does (a newer view replaces it).
                    let keyless = message.groups.first.flatMap { group in
                        VirtualSynchrony.taggedViewID(of: message.payload).map {
                            security.keyless(group, view: $0, at: member) || security.superseded(group, view: $0, at: member)
                        }
                    } ?? false
                    security.unsealable(error.reason, at: member, keyless: keyless)
                    summary.unsealedSends += 1
                    return
                }
            }
            if nodes[client.daemon].stage != nil {
                // The daemon admits it as DaemonCore does (a refresh by data-out asks here).
                var released: [GroupService.Action] = []
                var effects = SecureDelivery.Effects()
                do {
                    try nodes[client.daemon].stage!.admit(&message, from: member, now: instant, into: &released, effects: &effects)
                } catch {
                    security.refusedSubmission(error.reason, from: member)
                    return
                }
                if !released.isEmpty { performSecured(client.daemon, released) }
                perform(client.daemon, effects: effects)
            }
            let delivered = DeliveredMessage(
                service: message.service, messageType: message.messageType, sender: member, groups: message.groups,
                payload: message.payload)
            let actions = nodes[client.daemon].ring!.on(.multicast(delivered), now: instant)
            if traceMember == member.description {
                print("t=\(now / 1_000) \(member) flush layer sends \(message.groups) -> \(actions.count) actions \(nodes[client.daemon].ring!.ring.debugState)")
            }
            perform(client.daemon, actions)
        case .flush(let index, let member, let group):
            guard clients[index].member == member, clients[index].vs?.flushPending(in: group) == true else { return }
            summary.vsFlushes += 1
            flushLayer(of: index, on: .flush(group))
        case .release(let index, let member, let group, let viewID):
            guard clients[index].member == member else { return }
            flushLayer(of: index, on: .release(group, viewID: viewID, attachment: []))
        case .client(let index):
            guard !healed else { return }
            clientStep(index)
            queue.push(.client(index), at: now + milliseconds(exponential(options.submitIntervalMilliseconds)) + 1)
        case .fault:
            guard !healed else { return }
            injectFault()
            queue.push(.fault, at: now + milliseconds(exponential(options.faultIntervalMilliseconds)) + 1)
        case .heal:
            healed = true
            if nodes.contains(where: { $0.component != 0 }) { summary.merges += 1 }
            for index in nodes.indices { nodes[index].component = 0 }
            queue.push(.check, at: now + milliseconds(10))
        case .check:
            checkConvergence()
            if !done { queue.push(.check, at: now + milliseconds(10)) }
        }
    }

    private mutating func checkConvergence() {
        let live = nodes.filter { $0.ring != nil }
        let ids = live.map(\.id).sorted()
        let converged = live.allSatisfy { node in
            node.ring!.isStable && node.ring!.ring.configuration?.members == ids
                && node.ring!.ring.configuration?.ring == live[0].ring!.ring.configuration?.ring
        }
        guard converged else { stableChecks = 0; return }
        if summary.convergenceMilliseconds == nil {
            summary.convergenceMilliseconds = (now - milliseconds(Double(options.safetyMilliseconds))) / 1_000_000
        }
        // Quiescent once nothing waits and every daemon delivered the same packets (a packet
        // sent but not yet received elsewhere leaves its sender and the others idle alike),
        // three checks in a row.
        if live.allSatisfy({ $0.ring!.ring.isIdle && ($0.stage?.heldCount ?? 0) == 0 }),
           Set(live.map { $0.ring!.ring.deliveredSequence }).count == 1, flushesSettled {
            stableChecks += 1
        } else {
            stableChecks = 0
        }
        if stableChecks >= 3 { done = true }
    }

    // MARK: - Faults

    private mutating func injectFault() {
        let live = nodes.indices.filter { nodes[$0].ring != nil }
        let crashed = nodes.indices.filter { nodes[$0].ring == nil }
        if nodes.contains(where: { $0.ring.map { !$0.isStable } ?? false }) { summary.cascades += 1 }
        var kinds: [String] = []
        if options.partitions { kinds += ["isolate", "split", "components", "merge", "merge"] }
        if options.crashes {
            if live.count > 1 { kinds.append("crash") }
            if !crashed.isEmpty { kinds += ["restart", "restart"] }
        }
        guard let kind = kinds.randomElement(using: &random) else { return }
        switch kind {
        case "isolate":
            let victim = nodes.indices.randomElement(using: &random)!
            nodes[victim].component = (nodes.map(\.component).max() ?? 0) + 1
            summary.partitions += 1
        case "split":
            for index in nodes.indices { nodes[index].component = Int(random.next() % 2) }
            summary.partitions += 1
        case "components":
            let count = UInt64(2 + random.next() % 2)
            for index in nodes.indices { nodes[index].component = Int(random.next() % count) }
            summary.partitions += 1
        case "merge":
            if Set(nodes.map(\.component)).count > 1 { summary.merges += 1 }
            for index in nodes.indices { nodes[index].component = 0 }
        case "crash":
            let victim = live.randomElement(using: &random)!
            nodes[victim].ring = nil
            nodes[victim].stage = nil
            logs[nodes[victim].process, default: []].append(.crash)
            connected = connected.filter { $0.daemon != nodes[victim].name }
            departing = departing.filter { $0.daemon != nodes[victim].name }
            summary.crashes += 1
        case "restart":
            let index = crashed.randomElement(using: &random)!
            nodes[index].incarnation += 1
            nodes[index].process = nodes[index].id.description
            nodes[index].lastLoggedSend = 0
            nodes[index].intakePaused = false
            nodes[index].ring = makeRing(nodes[index].id)
            nodes[index].stage = makeStage(nodes[index])
            queue.push(.start(node: index, incarnation: nodes[index].incarnation), at: now + 1)
            summary.restarts += 1
        default:
            break
        }
    }

    // MARK: - Actions

    /// Performs a daemon's group-service actions, through its security stage when it has one
    /// (the engine's broadcasts, timers and reports after the deliveries, as in `DaemonCore`).
    private mutating func perform(_ index: Int, _ actions: [GroupService.Action]) {
        guard nodes[index].stage != nil else { return performSecured(index, actions) }
        var actions = actions
        if traceSecurity {
            for case .security(let bytes, let from) in actions { print("t=\(now / 1_000)us \(nodes[index].process) security receives \(bytes.count) bytes from \(from)") }
        }
        var effects = SecureDelivery.Effects()
        nodes[index].stage!.filter(&actions, now: instant, effects: &effects)
        performSecured(index, actions)
        perform(index, effects: effects)
    }

    private mutating func perform(_ index: Int, effects: SecureDelivery.Effects) {
        guard !effects.isEmpty else { return }
        if traceSecurity {
            for report in effects.reports { print("t=\(now / 1_000)us \(nodes[index].process) security \(report)") }
            if !effects.broadcasts.isEmpty { print("t=\(now / 1_000)us \(nodes[index].process) security broadcasts \(effects.broadcasts.map(\.count)) bytes") }
        }
        for report in effects.reports {
            switch report {
            case .agreementFinished(let run, let fingerprint, _):
                summary.daemonKeys += 1
                if run.sequence > 0 { summary.daemonKeyRefreshes += 1 }
                security.agreed(fingerprint, in: run, at: nodes[index].process)
            case .agreementAbandoned:
                summary.abandonedAgreements += 1
            case .messageRefused(let reason):
                summary.refusedSecurityMessages[reason, default: 0] += 1
            case .viewWithoutKey:
                summary.keylessViews += 1
            case .agreementStarted, .groupRekeyed:
                break
            }
        }
        for timer in effects.timers {
            queue.push(.securityTimer(node: index, incarnation: nodes[index].incarnation, token: timer.token),
                       at: now + nanoseconds(timer.after))
        }
        for bytes in effects.broadcasts where nodes[index].ring != nil {
            perform(index, nodes[index].ring!.on(.security(bytes), now: instant))
        }
        if effects.renewViews, nodes[index].ring != nil {
            summary.viewRenewals += 1
            perform(index, nodes[index].ring!.on(.renewViews, now: instant))
        }
    }

    private mutating func performSecured(_ index: Int, _ actions: [GroupService.Action]) {
        let process = nodes[index].process
        for action in actions {
            switch action {
            case .broadcast(let message):
                logSend(index, message)
                if nodes[index].stage != nil { security.relayed(message, by: process, on: "the daemon links") }
                for target in nodes.indices where target != index && nodes[target].ring != nil {
                    transmit(message, from: index, to: target)
                }
            case .send(let message, let to):
                if nodes[index].stage != nil { security.relayed(message, by: process, on: "a daemon link") }
                guard let target = nodes.firstIndex(where: { $0.id == to && $0.ring != nil }) else { continue }
                transmit(message, from: index, to: target)
            case .armTimer(let timer, let after):
                queue.push(.timer(node: index, incarnation: nodes[index].incarnation, timer: timer), at: now + nanoseconds(after))
            case .ordered(let origin, let service):
                let sender = nodes.first { $0.incarnation == origin.daemon.incarnation && $0.name == origin.daemon.name }?.process
                    ?? origin.daemon.description
                let message = EVSMessage(sender: sender, sequence: origin.sequence, service: service)
                summary.itemsDelivered += 1
                online.deliver(message, at: process)
                logs[process, default: []].append(.deliver(message))
            case .configuration(let configuration):
                if traceMember != nil { print("t=\(now / 1_000) \(process) install \(configuration)") }
                if !configuration.isTransitional { summary.installs += 1 }
                let logged = EVSConfiguration(
                    id: configuration.description, members: Set(configuration.members.map(\.description)),
                    transitional: configuration.isTransitional)
                online.install(logged, at: process)
                logs[process, default: []].append(.install(logged))
            case .pauseIntake(let paused):
                nodes[index].intakePaused = paused
            case .departed(let member):
                departing.remove(member)
            case .view(let view, var recipients):
                if let traceMember, view.changed.contains(where: { $0.description == traceMember }) || view.members.contains(where: { $0.description == traceMember }) {
                    print("t=\(now / 1_000) \(process) VIEW \(view.group) \(view.viewID) \(view.cause) changed=\(view.changed) trans=\(view.transitional) members=\(view.members.count) to \(recipients.count)")
                }
                recipients.removeAll { !connected.contains($0) }
                if traceMember != nil, recipients.contains(where: { $0.description == traceMember }) {
                    print("t=\(now / 1_000) \(process) view \(view.group) \(view.viewID) \(view.cause) trans=\(view.transitional) \(view.members)")
                }
                if let stage = nodes[index].stage {
                    security.delivered(view, to: recipients, at: process, current: stage.epoch)
                }
                for member in recipients {
                    summary.viewsDelivered += 1
                    views.view(view, at: member)
                    guard options.virtualSynchrony, let client = clients.firstIndex(where: { $0.member == member }) else { continue }
                    var view = view
                    if clients[client].hooks != nil {
                        security.took(view, at: member)
                        do {
                            try clients[client].hooks!.install(&view)
                        } catch {
                            security.refusedView(view, at: member, error: error)
                            continue
                        }
                    }
                    flushLayer(of: client, on: .view(view))
                }
            case .message(let message, var recipients, _):
                recipients.removeAll { !connected.contains($0) }
                if nodes[index].stage != nil, !recipients.isEmpty {
                    security.relayed(message.payload[...], by: process, on: "a client socket")
                }
                if traceMember != nil, recipients.contains(where: { $0.description == traceMember }) {
                    print("t=\(now / 1_000) \(process) message \(message.sender) \(message.groups)")
                }
                for member in recipients {
                    summary.messagesDelivered += 1
                    let before = views.violations.count
                    views.message(message, at: member)
                    if traceMember != nil, views.violations.count > before, before < 3 {
                        print("t=\(now / 1_000) VIOLATION at \(process): \(views.violations.last!)")
                    }
                    if options.virtualSynchrony {
                        guard let client = clients.firstIndex(where: { $0.member == member }) else { continue }
                        var message = message
                        if clients[client].hooks != nil {
                            do {
                                try clients[client].hooks!.open(&message)
                                security.opened(message, at: member, error: nil)
                            } catch {
                                security.opened(message, at: member, error: error)
                                continue
                            }
                        }
                        flushLayer(of: client, on: .message(message))
                    } else {
                        clientLogs[member.description, default: []].append(.deliver(Self.clientMessage(message)))
                    }
                }
            case .security:
                // (Taken by the security stage; without one, nothing sends it.)
                break
            case .droppedItem, .refused:
                // (Clients stop at `pauseIntake`; a refusal would be reported to its client.)
                break
            }
        }
    }

    // MARK: - Clients

    /// One step of a client: connect, join, leave, send or disconnect.
    private mutating func clientStep(_ index: Int) {
        var client = clients[index]
        let node = nodes[client.daemon]
        defer { clients[index] = client }
        guard node.ring != nil else { return }
        guard client.incarnation == node.incarnation, let member = client.member else {
            // (Re)connect to the daemon's current incarnation, once its earlier session's
            // disconnect is ordered (a daemon refuses a private name still in use).
            // VS clients take a new private name per session: the groups of an earlier session
            // under the same name may still be in the ring, unordered, and its views would reach
            // the new session's flush layer as its own.
            client.sessions += 1
            let name = options.virtualSynchrony ? "\(client.name)s\(client.sessions)" : client.name
            let candidate = try! MemberID(name: name, daemon: node.name)
            guard !departing.contains(candidate) else { return }
            if options.virtualSynchrony {
                client.vs = VirtualSynchrony(member: candidate, settings: .init(holdsViews: options.holdsViews))
                client.hooks = architecture?.makeClientHooks(candidate)
            }
            client.incarnation = node.incarnation
            client.member = candidate
            client.joined = []
            views.connected(client.member!)
            connected.insert(client.member!)
            return
        }
        guard !node.intakePaused else { return }
        let roll = random.next() % 100
        let event: GroupService.Event
        if client.joined.isEmpty || roll < 8 {
            let group = Self.groupNames.randomElement(using: &random)!
            client.joined.insert(group)
            event = .join(member, group)
        } else if roll < 11 {
            let group = client.joined.sorted().randomElement(using: &random)!
            client.joined.remove(group)
            event = .leave(member, group)
        } else if roll < 12 {
            client.vs = nil
            client.hooks = nil
            client.member = nil
            client.incarnation = nil
            views.disconnected(member)
            connected.remove(member)
            departing.insert(member)
            event = .disconnect(member)
        } else {
            let service: ServiceLevel = [.reliable, .fifo, .causal, .agreed, .agreed, .safe].randomElement(using: &random)!
            let candidates = client.joined.sorted().filter { client.vs?.canSend(in: $0) ?? true }
            guard let group = candidates.randomElement(using: &random) else {
                summary.vsRefusedSends += 1
                return
            }
            client.sent += 1
            var payload = withUnsafeBytes(of: client.sent.bigEndian, Array.init)
            payload += [UInt8](repeating: 0x5A, count: Int(random.next() % 64))
            var message = DeliveredMessage(
                service: ServiceType(service), messageType: 0, sender: member, groups: [group], payload: payload)
            let logged = orderMessage(message)
            if client.vs != nil {
                var outgoing = OutgoingMessage(service: message.service, groups: [group], payload: payload)
                do {
                    outgoing = try client.vs!.wrap(outgoing)
                } catch {
                    fatalError("the flush layer refused a send it allows: \(error)")
                }
                var sealed = true
                if client.hooks != nil {
                    do {
                        try client.hooks!.seal(&outgoing)
                    } catch {
                        // The application's send fails; the flush layer still learns the
                        // write is over (as the client library tells it).
                        let keyless = security.keyless(group, view: client.vs!.view(of: group)!.viewID, at: member)
                        security.unsealable(error.reason, at: member, keyless: keyless)
                        summary.unsealedSends += 1
                        sealed = false
                    }
                }
                if sealed {
                    message.payload = outgoing.payload
                    summary.messagesSubmitted += 1
                    clientLogs[orderLog(member, group), default: []].append(.send(logged))
                    vsLogs[member.description, default: []].append(
                        .send(group: group.rawValue, sequence: client.sent, viewID: client.vs!.view(of: group)!.viewID.description))
                }
                // Written at once (the simulated client hands it to its daemon below).
                clients[index] = client
                flushLayer(of: index, on: .written(group))
                client = clients[index]
                guard sealed else { return }
            } else {
                summary.messagesSubmitted += 1
                clientLogs[orderLog(member, group), default: []].append(.send(logged))
            }
            event = .multicast(message)
        }
        if traceMember == member.description { print("t=\(now / 1_000) \(member) does \(event)") }
        // The daemon's answer may reach this client's flush layer: it sees the client as it is now,
        // and the `defer` keeps what the answer changed.
        clients[index] = client
        let actions = nodes[client.daemon].ring!.on(event, now: instant)
        if traceMember == member.description { print("    [\(nodes[client.daemon].ring!.ring.debugState)]") }
        perform(client.daemon, actions)
        client = clients[index]
    }

    /// Runs a VS client's flush layer on an event and performs what it asks for.
    private mutating func flushLayer(of member: MemberID, on event: VirtualSynchrony.Event) {
        guard let index = clients.firstIndex(where: { $0.member == member }) else { return }
        flushLayer(of: index, on: event)
    }

    private mutating func flushLayer(of index: Int, on event: VirtualSynchrony.Event) {
        guard clients[index].vs != nil, let member = clients[index].member else { return }
        let actions = clients[index].vs!.on(event)
        if traceMember == member.description, !actions.isEmpty {
            print("t=\(now / 1_000) \(member) vs \(event) -> \(actions)")
        }
        for action in actions {
            switch action {
            case .view(let view, _):
                if view.members.contains(member) {
                    summary.vsViewsDelivered += 1
                    if clients[index].hooks != nil {
                        security.installed(view, at: member)
                        clients[index].hooks!.viewInstalled(view)
                    }
                    vsLogs[member.description, default: []].append(.install(
                        group: view.group.rawValue, viewID: view.viewID.description, members: view.members.map(\.description),
                        continuing: view.continuing.map(\.description)))
                } else {
                    if clients[index].hooks != nil {
                        security.left(view.group, at: member)
                        clients[index].hooks!.viewInstalled(view)
                    }
                    vsLogs[member.description, default: []].append(.left(group: view.group.rawValue))
                }
            case .message(let message):
                let logged = Self.clientMessage(message)
                clientLogs[orderLog(member, message.groups[0]), default: []].append(.deliver(orderMessage(message)))
                vsLogs[member.description, default: []].append(.deliver(
                    group: message.groups[0].rawValue, sender: logged.sender, sequence: logged.sequence))
            case .flushRequest(let group):
                queue.push(.flush(client: index, member: member, group: group),
                           at: now + milliseconds(unit() * options.flushDelayMaxMilliseconds))
            case .send(let message):
                queue.push(.clientSend(client: index, member: member, message: message), at: now + milliseconds(0.05))
            case .hold(let view):
                queue.push(.release(client: index, member: member, group: view.group, viewID: view.viewID),
                           at: now + milliseconds(unit() * options.flushDelayMaxMilliseconds))
            case .abandoned:
                summary.vsAbandonedHolds += 1
            case .discarded(_, let reason):
                summary.vsDiscarded[reason.rawValue, default: 0] += 1
            }
        }
    }

    /// The client log that order properties are checked on: one per client; one per client and
    /// group when VS views are held for a security layer, which delivers each group's messages
    /// of a held view after its release (so order holds within a group, not across groups).
    private func orderLog(_ member: MemberID, _ group: GroupName) -> String {
        options.virtualSynchrony && options.holdsViews ? "\(member)|\(group)" : member.description
    }

    /// A message as the order checks see it: its sender is the log it was sent from.
    private func orderMessage(_ message: DeliveredMessage) -> EVSMessage {
        var logged = Self.clientMessage(message)
        logged.sender = orderLog(message.sender, message.groups[0])
        return logged
    }

    /// Whether every connected VS client has installed the newest view of each of its groups.
    private var flushesSettled: Bool {
        clients.allSatisfy { client in
            guard let vs = client.vs, client.incarnation == nodes[client.daemon].incarnation,
                  nodes[client.daemon].ring != nil
            else { return true }
            return vs.isSettled
        }
    }

    static func clientMessage(_ message: DeliveredMessage) -> EVSMessage {
        EVSMessage(
            sender: message.sender.description, sequence: message.payload.prefix(8).reduce(0) { $0 << 8 | UInt64($1) },
            service: message.service.level)
    }

    /// Logs the first broadcast of each of the daemon's own client items as its send.
    private mutating func logSend(_ index: Int, _ message: PeerMessage) {
        guard case .packet(let packet) = message, packet.sender == nodes[index].id,
              case .items(let items) = packet.content
        else { return }
        for item in items {
            let counter = Self.counter(of: item)
            guard counter > nodes[index].lastLoggedSend else { continue }
            nodes[index].lastLoggedSend = counter
            let sent = EVSMessage(sender: nodes[index].process, sequence: counter, service: item.service)
            online.send(sent, at: nodes[index].process)
            logs[nodes[index].process, default: []].append(.send(sent))
        }
    }

    private mutating func transmit(_ message: PeerMessage, from: Int, to: Int) {
        guard nodes[from].component == nodes[to].component else { return }
        summary.peerMessages += 1
        if from != to, unit() < options.lossRate { return }
        let copies = from != to && unit() < options.duplicateRate ? 2 : 1
        for _ in 0..<copies {
            let delay = from == to ? 0.01 : min(options.delayMaxMilliseconds,
                                                options.delayBaseMilliseconds + exponential(options.delayMeanMilliseconds))
            queue.push(.deliver(from: from, to: to, incarnation: nodes[to].incarnation, message: message),
                       at: now + milliseconds(delay))
        }
    }

    static func counter(of item: RingItem) -> UInt64 {
        item.payload.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    // MARK: - Time and randomness

    private var instant: Instant { Instant(nanoseconds: now) }
    private func milliseconds(_ value: Double) -> UInt64 { UInt64(value * 1_000_000) }
    private func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }
    private mutating func unit() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
    private mutating func exponential(_ mean: Double) -> Double { -mean * Foundation.log(1 - unit()) }
}


// MARK: - Membership change cost

extension ClusterSimulation {
    /// The simulated cost of daemon membership changes and of steady-state ordering.
    public struct MembershipCost: Sendable, Hashable {
        /// Daemons in the full configuration.
        public var daemons: Int
        /// Peer messages sent per client message delivered (to one client), in steady state.
        public var peerMessagesPerClientMessage: Double
        /// Peer messages per ordered item (client operations), in steady state.
        public var peerMessagesPerItem: Double
        /// One daemon cut off: milliseconds until the others run a new configuration and its
        /// group state is exchanged (including the token loss timeout that detects the cut).
        public var partitionMilliseconds: Double
        /// The same, counted from the first daemon to start gathering (the protocol alone).
        public var partitionAfterDetectionMilliseconds: Double
        /// Peer messages from the cut to the new configuration.
        public var partitionMessages: Int
        /// The cut healed: milliseconds until all daemons run one configuration, exchanged.
        public var mergeMilliseconds: Double
        /// Peer messages from the heal to the merged configuration.
        public var mergeMessages: Int
    }

    /// Measures membership changes among `daemons` daemons on a network without loss, every
    /// message taking 1 ms: one daemon is cut off, then the cut heals.
    public static func membershipCost(daemons: Int, seed: UInt64 = 1) -> MembershipCost {
        var options = Options()
        options.daemons = daemons
        options.clients = 2 * daemons
        options.lossRate = 0
        options.duplicateRate = 0
        options.delayBaseMilliseconds = 1
        options.delayMeanMilliseconds = 0
        options.submitIntervalMilliseconds = 4
        options.faultIntervalMilliseconds = 0
        var simulation = ClusterSimulation(seed: seed, options: options)
        return simulation.measureMembershipCost()
    }

    private mutating func advance(untilMilliseconds limit: Double, until condition: (Self) -> Bool = { _ in false }) {
        let end = milliseconds(limit)
        while let next = queue.nextTime, next <= end {
            let (time, event) = queue.pop()!
            now = time
            handle(event)
            if condition(self) { return }
        }
        now = max(now, end)
    }

    private func stable(members count: Int, component: Int) -> Bool {
        let live = nodes.filter { $0.ring != nil && $0.component == component }
        guard let ring = live.first?.ring?.ring.configuration?.ring else { return false }
        return live.allSatisfy { node in
            node.ring!.isStable && node.ring!.ring.configuration?.ring == ring
                && node.ring!.ring.configuration?.members.count == count
        }
    }

    private mutating func measureMembershipCost() -> MembershipCost {
        let count = options.daemons
        setUp()
        advance(untilMilliseconds: 500)
        // Steady state: clients join and send for one second.
        let messages0 = summary.peerMessages, delivered0 = summary.messagesDelivered, items0 = summary.itemsDelivered
        advance(untilMilliseconds: 1_500)
        let steadyMessages = Double(summary.peerMessages - messages0)
        let perClientMessage = steadyMessages / Double(max(1, summary.messagesDelivered - delivered0))
        let perItem = steadyMessages / (Double(max(1, summary.itemsDelivered - items0)) / Double(count))
        // Quiet, then cut the last daemon off.
        healed = true
        advance(untilMilliseconds: 2_000)
        let cutAt = now, cutMessages = summary.peerMessages
        let gathers0 = nodes.map { $0.ring!.ring.statistics.gathers }
        nodes[count - 1].component = 1
        var firstGather: UInt64?
        advance(untilMilliseconds: 4_000) { simulation in
            if firstGather == nil, zip(simulation.nodes, gathers0).contains(where: { $0.ring!.ring.statistics.gathers > $1 }) {
                firstGather = simulation.now
            }
            return simulation.stable(members: count - 1, component: 0)
        }
        let partitionTime = Double(now - cutAt) / 1e6
        let afterDetection = Double(now - (firstGather ?? cutAt)) / 1e6
        let partitionMessages = summary.peerMessages - cutMessages
        advance(untilMilliseconds: 5_000)
        let healAt = now, healMessages = summary.peerMessages
        nodes[count - 1].component = 0
        advance(untilMilliseconds: 8_000) { $0.stable(members: count, component: 0) }
        return MembershipCost(
            daemons: count, peerMessagesPerClientMessage: perClientMessage, peerMessagesPerItem: perItem,
            partitionMilliseconds: partitionTime, partitionAfterDetectionMilliseconds: afterDetection,
            partitionMessages: partitionMessages, mergeMilliseconds: Double(now - healAt) / 1e6,
            mergeMessages: summary.peerMessages - healMessages)
    }
}
