import CohortConfiguration
import CohortCore
import CohortCrypto
import CohortSecurity
#if canImport(Glibc)
import Glibc
#endif

/// `cohort-path-bench`: the CPU cost of the message path of a server group, in one process.
///
/// Three ``DaemonCore``s on the daemon defaults of `cohortd` (`DaemonConfiguration.Membership`)
/// are wired together in memory: every protocol message is encoded to the bytes of a daemon
/// link frame and decoded by each receiver, every client frame is encoded and decoded as on a
/// socket. A sender on d1 multicasts AGREED messages to a group with one listener on d2 and one
/// on d3 (the shape of the `throughput` experiment); the listeners' frames are decoded as the
/// client library does. No sockets, no event loop, no clock in the cores: what is left is the
/// work of the pure cores and codecs per message — the part of a real run's CPU this project's
/// own code decides. Time is virtual: timers fire when nothing else is left to do.
///
/// Prints, per message size, nanoseconds of CPU per delivered message (both listeners) for the
/// whole path and for each part, median of `--repeats` runs.
///
/// With `--architecture integrated-vs`, the sealed path of that architecture: the daemons run
/// its engine (they agree on K_s first and key every view), and the sender and the listeners are
/// VS clients (the flush layer, ``VirtualSynchrony``) with the architecture's client hooks, so
/// the sender wraps and seals every message anew and every member (the sender too: a closed
/// group's sender is a member) opens what it gets. The sender's part is `sender_client_ns`;
/// `listeners_ns` is every member's decoding and opening.
///
/// With `--ratio`, prints instead, per size, the wall-clock time per message divided by the time
/// of a fixed reference workload (``referenceWork()``) run in between every few milliseconds of
/// the message path (so both see the same share of a loaded machine), median of `--repeats` runs: a figure that follows this project's code and not the
/// machine's speed or load, which `Scripts/perf-gate.sh` checks with a wide margin.
///
/// With `--codec`, prints instead the frame codec alone: nanoseconds per encode and per decode
/// of a client's multicast frame and of the daemon's message frame to a client, per size.
///
///     swift run -c release cohort-path-bench [--sizes 100,1024,65536] [--messages 200000] [--repeats 5]
///         [--architecture plain|integrated-vs] [--ratio | --codec]
@main
struct MessagePathBenchmark {
    static func main() throws {
        var sizes = [100, 1024, 65536]
        var messages = 200_000
        var repeats = 5
        var ratio = false
        var codec = false
        var architecture = Architecture.plain
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--sizes": sizes = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }
            case "--messages": messages = Int(arguments.next() ?? "") ?? messages
            case "--repeats": repeats = Int(arguments.next() ?? "") ?? repeats
            case "--ratio": ratio = true
            case "--codec": codec = true
            case "--architecture":
                let name = arguments.next() ?? ""
                guard let named = try? Architecture.named(name), [Architecture.plain.name, Architecture.integratedVS.name].contains(named.name) else {
                    print("--architecture: plain or integrated-vs, not '\(name)'")
                    return
                }
                architecture = named
            default:
                print("usage: cohort-path-bench [--sizes 100,1024,65536] [--messages 200000] [--repeats 5] [--architecture plain|integrated-vs] [--ratio | --codec]")
                return
            }
        }
        if codec {
            print("size,frame,operation,ns")
            for size in sizes {
                for (frame, operation, nanoseconds) in try CodecBenchmark(payloadBytes: size).measure(repeats: repeats) {
                    print("\(size),\(frame),\(operation),\(Int(nanoseconds.rounded()))")
                }
            }
            return
        }
        if ratio {
            print("size,messages,ratio")
            for size in sizes {
                let count = messageCount(size: size, messages: messages)
                var ratios: [Double] = []
                for _ in 0..<repeats {
                    var path = try MessagePath(payloadBytes: size, architecture: architecture)
                    let figures = try path.run(messages: count, interleavingReference: true)
                    ratios.append(figures.total / figures.reference)
                }
                print("\(size),\(count),\(ratios.sorted()[ratios.count / 2])")
            }
            return
        }
        print("size,messages,ns_per_message,sender_client_ns,sender_daemon_ns,receiving_daemons_ns,listeners_ns,codec_ns")
        for size in sizes {
            let count = messageCount(size: size, messages: messages)
            var runs: [Figures] = []
            for _ in 0..<repeats {
                var path = try MessagePath(payloadBytes: size, architecture: architecture)
                runs.append(try path.run(messages: count))
            }
            let median = runs.sorted { $0.total < $1.total }[runs.count / 2]
            print("\(size),\(count),\(median.row)")
        }
    }
}

/// Messages sent at `size`: `messages`, or a twentieth of them at 64 KiB and above (each costs
/// about twenty times more).
func messageCount(size: Int, messages: Int) -> Int { size >= 65536 ? max(1, messages / 20) : messages }

/// CPU nanoseconds of one run, per delivered message.
struct Figures {
    var total: Double
    /// The sending client's wrapping and sealing (0 under `plain`, whose frame is made once).
    var senderClient: Double
    var senderDaemon: Double
    var receivingDaemons: Double
    var listeners: Double
    var codec: Double
    /// Nanoseconds per call of ``referenceWork()`` run in between (0 unless asked for).
    var reference: Double = 0
    var row: String {
        [total, senderClient, senderDaemon, receivingDaemons, listeners, codec].map { String(Int($0.rounded())) }.joined(separator: ",")
    }
}

/// Monotonic time in nanoseconds (a vDSO call; the run is one busy thread, so it is its CPU time give or take preemption, which the median of several runs removes).
func cpuNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// The frame codec alone: the frames of the message path, encoded into a reused writer and
/// decoded with a reused memo, as the daemon and the client library do.
struct CodecBenchmark {
    let client: ClientFrame
    let daemon: DaemonFrame
    let limits = Limits()

    init(payloadBytes: Int) throws {
        let group = try GroupName("flood")
        let payload = [UInt8](repeating: 7, count: payloadBytes)
        client = .multicast(OutgoingMessage(service: .agreed, messageType: 0, groups: [group], payload: payload))
        daemon = .message(DeliveredMessage(
            service: .agreed, messageType: 0, sender: try MemberID(name: "sender", daemon: "d1"), groups: [group], payload: payload))
    }

    /// (frame, operation, nanoseconds per call), median of `repeats` timings of 20 ms or more.
    func measure(repeats: Int) throws -> [(String, String, Double)] {
        var writer = WireWriter(capacity: 128 * 1024)
        client.encode(into: &writer)
        let clientBytes = writer.bytes
        writer.removeAll()
        daemon.encode(into: &writer)
        let daemonBytes = writer.bytes
        var clientMemo = DecodeMemo()
        var daemonMemo = DecodeMemo()
        var results: [(String, String, Double)] = []
        func time(_ frame: String, _ operation: String, _ body: () throws -> Void) rethrows {
            var timings: [Double] = []
            for _ in 0..<repeats {
                var calls = 64
                while true {
                    let start = cpuNanoseconds()
                    for _ in 0..<calls { try body() }
                    let elapsed = Double(cpuNanoseconds() - start)
                    if elapsed > 20e6 { timings.append(elapsed / Double(calls)); break }
                    calls *= 2
                }
            }
            results.append((frame, operation, timings.sorted()[timings.count / 2]))
        }
        time("client-multicast", "encode") {
            writer.removeAll()
            client.encode(into: &writer)
        }
        try time("client-multicast", "decode") {
            _ = try clientBytes.withUnsafeBytes { raw in
                try ClientFrame.decode(body: UnsafeRawBufferPointer(rebasing: raw[4...]), limits: limits, memo: &clientMemo)
            }
        }
        time("daemon-message", "encode") {
            writer.removeAll()
            daemon.encode(into: &writer)
        }
        try time("daemon-message", "decode") {
            _ = try daemonBytes.withUnsafeBytes { raw in
                try DaemonFrame.decode(body: UnsafeRawBufferPointer(rebasing: raw[4...]), limits: limits, memo: &daemonMemo)
            }
        }
        return results
    }
}

/// A fixed workload of the kinds of work the message path does — small allocations, byte
/// copies, hashing, branches — whose time follows the machine's speed and load but none of this
/// project's code: the denominator of `--ratio`. About a millisecond of work.
@inline(never)
func referenceWork() -> Int {
    var table: [UInt64: [UInt8]] = [:]
    var checksum = 0
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    for index in 0..<2048 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: 64 + Int(state >> 54))
        bytes[bytes.count / 2] = UInt8(truncatingIfNeeded: state >> 8)
        table[state >> 44] = bytes
        checksum &+= bytes.count
    }
    for (key, bytes) in table { checksum &+= Int(truncatingIfNeeded: key) &* Int(bytes[bytes.count / 2]) }
    return checksum
}

struct MessagePath {
    static let group = "flood"
    let payloadBytes: Int
    /// The application's payload, the same every message (as `cohort flood` sends it).
    let payload: [UInt8]
    var daemons: [DaemonCore]
    /// Link frames in flight, in order: (to daemon index, frame bytes) — or a message a daemon
    /// sent itself (looped back without encoding, as the shell does).
    var network: [(to: Int, bytes: [UInt8]?, looped: PeerMessage?)] = []
    var networkHead = 0
    var timers: [(at: UInt64, daemon: Int, timer: DaemonCore.Timer)] = []
    var now: UInt64 = 1_000_000_000
    var paused: [Bool]
    var delivered = [0, 0, 0]
    var memos = [DecodeMemo(), DecodeMemo(), DecodeMemo()]
    var clientMemos = [DecodeMemo(), DecodeMemo(), DecodeMemo()]
    var scratch = WireWriter(capacity: 256 * 1024)
    var actions: [DaemonCore.Action] = []
    let limits = Limits()
    /// CPU spent per part.
    var coreTime = [UInt64](repeating: 0, count: 3)
    var listenerTime: UInt64 = 0
    var senderTime: UInt64 = 0
    var codecTime: UInt64 = 0
    /// Under an architecture that seals: the VS client of each daemon's session (index 0 the
    /// sender); `nil` under `plain`.
    var clients: [SealingClient]?

    /// A VS client with the architecture's hooks, as the client library runs them.
    struct SealingClient {
        var vs: VirtualSynchrony
        var hooks: any ClientSecurityHooks
    }

    init(payloadBytes: Int, architecture: Architecture = .plain) throws {
        self.payloadBytes = payloadBytes
        payload = [UInt8](repeating: 7, count: payloadBytes)
        let membership = DaemonConfiguration.Membership()
        let names = (1...3).map { "d\($0)" }
        let keys = Dictionary(uniqueKeysWithValues: names.map { ($0, SigningKey.generate()) })
        daemons = try names.map { name in
            var settings = DaemonCore.Settings(daemonName: name)
            settings.incarnation = 1
            settings.ring = try membership.ringSettings(for: DaemonID(name: name, incarnation: 1))
            let engine = try architecture.makeDaemonEngine(DaemonSecurityContext(
                daemonName: name, signingKey: keys[name], daemonPublicKeys: keys.mapValues(\.publicKeyBytes), hasPeers: true))
            return try DaemonCore(settings: settings, security: engine)
        }
        paused = [false, false, false]
        if architecture.sealsClientData {
            clients = try names.enumerated().map { index, name in
                let member = try MemberID(name: index == 0 ? "sender" : "l\(index + 1)", daemon: name)
                return SealingClient(vs: VirtualSynchrony(member: member), hooks: try architecture.makeClientHooks(member: member))
            }
        }
    }

    /// Forms the ring, connects the clients, sends `messages` and waits for both listeners.
    /// Sends `messages` and returns the time per delivered message; with
    /// `interleavingReference`, also times ``referenceWork()`` every few milliseconds of path
    /// work (not counted in the path's time).
    mutating func run(messages: Int, interleavingReference: Bool = false) throws -> Figures {
        for index in 0..<3 { handle(index, .start) }
        runUntil { $0.daemons.allSatisfy { $0.groups.isStable && $0.groups.ring.configuration?.members.count == 3 } }
        // Sessions: 1 on each daemon; the sender does not join, the listeners do.
        let sealing = clients != nil
        for index in 0..<3 {
            // A local client: an architecture that hands out keys refuses plain TCP.
            handle(index, .sessionOpened(SessionID(1), ClientOrigin(source: "bench", address: "bench", link: .unix)))
            handle(index, .frame(SessionID(1), .connect(ConnectRequest(privateName: index == 0 ? "sender" : "l\(index + 1)", wantsMembership: sealing))))
        }
        let group = try GroupName(Self.group)
        // Under an architecture that seals the sender is a member too (closed groups).
        for index in (sealing ? 0 : 1)..<3 { handle(index, .frame(SessionID(1), .join(group))) }
        if sealing {
            runUntil { path in path.clients!.allSatisfy { $0.vs.view(of: group)?.members.count == 3 } && path.clients![0].vs.canSend(in: group) }
        } else {
            runUntil { $0.daemons[0].table.members(of: group).count == 2 }
        }
        delivered = [0, 0, 0]
        coreTime = [0, 0, 0]
        listenerTime = 0
        senderTime = 0
        codecTime = 0

        // The sender's frames, as the client library encodes them.
        var writer = WireWriter(capacity: payloadBytes + 64)
        ClientFrame.multicast(OutgoingMessage(
            service: .agreed, messageType: 0, groups: [group], payload: payload)).encode(into: &writer)
        let frame = writer.bytes
        let start = cpuNanoseconds()
        var sent = 0
        let batch = 64
        let referenceEvery = max(64, (2 << 20) / max(payloadBytes, 1024) / 64 * 64)
        var referenceTime: UInt64 = 0
        var referenceCalls = 0
        while delivered[1] < messages || delivered[2] < messages {
            if interleavingReference && sent >= (referenceCalls + 1) * referenceEvery {
                let t0 = cpuNanoseconds()
                precondition(referenceWork() != 0)
                referenceTime += cpuNanoseconds() - t0
                referenceCalls += 1
            }
            if !paused[0] && sent < messages {
                // One read's worth of frames from the sender's socket.
                let now = Instant(nanoseconds: self.now)
                for _ in 0..<min(batch, messages - sent) {
                    if sealing {
                        try sendSealed(group: group, now: now)
                        sent += 1
                        continue
                    }
                    let t0 = cpuNanoseconds()
                    let decoded = try frame.withUnsafeBytes { raw in
                        try ClientFrame.decode(body: UnsafeRawBufferPointer(rebasing: raw[4...]), limits: limits, memo: &memos[0])
                    }
                    let t1 = cpuNanoseconds()
                    codecTime += t1 - t0
                    handle(0, .frame(SessionID(1), decoded), now: now)
                    sent += 1
                }
            }
            step()
        }
        let total = cpuNanoseconds() - start - referenceTime
        let deliveries = Double(2 * messages)
        return Figures(
            total: Double(total) / deliveries, senderClient: Double(senderTime) / deliveries, senderDaemon: Double(coreTime[0]) / deliveries,
            receivingDaemons: Double(coreTime[1] + coreTime[2]) / deliveries,
            listeners: Double(listenerTime) / deliveries, codec: Double(codecTime) / deliveries,
            reference: referenceCalls == 0 ? 0 : Double(referenceTime) / Double(referenceCalls))
    }

    /// The sender's next message under an architecture that seals: made anew (VS wrapping,
    /// which copies the application's payload, sealing, the client frame), decoded by its daemon and handled; then the flush
    /// layer learns it is written.
    mutating func sendSealed(group: GroupName, now: Instant) throws {
        let t0 = cpuNanoseconds()
        var message = try clients![0].vs.wrap(OutgoingMessage(service: .agreed, messageType: 0, groups: [group], payload: payload))
        try clients![0].hooks.seal(&message)
        scratch.removeAll()
        ClientFrame.multicast(message).encode(into: &scratch)
        let frame = scratch.bytes
        let t1 = cpuNanoseconds()
        let decoded = try frame.withUnsafeBytes { raw in
            try ClientFrame.decode(body: UnsafeRawBufferPointer(rebasing: raw[4...]), limits: limits, memo: &memos[0])
        }
        let t2 = cpuNanoseconds()
        senderTime += t1 - t0
        codecTime += t2 - t1
        handle(0, .frame(SessionID(1), decoded), now: now)
        let t3 = cpuNanoseconds()
        try clientActions(clients![0].vs.on(.written(group)), at: 0)
        senderTime += cpuNanoseconds() - t3
    }

    /// A frame a sealing client decoded: views installed and messages opened by the hooks, then
    /// the flush layer.
    mutating func clientReceives(_ frame: DaemonFrame, at index: Int) throws {
        switch frame {
        case .view(var view):
            try clients![index].hooks.install(&view)
            try clientActions(clients![index].vs.on(.view(view)), at: index)
        case .message(let message):
            // Sealed in a view this member was not in (a flush-ok before it joined): the client
            // library drops it, as the flush layer would.
            guard let opened = try open(message, at: index) else { return }
            try clientActions(clients![index].vs.on(.message(opened)), at: index)
        default:
            break
        }
    }

    /// `message` opened by the client of daemon `index`; `nil` if sealed under a key of a view
    /// that client is not in.
    mutating func open(_ message: DeliveredMessage, at index: Int) throws(ArchitectureError) -> DeliveredMessage? {
        var message = message
        do {
            try clients![index].hooks.open(&message)
        } catch {
            if error.kind == .notForThisMember { return nil }
            throw error
        }
        return message
    }

    /// Performs the flush layer's actions for the client of daemon `index` (automatic flush).
    mutating func clientActions(_ actions: [VirtualSynchrony.Action], at index: Int) throws {
        for action in actions {
            switch action {
            case .message(let message):
                if message.payload.count == payloadBytes { delivered[index] += 1 }
            case .view(let view, _):
                clients![index].hooks.viewInstalled(view)
            case .flushRequest(let group):
                try clientActions(clients![index].vs.on(.flush(group)), at: index)
            case .send(var flushOK):
                try clients![index].hooks.seal(&flushOK)
                handle(index, .frame(SessionID(1), .multicast(flushOK)))
                if let group = flushOK.groups.first { try clientActions(clients![index].vs.on(.written(group)), at: index) }
            case .hold, .abandoned, .discarded:
                break
            }
        }
    }

    /// Runs until `done` holds (or virtual time runs 60 s).
    mutating func runUntil(_ done: (Self) -> Bool) {
        let limit = now + 60_000_000_000
        while !done(self) && now < limit { step() }
        precondition(done(self), "the cluster did not get there in 60 s of virtual time")
    }

    /// Delivers one network message, or else fires the earliest timer.
    mutating func step() {
        if networkHead < network.count {
            let entry = network[networkHead]
            networkHead += 1
            if networkHead > 4096 {
                network.removeFirst(networkHead)
                networkHead = 0
            }
            let message: PeerMessage
            if let looped = entry.looped {
                message = looped
            } else {
                let t0 = cpuNanoseconds()
                guard case .message(let decoded)? = try? entry.bytes!.withUnsafeBytes({ raw in
                    try PeerLinkFrame.decode(body: UnsafeRawBufferPointer(rebasing: raw[4...]), limits: limits, daemonsMax: 128)
                }) else { fatalError("undecodable link frame") }
                codecTime += cpuNanoseconds() - t0
                message = decoded
            }
            handle(entry.to, .peer(message))
            return
        }
        guard let next = timers.indices.min(by: { timers[$0].at < timers[$1].at }) else { return }
        let timer = timers.remove(at: next)
        now = max(now, timer.at)
        handle(timer.daemon, .timerFired(timer.timer))
    }

    mutating func handle(_ index: Int, _ event: DaemonCore.Event) {
        handle(index, event, now: Instant(nanoseconds: now))
    }

    mutating func handle(_ index: Int, _ event: DaemonCore.Event, now: Instant) {
        var actions = self.actions
        self.actions = []
        let t0 = cpuNanoseconds()
        daemons[index].on(event, now: now, into: &actions)
        coreTime[index] += cpuNanoseconds() - t0
        for action in actions { perform(action, at: index) }
        actions.removeAll(keepingCapacity: true)
        self.actions = actions
    }

    mutating func perform(_ action: DaemonCore.Action, at index: Int) {
        switch action {
        case .broadcastToPeers(let message):
            let bytes = encode(message)
            for peer in 0..<3 where peer != index { network.append((peer, bytes, nil)) }
        case .sendToPeer(let message, let to):
            let peer = Int(to.name.dropFirst())! - 1
            if peer == index { network.append((peer, nil, message)) } else { network.append((peer, encode(message), nil)) }
        case .armTimer(let timer, let after):
            let at = Instant(nanoseconds: now).advanced(by: after).nanoseconds
            timers.removeAll { $0.daemon == index && $0.timer == timer }
            timers.append((at, index, timer))
        case .pauseIntake(let value):
            paused[index] = value
        case .deliver(let frame, let sessions):
            deliver(frame, count: sessions.count, at: index)
        case .send(let frame, _):
            deliver(frame, count: 1, at: index)
        case .close, .configurationInstalled, .dropPeers, .authenticated, .authenticationFailed, .accessDenied, .security:
            break
        }
    }

    mutating func encode(_ message: PeerMessage) -> [UInt8] {
        let t0 = cpuNanoseconds()
        scratch.removeAll()
        PeerLinkFrame.message(message).encode(into: &scratch)
        let bytes = scratch.bytes
        codecTime += cpuNanoseconds() - t0
        return bytes
    }

    /// A frame to a local client: encoded as the shell does, decoded as the client library does.
    mutating func deliver(_ frame: DaemonFrame, count: Int, at index: Int) {
        let t0 = cpuNanoseconds()
        scratch.removeAll()
        let payload = frame.encodeLeavingPayload(into: &scratch)
        var wire = scratch.bytes
        if let payload { wire.append(contentsOf: payload) }
        let t1 = cpuNanoseconds()
        codecTime += t1 - t0
        for _ in 0..<count {
            let decoded = try! wire.withUnsafeBytes { raw in
                try DaemonFrame.decode(body: UnsafeRawBufferPointer(rebasing: raw[4...]), limits: limits, memo: &clientMemos[index])
            }
            if clients != nil {
                do {
                    try clientReceives(decoded, at: index)
                } catch {
                    fatalError("the client of d\(index + 1) refused what its daemon delivered: \(error)")
                }
            } else if case .message(let message) = decoded, message.payload.count == payloadBytes {
                delivered[index] += 1
            }
        }
        listenerTime += cpuNanoseconds() - t1
    }
}
