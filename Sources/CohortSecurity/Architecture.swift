public import CohortCore
public import CohortCrypto

/// A named security architecture: the composition of strategies (key source, encryption
/// placement, cipher suite, key agreement) that a daemon and its clients run, selected with
/// `--architecture` on both binaries (DESIGN.md §2, docs/architectures.md).
///
/// Each architecture lives in its own folder under `Architectures/` and is registered here with
/// one line; nothing outside the registry asks which architecture runs.
public struct Architecture: Sendable, CustomStringConvertible {
    /// The registered name, as given to `--architecture`.
    public let name: String
    /// One line on what it protects and how.
    public let summary: String
    /// Who makes the client groups' keys (the source's Table 1).
    public let keySource: String
    /// Where data is encrypted and by whom (the source's Table 1).
    public let encryptionPlacement: String
    /// The group semantics clients get.
    public let semantics: [GroupSemantics]
    /// Whether clients get group keys and seal their data: the daemons then serve them only over
    /// confidential links (TLS, the Unix socket), and every message is sealed anew (a repeated
    /// sealed message is a replay).
    public let sealsClientData: Bool
    private let daemonEngine: @Sendable (DaemonSecurityContext) throws(ArchitectureSetupError) -> any DaemonSecurityEngine
    private let clientHooks: @Sendable (MemberID, ArchitectureOptions) throws(ArchitectureSetupError) -> any ClientSecurityHooks

    /// Registers an architecture from factories of its daemon engine and client hooks.
    public init(
        name: String, summary: String, keySource: String, encryptionPlacement: String, semantics: [GroupSemantics],
        sealsClientData: Bool,
        daemonEngine: @escaping @Sendable (DaemonSecurityContext) throws(ArchitectureSetupError) -> any DaemonSecurityEngine,
        clientHooks: @escaping @Sendable (MemberID, ArchitectureOptions) throws(ArchitectureSetupError) -> any ClientSecurityHooks
    ) {
        self.name = name
        self.summary = summary
        self.keySource = keySource
        self.encryptionPlacement = encryptionPlacement
        self.semantics = semantics
        self.sealsClientData = sealsClientData
        self.daemonEngine = daemonEngine
        self.clientHooks = clientHooks
    }

    /// A fresh daemon engine for one daemon process.
    public func makeDaemonEngine(_ context: DaemonSecurityContext) throws(ArchitectureSetupError) -> any DaemonSecurityEngine {
        try daemonEngine(context)
    }

    /// Fresh client hooks for the connection of `member`.
    public func makeClientHooks(member: MemberID, options: ArchitectureOptions = ArchitectureOptions()) throws(ArchitectureSetupError) -> any ClientSecurityHooks {
        try clientHooks(member, options)
    }

    public var description: String { name }

    /// Every registered architecture, in the order `--help` lists them.
    public static let registered: [Architecture] = [.plain, .integratedVS]

    /// The semantics clients of this architecture run: `name` (`evs`, `vs`) when given, else the
    /// architecture's own (EVS where it offers it); throws a readable error for semantics it
    /// does not offer.
    public func semantics(named name: String?) throws(ArchitectureSetupError) -> GroupSemantics {
        guard let name else { return semantics.contains(.extendedVirtualSynchrony) ? .extendedVirtualSynchrony : semantics[0] }
        guard let chosen = GroupSemantics(rawValue: name), semantics.contains(chosen) else {
            throw ArchitectureSetupError("architecture \(self.name) runs with semantics \(semantics.map(\.rawValue).joined(separator: " or ")), not '\(name)'")
        }
        return chosen
    }

    /// The architecture registered under `name`; throws a readable error listing the choices.
    public static func named(_ name: String) throws(UnknownArchitectureError) -> Architecture {
        guard let architecture = registered.first(where: { $0.name == name }) else {
            throw UnknownArchitectureError(name: name, available: registered.map(\.name))
        }
        return architecture
    }

    /// No security: messages, views and keys pass unchanged. The baseline of every comparison.
    public static let plain = Architecture(
        name: "plain",
        summary: "no authentication of data, no encryption: the baseline",
        keySource: "none", encryptionPlacement: "none", semantics: [.extendedVirtualSynchrony, .virtualSynchrony], sealsClientData: false,
        daemonEngine: { _ throws(ArchitectureSetupError) in PlainDaemonSecurity() },
        clientHooks: { _, _ throws(ArchitectureSetupError) in PlainClientHooks() })
}

extension Architecture {
    /// Integrated VS (the source's first integrated architecture): the daemons agree on a
    /// shared key with TGDH at every configuration change, derive each group view's key from it
    /// with one HMAC and hand it to the view's members over a confidential link; clients seal
    /// their data with it under Virtual Synchrony.
    public static let integratedVS = Architecture(
        name: "integrated-vs",
        summary: "daemons agree on a key (TGDH), derive one key per group view (HMAC); clients seal data under VS",
        keySource: "the daemons (TGDH among daemons, HMAC per group view)",
        encryptionPlacement: "the clients, end to end between group members",
        semantics: [.virtualSynchrony], sealsClientData: true,
        daemonEngine: { context throws(ArchitectureSetupError) in
            if let seed = context.simulationSeed, let key = context.signingKey {
                return try IntegratedDaemonSecurity(
                    daemonName: context.daemonName, signingKey: key, publicKeys: context.daemonPublicKeys,
                    options: context.options, random: SeededRandom(seed: seed))
            }
            return try IntegratedDaemonSecurity(context: context)
        },
        clientHooks: { member, options throws(ArchitectureSetupError) in try IntegratedClientSecurity(member: member, options: options) })
}

/// The options an architecture's strategies take, the same on daemons and clients (flags and
/// the configuration file set them).
public struct ArchitectureOptions: Sendable, Hashable {
    /// The cipher suite sealing client data (``CipherSuites``): `aes-256-gcm` by default.
    public var cipher: String = CipherSuites.defaultSuite.name
    /// The DH group of the daemons' key agreement (TGDH): `x25519` by default; `modp-1024` is the
    /// source's, `modp-2048` a conservative modern choice.
    public var daemonKeyAgreementGroup: String = "x25519"
    /// Whether a daemon that hands clients keys serves plain TCP clients on the loopback
    /// interface (tests and benchmarks on one host; off by default: only TLS and the Unix socket).
    public var allowsLoopbackTCP = false
    /// Time-out of the daemons' key K_s: the daemons agree on a fresh one this long after the
    /// last came into force, and every group gets a `rekey` view (`nil`: never). One hour by
    /// default.
    public var daemonKeyMaxAge: Duration? = .seconds(3600)
    /// Data-out of K_s: a fresh one once the daemons' clients submitted this many bytes of
    /// sealed data under view keys derived from it (each daemon asks when its own clients reach
    /// its share, the bound over the number of daemons; `nil`: never). 2^36 bytes (64 GiB) by
    /// default, far below what AES-256-GCM and ChaCha20-Poly1305 allow under one key, and
    /// every view has its own key besides.
    public var daemonKeyMaxBytes: UInt64? = 1 << 36

    /// The cipher suites ``cipher`` may name.
    public static var cipherNames: [String] { CipherSuites.names }
    /// The DH groups ``daemonKeyAgreementGroup`` may name.
    public static var daemonKeyAgreementGroupNames: [String] { DHGroups.names }

    /// Defaults.
    public init() {}

    /// Throws unless every name is registered.
    public func validate() throws(ArchitectureSetupError) {
        do {
            _ = try CipherSuites.named(cipher)
        } catch {
            throw ArchitectureSetupError("unknown cipher '\(cipher)'; available: \(CipherSuites.names.joined(separator: ", "))")
        }
        guard DHGroups.names.contains(daemonKeyAgreementGroup) else {
            throw ArchitectureSetupError(
                "unknown daemon key agreement group '\(daemonKeyAgreementGroup)'; available: \(DHGroups.names.joined(separator: ", "))")
        }
        if let age = daemonKeyMaxAge, age < .milliseconds(1) {
            throw ArchitectureSetupError("daemon key max age must be at least 1 ms (or unset: no refresh by time), not \(age)")
        }
        if daemonKeyMaxBytes == 0 {
            throw ArchitectureSetupError("daemon key max bytes must be positive (or unset: no refresh by data)")
        }
    }
}

/// What a daemon's security engine is made from: the daemon, its signing key and its peers'
/// public keys (docs/daemon-authentication.md), and the options.
public struct DaemonSecurityContext: Sendable {
    /// This daemon's name.
    public var daemonName: String
    /// Its Ed25519 key; `nil` when daemon authentication is off.
    public var signingKey: SigningKey?
    /// Every daemon's public key, by name (this one's included); empty when authentication is off.
    public var daemonPublicKeys: [String: [UInt8]]
    /// Whether this daemon has peers (a daemon alone needs no configured keys).
    public var hasPeers: Bool
    /// The options.
    public var options: ArchitectureOptions
    /// The simulator's only: the engine draws its secrets from ``SeededRandom`` with this seed,
    /// so a simulated run replays exactly. `nil` (every daemon process): the system's
    /// cryptographic generator.
    public var simulationSeed: UInt64?

    /// A context.
    public init(
        daemonName: String, signingKey: SigningKey?, daemonPublicKeys: [String: [UInt8]], hasPeers: Bool,
        options: ArchitectureOptions = ArchitectureOptions(), simulationSeed: UInt64? = nil
    ) {
        self.daemonName = daemonName
        self.signingKey = signingKey
        self.daemonPublicKeys = daemonPublicKeys
        self.hasPeers = hasPeers
        self.options = options
        self.simulationSeed = simulationSeed
    }
}

/// An architecture cannot be set up as asked (a missing key, an unknown cipher).
public struct ArchitectureSetupError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong and how to fix it.
    public var reason: String
    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// `--architecture` named an architecture that is not registered.
public struct UnknownArchitectureError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The name that was asked for.
    public var name: String
    /// The names that are registered.
    public var available: [String]
    public var description: String {
        "unknown architecture '\(name)'; available: \(available.joined(separator: ", "))"
    }
}

/// Client hooks of the `plain` architecture: the identity.
public struct PlainClientHooks: ClientSecurityHooks {
    /// Creates the hooks.
    public init() {}
    public var architectureName: String { "plain" }
    public func seal(_ message: inout OutgoingMessage) throws(ArchitectureError) {}
    public func open(_ message: inout DeliveredMessage) throws(ArchitectureError) {}
    public func install(_ view: inout GroupView) throws(ArchitectureError) {}
}
