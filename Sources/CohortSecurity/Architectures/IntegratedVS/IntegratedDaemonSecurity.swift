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
/// * **Refresh by policy.** K_s is replaced by time-out (``ArchitectureOptions/daemonKeyMaxAge``)
///   and data-out (``ArchitectureOptions/daemonKeyMaxBytes``) without a configuration change.
///   Every daemon that has a key orders a signed *ready* for it; the key is *settled* where the
///   last daemon's ready is ordered, a place of the total order common to every daemon (each
///   daemon computes TGDH's key at a different place). A daemon whose limit is reached orders
///   a signed *request* once the key is settled; where the first is ordered, every daemon
///   starts TGDH's refresh of the unchanged tree (its rightmost member renews its share: one
///   broadcast). Where the last ready of the refreshed key is ordered it comes into force at
///   every daemon alike, and that ready's sender orders a renewal of every group's view
///   (``DaemonSecurityAction/renewGroupViews``): views of cause `rekey`, same members, keyed
///   with the new K_s. A configuration change cuts a refresh short (its own agreement makes a
///   fresh key anyway).
///
/// The engine refuses clients on links that are not confidential (a key may travel only over
/// TLS or the local socket) and messages that are not addressed to exactly one group.
///
/// `@unchecked Sendable`: the DH group and the HMAC contexts are classes around OpenSSL state.
/// An engine belongs to one daemon core and is only used inside that core's events (one event
/// loop); it is never shared.
public struct IntegratedDaemonSecurity<Random: RandomNumberGenerator>: DaemonSecurityEngine, @unchecked Sendable {
    /// The kind byte of a TGDH message among the daemons.
    static var agreementKind: UInt8 { 0x01 }
    /// The kind byte of a refresh request: the key in force is due (time-out or data-out).
    static var refreshRequestKind: UInt8 { 0x02 }
    /// The kind byte of a ready: the sender holds the key of the agreement it names.
    static var refreshReadyKind: UInt8 { 0x03 }

    /// One agreed daemon key.
    struct DaemonKey {
        /// The agreement that made it: its configuration, and 0 or the number of the refresh.
        var run: GroupViewID
        var derivation: GroupKeyDerivation
        var fingerprint: UInt64
        var configuration: ConfigurationID { run.configuration }
    }

    /// A refresh by policy in progress.
    struct Refresh {
        /// Its agreement: the configuration, and the key in force's number plus one.
        var run: GroupViewID
        /// When its request was ordered.
        var started: Instant
        /// The refreshed key once agreed here: not used until every daemon has it.
        var staged: DaemonKey?
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
    /// The last two keys that came into force, newest last (deliveries of the previous
    /// configuration may still be held when the next key arrives).
    private var keys: [DaemonKey] = []
    /// The daemons of the regular configuration in force, in its order.
    private var members: [MemberID] = []
    /// The agreement whose readies are counted (the configuration's own from its install, a
    /// refresh from its request) and the daemons whose ready was ordered.
    private var readies: (run: GroupViewID, daemons: Set<String>)?
    /// The agreement whose key every daemon of the configuration holds: its last ready was
    /// ordered. Only a settled key is refreshed.
    private var settled: GroupViewID?
    /// The refresh in progress.
    private var refresh: Refresh?
    /// Whether the key in force reached its time-out or data-out here.
    private var due = false
    /// Whether this daemon ordered a request for the key in force already.
    private var asked = false
    /// The token of the time-out timer of the key in force (older timers are stale).
    private var refreshTimer: UInt64 = 0
    /// Bytes this daemon's clients submitted under the key in force.
    private var sealedBytes: UInt64 = 0
    /// This daemon's share of the data-out: the limit over the configuration's daemons (set at
    /// each install, not divided per message); `nil` without a data-out.
    private var dataShare: UInt64?

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
        case .timerFired(let token):
            guard token == refreshTimer else { return [] }
            due = true
            return requestRefresh()
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

    public mutating func admit(_ message: inout OutgoingMessage, from sender: MemberID, now: Instant) throws(ArchitectureError) -> [DaemonSecurityAction] {
        guard message.groups.count == 1, let group = message.groups.first, !group.isPrivate else {
            throw ArchitectureError("integrated-vs seals a message under one group view's key: send it to exactly one group")
        }
        guard message.payload.count >= GroupCipher.headerBytes else {
            throw ArchitectureError("integrated-vs carries only sealed messages; this one is too short to be sealed")
        }
        guard let dataShare else { return [] }
        sealedBytes &+= UInt64(message.payload.count)
        guard sealedBytes >= dataShare, !due else { return [] }
        due = true
        return requestRefresh()
    }

    public var isAgreeing: Bool { pending != nil || refresh != nil || readies != nil }

    public var keyEpochDescription: String? {
        if let key = keys.last {
            let refreshed = key.run.sequence == 0 ? "" : " (refresh \(key.run.sequence))"
            let agreeing = pending != nil ? " (agreeing)" : refresh != nil ? " (refreshing)" : ""
            return "\(key.configuration) \(Self.hex(key.fingerprint))\(refreshed)\(agreeing)"
        }
        return pending.map { "none (agreeing on \($0.configuration))" }
    }

    // MARK: - The Servers Agreement Engine

    private mutating func install(_ configuration: RingConfiguration, now: Instant) -> [DaemonSecurityAction] {
        if configuration.isTransitional {
            // A refresh goes on: its last readies may be ordered in the transitional
            // configuration, where the daemons that move on together take them alike.
            transitional = configuration
            return []
        }
        var actions: [DaemonSecurityAction] = []
        let id = configuration.ring.configurationID
        if let abandoned = pending {
            actions.append(.report(.agreementAbandoned(run: GroupViewID(configuration: abandoned.configuration, sequence: 0))))
        }
        if let abandoned = refresh {
            actions.append(.report(.agreementAbandoned(run: abandoned.run)))
            refresh = nil
        }
        current = id
        pending = (id, now)
        readies = (GroupViewID(configuration: id, sequence: 0), [])
        settled = nil
        due = false
        asked = false
        refreshTimer &+= 1
        let members = configuration.members.compactMap { try? Self.agreementMember($0.name) }
        self.members = members
        dataShare = options.daemonKeyMaxBytes.map { $0 / UInt64(max(1, members.count)) }
        let continuingNames = transitional.flatMap { $0.ring == configuration.ring ? $0.members.map(\.name) : nil } ?? [daemonName]
        let continuing = Set(continuingNames.compactMap { try? Self.agreementMember($0) })
        transitional = nil
        actions.append(.report(.agreementStarted(run: GroupViewID(configuration: id, sequence: 0), daemons: members.count)))
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
        switch bytes.first {
        case Self.agreementKind: break
        case Self.refreshRequestKind, Self.refreshReadyKind: return receiveRefresh(bytes, from: from, now: now)
        default: return [.report(.messageRefused(reason: "unknown daemon security message kind from \(from)"))]
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
                if run.sequence == 0, let started = pending, started.configuration == run.configuration {
                    let key: DaemonKey
                    do {
                        key = try Self.daemonKey(secret: secret, for: run)
                    } catch {
                        actions.append(.report(.messageRefused(reason: "daemon key derivation failed: \(error)")))
                        continue
                    }
                    pending = nil
                    putInForce(key, now: now, into: &actions)
                    actions.append(.report(.agreementFinished(run: run, fingerprint: key.fingerprint, duration: now - started.started)))
                    actions.append(.keysChanged)
                    do {
                        actions.append(.broadcast(try signedRefreshMessage(Self.refreshReadyKind, run: run)))
                    } catch {
                        actions.append(.report(.messageRefused(reason: "daemon key ready could not be signed: \(error)")))
                    }
                } else if refresh?.run == run, refresh?.staged == nil {
                    // Agreed here; in force once every daemon says it has it, where its last
                    // ready is ordered.
                    do {
                        refresh!.staged = try Self.daemonKey(secret: secret, for: run)
                        actions.append(.broadcast(try signedRefreshMessage(Self.refreshReadyKind, run: run)))
                    } catch {
                        actions.append(.report(.messageRefused(reason: "daemon key refresh failed here: \(error)")))
                    }
                }
            }
        }
    }

    /// K_s from the agreed secret, bound to its agreement (configuration and refresh).
    private static func daemonKey(secret: [UInt8], for run: GroupViewID) throws(CryptoError) -> DaemonKey {
        // The configuration's first key keeps the label it always had; a refresh names its number.
        let label = run.sequence == 0 ? "cohort/daemon-key/\(run.configuration)" : "cohort/daemon-key/\(run.configuration)/refresh/\(run.sequence)"
        var daemonKey = try HKDF.sha256(inputKeyMaterial: secret, info: Array(label.utf8), outputBytes: 32)
        defer { erase(&daemonKey) }
        let fingerprintBytes = try HKDF.sha256(inputKeyMaterial: daemonKey, info: Array("cohort/daemon-key-fingerprint".utf8), outputBytes: 8)
        return DaemonKey(
            run: run, derivation: try GroupKeyDerivation(serverKey: daemonKey),
            fingerprint: fingerprintBytes.reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// Makes `key` the one new views are keyed with, and starts its time-out and data-out.
    private mutating func putInForce(_ key: DaemonKey, now: Instant, into actions: inout [DaemonSecurityAction]) {
        keys.append(key)
        // The replaced key's HMAC context goes with it (OpenSSL clears key material it frees).
        if keys.count > 2 { keys.removeFirst(keys.count - 2) }
        due = false
        asked = false
        sealedBytes = 0
        refreshTimer &+= 1
        if let age = options.daemonKeyMaxAge { actions.append(.armTimer(refreshTimer, after: age)) }
    }

    // MARK: - Refresh by policy

    /// Orders a request for a refresh, once per key, if the key in force is due and settled and
    /// no refresh runs.
    private mutating func requestRefresh() -> [DaemonSecurityAction] {
        guard due, !asked, refresh == nil, let key = keys.last, key.run == settled else { return [] }
        do {
            let request = try signedRefreshMessage(Self.refreshRequestKind, run: key.run)
            asked = true
            return [.broadcast(request)]
        } catch {
            return [.report(.messageRefused(reason: "daemon key refresh request could not be signed: \(error)"))]
        }
    }

    /// A refresh request or ready, ordered.
    private mutating func receiveRefresh(_ bytes: [UInt8], from: DaemonID, now: Instant) -> [DaemonSecurityAction] {
        let run: GroupViewID
        do {
            run = try verifiedRefreshMessage(bytes, from: from)
        } catch {
            return [.report(.messageRefused(reason: "daemon key refresh message from \(from): \(error)"))]
        }
        guard let sender = try? Self.agreementMember(from.name), members.contains(sender) else {
            return [.report(.messageRefused(reason: "daemon key refresh message from \(from), not of the configuration"))]
        }
        var actions: [DaemonSecurityAction] = []
        if bytes[0] == Self.refreshRequestKind {
            // The first request for the settled key starts the refresh; later ones, and requests
            // for a key already replaced, are moot. Only what every daemon of the configuration
            // holds alike at this place of the order decides (not its own key, which TGDH gave
            // it at a place of its own; not whether a transitional configuration came: daemons
            // that move on together may split the old ring's last items differently between it
            // and the regular one).
            guard refresh == nil, settled == run else { return [] }
            let next = GroupViewID(configuration: run.configuration, sequence: run.sequence + 1)
            refresh = Refresh(run: next, started: now)
            readies = (next, [])
            actions.append(.report(.agreementStarted(run: next, daemons: members.count)))
            do {
                // Everyone continues: TGDH refreshes the unchanged tree.
                let steps = try agreement.start(run: next, members: members, continuing: Set(members))
                perform(steps, now: now, into: &actions)
            } catch {
                actions.append(.report(.messageRefused(reason: "daemon key refresh could not start: \(error)")))
            }
            return actions
        }
        guard var counted = readies, counted.run == run else { return [] }
        counted.daemons.insert(from.name)
        readies = counted
        guard counted.daemons.count == members.count else { return [] }
        // The last ready: the same place of the total order at every daemon.
        readies = nil
        settled = run
        if let open = refresh, open.run == run {
            // (Every daemon's ready, this one's too, so the key was agreed here.)
            guard let key = open.staged else { return [] }
            refresh = nil
            putInForce(key, now: now, into: &actions)
            actions.append(.report(.agreementFinished(run: run, fingerprint: key.fingerprint, duration: now - open.started)))
            if from.name == daemonName { actions.append(.renewGroupViews) }
        }
        // A limit reached before the key settled asks now.
        actions += requestRefresh()
        return actions
    }

    /// kind ‖ run ‖ Ed25519 signature over a label, the kind and the run.
    private func signedRefreshMessage(_ kind: UInt8, run: GroupViewID) throws(KeyAgreementError) -> [UInt8] {
        let body = Self.refreshBody(kind, run: run)
        return body + (try signingKey.signature(for: Self.refreshSignatureLabel + body))
    }

    /// The run a refresh message names, once its signature is its sender's.
    private func verifiedRefreshMessage(_ bytes: [UInt8], from: DaemonID) throws(WireError) -> GroupViewID {
        let signatureBytes = 64
        guard bytes.count > 1 + signatureBytes else { throw .truncated }
        let body = Array(bytes.dropLast(signatureBytes))
        let run = try body.dropFirst().withUnsafeBytes { raw in
            Result { () throws(WireError) in
                var reader = WireReader(raw)
                let run = try reader.readViewID()
                try reader.expectEnd()
                return run
            }
        }.get()
        let publicKey = from.name == daemonName ? signingKey.publicKeyBytes : publicKeys[from.name]
        guard let publicKey else { throw .invalidValue("no public key for daemon \(from.name)") }
        guard SigningKey.isValid(signature: Array(bytes.suffix(signatureBytes)), for: Self.refreshSignatureLabel + body, publicKey: publicKey) else {
            throw .invalidValue("bad signature")
        }
        return run
    }

    /// What a refresh message's signature covers before its body (domain separation from
    /// every other signature a daemon key makes).
    private static var refreshSignatureLabel: [UInt8] { Array("cohort/daemon-key-refresh".utf8) }

    private static func refreshBody(_ kind: UInt8, run: GroupViewID) -> [UInt8] {
        var writer = WireWriter(capacity: 32)
        writer.write(kind)
        writer.write(run)
        return writer.bytes
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
