/// Where the group service's output meets the daemon security engine: the one place that holds
/// deliveries while keys are made, releases them in order, attaches keys to views, and runs the
/// engine's protocol on the ring. The daemon core and the simulator both run their group
/// service's actions through it, so the simulator checks the code the daemons run.
///
/// Order is kept: a delivery (view, message, or a departure that frees a private name) is held
/// while an earlier one is, or while the engine says its configuration's keys are not ready; a
/// held one is released, with its view keyed, before anything that follows it. Ring traffic,
/// timers and configuration reports are never held.
public struct SecureDelivery: Sendable {
    /// What the engine asked for besides deliveries, for the driver to perform after them.
    public struct Effects: Sendable {
        /// Bytes to order on the ring (``GroupService/Event/security(_:)``), in order.
        public var broadcasts: [[UInt8]] = []
        /// Timers to arm: token and delay.
        public var timers: [(token: UInt64, after: Duration)] = []
        /// Reports for the log, the metrics and the checkers.
        public var reports: [DaemonSecurityReport] = []
        /// Whether to order a renewal of every group's view (``GroupService/Event/renewViews``),
        /// after the broadcasts.
        public var renewViews = false

        /// No effects.
        public init() {}

        /// Whether there is nothing to do.
        public var isEmpty: Bool { broadcasts.isEmpty && timers.isEmpty && reports.isEmpty && !renewViews }
    }

    /// The architecture's daemon side.
    public private(set) var engine: any DaemonSecurityEngine
    /// Whether the engine is `plain`'s: nothing to hold, key or run, so ``filter(_:now:effects:)``
    /// returns at once.
    private let passThrough: Bool
    /// The regular configuration new deliveries belong to (views made in a transitional
    /// configuration are keyed with the regular one before it: its members all hold its key).
    public private(set) var epoch: ConfigurationID
    /// Deliveries waiting for their configuration's keys, oldest first, with the configuration
    /// they were made in.
    private var held: [(action: GroupService.Action, epoch: ConfigurationID)] = []

    /// A stage for `engine`, starting in `epoch` (the group table's initial configuration).
    public init(engine: any DaemonSecurityEngine, epoch: ConfigurationID) {
        self.engine = engine
        self.passThrough = engine is PlainDaemonSecurity
        self.epoch = epoch
    }

    /// Deliveries waiting for keys.
    public var heldCount: Int { held.count }

    /// Whether the engine is `plain`'s, which the stage passes by: nothing held, admitted or
    /// transformed.
    public var passesThrough: Bool { passThrough }

    /// Runs one event's group-service actions through the stage, in place: deliveries that must
    /// wait are taken out, released ones put in their place in order, views keyed, the
    /// architecture's messages handed to the engine. What else the engine asks for is added to
    /// `effects`.
    public mutating func filter(_ actions: inout [GroupService.Action], now: Instant, effects: inout Effects) {
        guard !passThrough else { return }
        // The message path: with nothing held and keys ready, messages and ring traffic pass
        // as they are; only an event with a view, a configuration or a daemon message is
        // rebuilt.
        if held.isEmpty, engine.isReady(epoch), !actions.contains(where: Self.needsStage) { return }
        var output: [GroupService.Action] = []
        output.reserveCapacity(actions.count)
        for index in actions.indices {
            var action = GroupService.Action.pauseIntake(false)
            swap(&action, &actions[index])
            switch action {
            case .view, .message, .departed:
                if held.isEmpty, engine.isReady(epoch) {
                    output.append(secured(action, epoch: epoch, effects: &effects))
                } else {
                    held.append((action, epoch))
                }
            case .configuration(let configuration):
                output.append(action)
                if !configuration.isTransitional { epoch = configuration.ring.configurationID }
                run(.configurationInstalled(configuration), now: now, into: &output, effects: &effects)
            case .security(let bytes, let from):
                run(.daemonMessage(bytes, from: from), now: now, into: &output, effects: &effects)
            default:
                output.append(action)
            }
        }
        actions = output
    }

    /// A timer of the engine fired: released deliveries are appended to `actions`.
    public mutating func timerFired(_ token: UInt64, now: Instant, into actions: inout [GroupService.Action], effects: inout Effects) {
        run(.timerFired(token), now: now, into: &actions, effects: &effects)
    }

    /// Inspects a client submission (``DaemonSecurityEngine/admit(_:from:now:)``); deliveries
    /// it released go to `actions`.
    public mutating func admit(
        _ message: inout OutgoingMessage, from sender: MemberID, now: Instant,
        into actions: inout [GroupService.Action], effects: inout Effects
    ) throws(ArchitectureError) {
        guard !passThrough else { return }
        let answered = try engine.admit(&message, from: sender, now: now)
        if !answered.isEmpty { perform(answered, into: &actions, effects: &effects) }
    }

    /// Transforms an ordered message before local delivery (``DaemonSecurityEngine/prepareDelivery(_:)``).
    public mutating func prepareDelivery(_ message: inout DeliveredMessage) {
        guard !passThrough else { return }
        engine.prepareDelivery(&message)
    }

    /// Why a client on `origin` is refused, if it is.
    public func refusal(of origin: ClientOrigin) -> String? { engine.refusal(of: origin) }

    private static func needsStage(_ action: GroupService.Action) -> Bool {
        switch action {
        case .view, .configuration, .security, .departed: true
        default: false
        }
    }

    /// Feeds the engine and performs what it answers: released deliveries go to `output`.
    private mutating func run(_ event: DaemonSecurityEvent, now: Instant, into output: inout [GroupService.Action], effects: inout Effects) {
        perform(engine.on(event, now: now), into: &output, effects: &effects)
    }

    /// Performs what the engine answered: released deliveries go to `output`.
    private mutating func perform(_ answered: [DaemonSecurityAction], into output: inout [GroupService.Action], effects: inout Effects) {
        for action in answered {
            switch action {
            case .broadcast(let bytes): effects.broadcasts.append(bytes)
            case .armTimer(let token, let after): effects.timers.append((token, after))
            case .report(let report): effects.reports.append(report)
            case .keysChanged: release(into: &output, effects: &effects)
            case .renewGroupViews: effects.renewViews = true
            }
        }
    }

    /// Releases held deliveries, oldest first, while their configuration's keys are ready.
    private mutating func release(into output: inout [GroupService.Action], effects: inout Effects) {
        var released = 0
        while released < held.count, engine.isReady(held[released].epoch) {
            var action = GroupService.Action.pauseIntake(false)
            swap(&action, &held[released].action)
            output.append(secured(action, epoch: held[released].epoch, effects: &effects))
            released += 1
        }
        held.removeFirst(released)
    }

    /// The action with its view keyed (messages and departures pass as they are).
    private mutating func secured(_ action: GroupService.Action, epoch: ConfigurationID, effects: inout Effects) -> GroupService.Action {
        guard case .view(var view, let members) = action else { return action }
        engine.secure(&view, createdIn: epoch)
        if !view.transitional, !view.members.isEmpty {
            effects.reports.append(view.key == nil ? .viewWithoutKey(view.group) : .groupRekeyed(view.group))
        }
        return .view(view, to: members)
    }
}
