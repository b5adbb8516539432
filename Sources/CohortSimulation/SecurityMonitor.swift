public import CohortCore
public import CohortSecurity
import CohortCrypto

/// A security architecture for the simulator to run: the daemon engine and the client hooks of
/// every daemon and client it starts. ``registered(_:daemons:seed:options:)`` makes them from
/// the registry, the code the daemons and the client library run; tests may wrap them (a
/// broken engine, to prove the checker catches it).
public struct SimulatedArchitecture: Sendable {
    /// A fresh engine for a daemon (each incarnation gets its own).
    public var makeEngine: @Sendable (DaemonID) -> any DaemonSecurityEngine
    /// Fresh hooks for a client session.
    public var makeClientHooks: @Sendable (MemberID) -> any ClientSecurityHooks

    /// An architecture from its factories.
    public init(
        makeEngine: @escaping @Sendable (DaemonID) -> any DaemonSecurityEngine,
        makeClientHooks: @escaping @Sendable (MemberID) -> any ClientSecurityHooks
    ) {
        self.makeEngine = makeEngine
        self.makeClientHooks = makeClientHooks
    }

    /// The registered `architecture` for daemons `d1`...`d<daemons>` (the simulator's names):
    /// each daemon signs with an Ed25519 key drawn from `seed` and its name, every daemon knows
    /// every other's public key, and each incarnation's engine draws its secrets from `seed`, so
    /// a run replays exactly. Without `options`, those of ``options(seed:)``.
    public static func registered(
        _ architecture: Architecture, daemons: Int, seed: UInt64, options: ArchitectureOptions? = nil
    ) throws(ArchitectureSetupError) -> SimulatedArchitecture {
        let options = options ?? Self.options(seed: seed)
        var keys: [String: SigningKey] = [:]
        for index in 1...max(1, daemons) {
            var random = SeededRandom(seed: seed ^ (0x4441_454D_4F4E_0000 &+ UInt64(index)))
            let bytes = (0..<4).flatMap { _ in withUnsafeBytes(of: random.next(), Array.init) }
            do {
                keys["d\(index)"] = try SigningKey(privateKeyBytes: bytes)
            } catch {
                throw ArchitectureSetupError("simulated daemon key: \(error)")
            }
        }
        let publicKeys = keys.mapValues(\.publicKeyBytes)
        // Fail here, not in the run, if the architecture cannot be made.
        _ = try architecture.makeDaemonEngine(DaemonSecurityContext(
            daemonName: "d1", signingKey: keys["d1"], daemonPublicKeys: publicKeys, hasPeers: daemons > 1,
            options: options, simulationSeed: seed))
        _ = try architecture.makeClientHooks(member: try! MemberID(name: "probe", daemon: "d1"), options: options)
        let signingKeys = keys
        return SimulatedArchitecture(
            makeEngine: { daemon in
                let context = DaemonSecurityContext(
                    daemonName: daemon.name, signingKey: signingKeys[daemon.name], daemonPublicKeys: publicKeys,
                    hasPeers: daemons > 1, options: options,
                    simulationSeed: seed ^ (UInt64(daemon.name.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }) << 20) ^ daemon.incarnation)
                // Checked above for d1: the others differ only in name and key.
                return try! architecture.makeDaemonEngine(context)
            },
            makeClientHooks: { member in try! architecture.makeClientHooks(member: member, options: options) })
    }
}

extension SimulatedArchitecture {
    /// The architecture options of a run of `seed`: the defaults, except for the daemons' key
    /// refresh policy, so that refreshes happen within a run's few simulated seconds: a third
    /// of the seeds refresh by time-out (every 150, 300 or 600 ms), a third by data-out (after
    /// 4, 16 or 64 KiB of sealed data), a third never within a run.
    public static func options(seed: UInt64) -> ArchitectureOptions {
        var random = SeededRandom(seed: seed ^ 0x5245_4652_4553_4800)
        var options = ArchitectureOptions()
        switch random.next() % 3 {
        case 0:
            options.daemonKeyMaxAge = .milliseconds([150, 300, 600].randomElement(using: &random)!)
        case 1:
            options.daemonKeyMaxBytes = [4, 16, 64].randomElement(using: &random)! * 1024
        default:
            break
        }
        return options
    }
}

/// The security checker of the simulator (docs/simulation.md, "Security"): fed on every daemon
/// key, every view a daemon delivers and every view and message a client's architecture
/// takes, it finds
/// * two daemons with different daemon keys for one agreement (a configuration's, or one of
///   its refreshes), or one key for two agreements;
/// * two recipients of one group view with different keys, a key for a member not in the view,
///   one key for two views, a VS view installed without a key;
/// * a regular view delivered with no key by a daemon whose configuration is the view's
///   own (delivered before its key agreement finished);
/// * a delivered message that does not open (refused, not just not for this member).
struct SecurityMonitor {
    private(set) var violations: [EVSViolation] = []
    /// Daemon key fingerprints by agreement (configuration and refresh), and agreements by
    /// fingerprint.
    private var fingerprints: [GroupViewID: UInt64] = [:]
    private var runs: [UInt64: GroupViewID] = [:]
    /// View keys by group view, and group views by key.
    private var viewKeys: [String: ViewKey] = [:]
    private var keyViews: [[UInt8]: String] = [:]
    /// Each view a member's architecture took, by `member|group@view`: its key id (nil: the
    /// view came without one) and the order it was taken in.
    private var taken: [String: (keyID: UInt32?, order: Int)] = [:]
    /// The position of the last view each member's flush layer installed, by `member|group`
    /// (`Int.max` once it left): a flush-ok for a view taken before that is moot.
    private var installedOrder: [String: Int] = [:]
    private var takes = 0
    /// Messages clients opened.
    private(set) var messagesOpened = 0

    private mutating func fail(_ property: String, _ detail: String) {
        if violations.count < 50 { violations.append(EVSViolation(property: property, detail: detail)) }
    }

    /// A daemon agreed on the key of `run` (a configuration, and which refresh in it).
    mutating func agreed(_ fingerprint: UInt64, in run: GroupViewID, at daemon: String) {
        if let known = fingerprints[run], known != fingerprint {
            fail("security-daemon-key", "\(daemon) agreed on key \(fingerprint) in \(run); another daemon of it on \(known)")
        }
        if let other = runs[fingerprint], other != run {
            fail("security-daemon-key", "\(daemon) agreed on the key of \(other) again in \(run)")
        }
        fingerprints[run] = fingerprint
        runs[fingerprint] = run
    }

    /// A daemon refused a client's submission that its client hooks had sealed.
    mutating func refusedSubmission(_ reason: String, from member: MemberID) {
        fail("security-admit", "the daemon refused \(member)'s sealed message: \(reason)")
    }

    /// A daemon whose current regular configuration is `current` delivers `view` to `recipients`.
    mutating func delivered(_ view: GroupView, to recipients: [MemberID], at daemon: String, current: ConfigurationID?) {
        guard !view.transitional, !view.members.isEmpty else {
            if view.key != nil { fail("security-view-key", "\(daemon) keyed the transitional or empty view \(view.group) \(view.viewID)") }
            return
        }
        let name = "\(view.group)@\(view.viewID)"
        guard let key = view.key else {
            if view.viewID.configuration == current, !view.viewID.isOfTransitionalConfiguration {
                fail("security-held", "\(daemon) delivered \(name) without a key before its configuration's key agreement finished")
            }
            return
        }
        for member in recipients where !view.members.contains(member) {
            fail("security-key-leak", "\(daemon) sent the key of \(name) to \(member), not a member")
        }
        if let known = viewKeys[name], known != key {
            fail("security-view-key", "\(daemon) keyed \(name) with \(key); another daemon with \(known)")
        }
        if let other = keyViews[key.secret], other != name {
            fail("security-view-key", "\(name) has the key of \(other)")
        }
        viewKeys[name] = key
        keyViews[key.secret] = name
    }

    /// A client's architecture took `view` (before stripping the secret).
    mutating func took(_ view: GroupView, at member: MemberID) {
        guard !view.transitional else { return }
        takes += 1
        taken["\(member)|\(view.group)@\(view.viewID)"] = (view.key?.keyID, takes)
    }

    /// A client's flush layer installed `view`: it must have passed through the architecture,
    /// and with a key unless its daemon delivered it without one (``delivered(_:to:at:current:)``
    /// judges that).
    mutating func installed(_ view: GroupView, at member: MemberID) {
        let name = "\(view.group)@\(view.viewID)"
        guard let entry = taken["\(member)|\(name)"] else {
            fail("security-vs-view", "\(member) installed VS view \(name), which its architecture never took")
            return
        }
        installedOrder["\(member)|\(view.group)"] = entry.order
    }

    /// Whether `member` took `group`'s view `viewID` without a key (sends in it cannot be sealed).
    func keyless(_ group: GroupName, view viewID: GroupViewID, at member: MemberID) -> Bool {
        guard let entry = taken["\(member)|\(group)@\(viewID)"] else { return false }
        return entry.keyID == nil
    }

    /// `member`'s flush layer left `group`.
    mutating func left(_ group: GroupName, at member: MemberID) {
        installedOrder["\(member)|\(group)"] = Int.max
    }

    /// Whether `member`'s flush layer has moved past `group`'s view `viewID` (installed a view
    /// taken after it, or left the group): a flush-ok for it no longer matters, and its key may
    /// be gone.
    func superseded(_ group: GroupName, view viewID: GroupViewID, at member: MemberID) -> Bool {
        guard let entry = taken["\(member)|\(group)@\(viewID)"] else { return false }
        return (installedOrder["\(member)|\(group)"] ?? 0) > entry.order
    }

    /// A client's architecture refused a view its daemon delivered.
    mutating func refusedView(_ view: GroupView, at member: MemberID, error: ArchitectureError) {
        fail("security-view-refused", "\(member) refused \(view.group) view \(view.viewID): \(error.reason)")
    }

    /// A message delivered to `member` was opened, not for it (not a violation), or refused.
    mutating func opened(_ message: DeliveredMessage, at member: MemberID, error: ArchitectureError?) {
        switch error?.kind {
        case nil: messagesOpened += 1
        case .notForThisMember: break
        case .refused: fail("security-open", "a message from \(message.sender) in \(message.groups) does not open at \(member): \(error!.reason)")
        }
    }

    /// Bytes a daemon put on a link (to a daemon, or a client's socket) under an architecture
    /// that seals: they must not hold a client's plaintext. The simulated clients pad their
    /// payloads with `0x5A`: a run of ``plaintextMarkerRun`` of them is plaintext (a sealed
    /// payload shows one with probability about 2⁻¹²⁸).
    mutating func relayed(_ bytes: ArraySlice<UInt8>, by daemon: String, on link: String) {
        var run = 0
        for byte in bytes {
            run = byte == 0x5A ? run + 1 : 0
            if run == Self.plaintextMarkerRun {
                fail("security-plaintext", "\(daemon) put a client's plaintext on \(link)")
                return
            }
        }
    }

    /// Padding bytes in a row that mark a client's plaintext.
    static let plaintextMarkerRun = 16

    /// Checks every client item of a ring message (``relayed(_:by:on:)``).
    mutating func relayed(_ message: PeerMessage, by daemon: String, on link: String) {
        guard case .packet(var packet) = message else { return }
        while case .recovered(let inner) = packet.content { packet = inner }
        guard case .items(let items) = packet.content else { return }
        for item in items { relayed(item.payload, by: daemon, on: link) }
    }

    /// A client could not seal what its flush layer allowed it to send (no key for the view).
    mutating func unsealable(_ reason: String, at member: MemberID, keyless: Bool) {
        if !keyless { fail("security-seal", "\(member) cannot seal: \(reason)") }
    }
}
