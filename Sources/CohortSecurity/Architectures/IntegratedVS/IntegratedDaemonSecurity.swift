public import CohortCore
public import CohortCrypto
import Crypto

/// The daemon side of Integrated VS (docs/architectures.md): the Servers Agreement Engine and
/// the Group Keys Engine.
///
/// * **SAE.** At every regular configuration install the daemons of the configuration run TGDH
///   among themselves, on the ring, to agree on the daemons' key K_s. Each agreement message is
///   signed with the sender daemon's Ed25519 key and carries the run (the configuration) and a
///   per-sender sequence number ("daemon" members of ``RunAdmission``'s checks). A newer
///   configuration abandons the run in progress and starts over; TGDH keeps the public tree of
///   the daemons that move on together (the transitional configuration), so a merge or a
///   partition costs one tree update, not a fresh agreement.
/// * **GKE.** Every regular group view created in a configuration is held until that
///   configuration's K_s exists, then released with K_{g,i} = HMAC(K_s, g ‖ view_id) attached
///   (``GroupKeyDerivation``): one HMAC per view.
///
/// The engine refuses clients on links that are not confidential (a key may travel only over
/// TLS or the local socket) and messages that are not addressed to exactly one group.
///
/// `@unchecked Sendable`: the DH group and the HMAC contexts are classes around OpenSSL state.
/// An engine belongs to one daemon core and is only used inside that core's events (one event
/// loop); it is never shared.
public struct IntegratedDaemonSecurity<Random: RandomNumberGenerator>: DaemonSecurityEngine, @unchecked Sendable {
    /// The kind byte of a TGDH message among the daemons (room for refresh and other kinds).
    static var agreementKind: UInt8 { 0x01 }

    /// One agreed daemon key.
    struct DaemonKey {
        var configuration: ConfigurationID
        var derivation: GroupKeyDerivation
        var fingerprint: UInt64
    }

    public var architectureName: String { "integrated-vs" }

    private let daemonName: String
    private let signingKey: SigningKey
    private let publicKeys: [String: [UInt8]]
    private let options: ArchitectureOptions
    private let dhGroup: any DHGroup
    private var agreement: TreeGroupDiffieHellman<Random>
    /// The regular configuration in force, once one was installed.
    private var current: ConfigurationID?
    /// The last transitional configuration: the daemons that move on together to its ring.
    private var transitional: RingConfiguration?
    /// The run in progress: its configuration and when it started.
    private var pending: (configuration: ConfigurationID, started: Instant)?
    /// The keys of the last two regular configurations that finished an agreement, newest
    /// last (deliveries of the previous configuration may still be held when the next key
    /// arrives).
    private var keys: [DaemonKey] = []

    /// An engine for `daemonName`, signing with `signingKey`; `publicKeys` holds every daemon's
    /// Ed25519 public key by name. `random` draws TGDH's secrets: a cryptographic generator
    /// outside the simulator.
    public init(
        daemonName: String, signingKey: SigningKey, publicKeys: [String: [UInt8]], options: ArchitectureOptions, random: Random
    ) throws(ArchitectureSetupError) {
        try options.validate()
        let dhGroup: any DHGroup
        do {
            dhGroup = try DHGroups.make(options.daemonKeyAgreementGroup)
        } catch {
            throw ArchitectureSetupError("daemon key agreement group: \(error)")
        }
        let me: MemberID
        do {
            me = try Self.agreementMember(daemonName)
        } catch {
            throw ArchitectureSetupError("daemon name '\(daemonName)' cannot name a key agreement member: \(error)")
        }
        var directory = MemberKeyDirectory()
        for (name, key) in publicKeys {
            guard let member = try? Self.agreementMember(name) else { continue }
            directory.set(key, for: member)
        }
        directory.set(signingKey.publicKeyBytes, for: me)
        self.daemonName = daemonName
        self.signingKey = signingKey
        self.publicKeys = publicKeys
        self.options = options
        self.dhGroup = dhGroup
        self.agreement = TreeGroupDiffieHellman(
            identity: KeyAgreementIdentity(member: me, signingKey: signingKey, directory: directory), group: dhGroup, random: random)
    }

    /// The key agreement member that stands for a daemon.
    static func agreementMember(_ daemon: String) throws(WireError) -> MemberID {
        try MemberID(name: "daemon", daemon: daemon)
    }

    // MARK: - The seam

    public func refusal(of origin: ClientOrigin) -> String? {
        switch origin.link {
        case .tls, .unix:
            return nil
        case .tcp(let loopback):
            if loopback, options.allowsLoopbackTCP { return nil }
            return "integrated-vs hands out group keys: connect over TLS or the local Unix socket, not plain TCP"
                + (loopback ? " (loopback TCP is allowed only with the allow-loopback-tcp setting)" : "")
        }
    }

    public mutating func on(_ event: DaemonSecurityEvent, now: Instant) -> [DaemonSecurityAction] {
        switch event {
        case .configurationInstalled(let configuration):
            return install(configuration, now: now)
        case .daemonMessage(let bytes, let from):
            return receive(bytes, from: from, now: now)
        case .timerFired:
            return []
        }
    }

    public func isReady(_ epoch: ConfigurationID) -> Bool {
        if keys.contains(where: { $0.configuration == epoch }) { return true }
        // Deliveries of an older configuration whose agreement was cut short go without keys
        // (newer views follow at once); before the first configuration nothing goes.
        guard let current else { return false }
        return epoch != current
    }

    public mutating func secure(_ view: inout GroupView, createdIn epoch: ConfigurationID) {
        guard !view.transitional, !view.members.isEmpty, let key = keys.last(where: { $0.configuration == epoch }) else { return }
        let secret = key.derivation.groupKey(group: view.group, viewID: view.viewID)
        view.key = ViewKey(keyID: Self.keyID(of: secret), secret: secret)
    }

    public mutating func admit(_ message: inout OutgoingMessage, from sender: MemberID) throws(ArchitectureError) {
        guard message.groups.count == 1, let group = message.groups.first, !group.isPrivate else {
            throw ArchitectureError("integrated-vs seals a message under one group view's key: send it to exactly one group")
        }
        guard message.payload.count >= GroupCipher.headerBytes else {
            throw ArchitectureError("integrated-vs carries only sealed messages; this one is too short to be sealed")
        }
    }

    public var keyEpochDescription: String? {
        if let key = keys.last { return "\(key.configuration) \(Self.hex(key.fingerprint))" + (pending == nil ? "" : " (agreeing)") }
        return pending.map { "none (agreeing on \($0.configuration))" }
    }

    // MARK: - The Servers Agreement Engine

    private mutating func install(_ configuration: RingConfiguration, now: Instant) -> [DaemonSecurityAction] {
        if configuration.isTransitional {
            transitional = configuration
            return []
        }
        var actions: [DaemonSecurityAction] = []
        let id = configuration.ring.configurationID
        if let abandoned = pending {
            actions.append(.report(.agreementAbandoned(configuration: abandoned.configuration)))
        }
        current = id
        pending = (id, now)
        let members = configuration.members.compactMap { try? Self.agreementMember($0.name) }
        let continuingNames = transitional.flatMap { $0.ring == configuration.ring ? $0.members.map(\.name) : nil } ?? [daemonName]
        let continuing = Set(continuingNames.compactMap { try? Self.agreementMember($0) })
        transitional = nil
        actions.append(.report(.agreementStarted(configuration: id, daemons: members.count)))
        do {
            let steps = try agreement.start(run: GroupViewID(configuration: id, sequence: 0), members: members, continuing: continuing)
            perform(steps, now: now, into: &actions)
        } catch {
            // Only a broken local crypto backend gets here; the views of this configuration go
            // without keys rather than wait forever.
            actions.append(.report(.messageRefused(reason: "daemon key agreement could not start: \(error)")))
            pending = nil
        }
        // Held deliveries of the previous configuration may go now (without keys, if its
        // agreement was cut short).
        actions.append(.keysChanged)
        return actions
    }

    private mutating func receive(_ bytes: [UInt8], from: DaemonID, now: Instant) -> [DaemonSecurityAction] {
        guard bytes.first == Self.agreementKind else {
            return [.report(.messageRefused(reason: "unknown daemon security message kind from \(from)"))]
        }
        var actions: [DaemonSecurityAction] = []
        do {
            let steps = try agreement.receive(Array(bytes.dropFirst()))
            perform(steps, now: now, into: &actions)
        } catch .wrongRun(let expected, let got) where expected.map({ got < $0 }) ?? true {
            // A straggler of an abandoned run, delivered after the next one started: expected.
        } catch {
            actions.append(.report(.messageRefused(reason: "daemon key agreement message from \(from): \(error)")))
        }
        return actions
    }

    private mutating func perform(_ steps: [KeyAgreementAction], now: Instant, into actions: inout [DaemonSecurityAction]) {
        for step in steps {
            switch step {
            case .broadcast(let bytes), .send(let bytes, _):
                // TGDH only broadcasts; the ring has no unicast, and every message names its run.
                actions.append(.broadcast([Self.agreementKind] + bytes))
            case .established(let run, let secret):
                guard let started = pending, started.configuration == run.configuration else { continue }
                do {
                    try establish(secret: secret, for: run.configuration)
                } catch {
                    actions.append(.report(.messageRefused(reason: "daemon key derivation failed: \(error)")))
                    continue
                }
                pending = nil
                let fingerprint = keys.last?.fingerprint ?? 0
                actions.append(.report(.agreementFinished(configuration: run.configuration, fingerprint: fingerprint, duration: .nanoseconds(Int64(now.nanoseconds &- started.started.nanoseconds)))))
                actions.append(.keysChanged)
            }
        }
    }

    /// K_s from the agreed secret, bound to its configuration.
    private mutating func establish(secret: [UInt8], for configuration: ConfigurationID) throws(CryptoError) {
        var daemonKey = try HKDF.sha256(inputKeyMaterial: secret, info: Array("cohort/daemon-key/\(configuration)".utf8), outputBytes: 32)
        defer { Self.erase(&daemonKey) }
        let fingerprintBytes = try HKDF.sha256(inputKeyMaterial: daemonKey, info: Array("cohort/daemon-key-fingerprint".utf8), outputBytes: 8)
        let derivation = try GroupKeyDerivation(serverKey: daemonKey)
        keys.append(DaemonKey(
            configuration: configuration, derivation: derivation,
            fingerprint: fingerprintBytes.reduce(0) { $0 << 8 | UInt64($1) }))
        // The replaced key's HMAC context goes with it (OpenSSL clears key material it frees).
        if keys.count > 2 { keys.removeFirst(keys.count - 2) }
    }

    // MARK: - Helpers

    /// The id clients see for a group key: 32 bits of its SHA-256 (a receiver holding another
    /// key for the view sees an unknown id, not a forgery).
    static func keyID(of secret: [UInt8]) -> UInt32 {
        SHA256.hash(data: secret).prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// Overwrites key bytes this engine owns before they are dropped.
    static func erase(_ bytes: inout [UInt8]) {
        for index in bytes.indices { bytes[index] = 0 }
    }
}

extension IntegratedDaemonSecurity where Random == SystemRandomNumberGenerator {
    /// The engine of a daemon process, from its context: the daemon's own signing key and its
    /// peers' public keys; a daemon alone without configured keys signs with a fresh key.
    public init(context: DaemonSecurityContext) throws(ArchitectureSetupError) {
        let signingKey: SigningKey
        if let key = context.signingKey {
            signingKey = key
        } else if !context.hasPeers {
            signingKey = .generate()
        } else {
            throw ArchitectureSetupError(
                "integrated-vs signs the daemons' key agreement: give every daemon its Ed25519 key (private-key-file, daemon-public-keys; see docs/daemon-authentication.md)")
        }
        try self.init(
            daemonName: context.daemonName, signingKey: signingKey, publicKeys: context.daemonPublicKeys, options: context.options,
            random: SystemRandomNumberGenerator())
    }
}
