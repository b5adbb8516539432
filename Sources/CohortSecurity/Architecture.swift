public import CohortCore

/// A named security architecture: the composition of strategies (key source, encryption
/// placement, cipher suite, key agreement) that a daemon and its clients run, selected with
/// `--architecture` on both binaries (DESIGN.md §2).
///
/// Today only `plain` (no security) is registered; the security issues register `layered`,
/// `integrated-vs`, `three-step` and `optimized-evs` here, each in its own folder, without
/// touching the protocol cores.
public struct Architecture: Sendable, CustomStringConvertible {
    /// The registered name, as given to `--architecture`.
    public let name: String
    /// One line on what it protects and how.
    public let summary: String
    private let daemonHooks: @Sendable () -> any DaemonSecurityHooks
    private let clientHooks: @Sendable () -> any ClientSecurityHooks

    /// Registers an architecture from factories of its daemon and client hooks.
    public init(
        name: String, summary: String,
        daemonHooks: @escaping @Sendable () -> any DaemonSecurityHooks,
        clientHooks: @escaping @Sendable () -> any ClientSecurityHooks
    ) {
        self.name = name
        self.summary = summary
        self.daemonHooks = daemonHooks
        self.clientHooks = clientHooks
    }

    /// Fresh daemon-side hooks for one daemon.
    public func makeDaemonHooks() -> any DaemonSecurityHooks { daemonHooks() }
    /// Fresh client-side hooks for one connection.
    public func makeClientHooks() -> any ClientSecurityHooks { clientHooks() }

    public var description: String { name }

    /// Every registered architecture, in the order `--help` lists them.
    public static let registered: [Architecture] = [.plain]

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
        daemonHooks: { PlainDaemonHooks() },
        clientHooks: { PlainClientHooks() })
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

/// Daemon hooks of the `plain` architecture: the identity.
public struct PlainDaemonHooks: DaemonSecurityHooks {
    /// Creates the hooks.
    public init() {}
    public var architectureName: String { "plain" }
    public func admit(_ message: inout OutgoingMessage, from sender: MemberID) throws(ArchitectureError) {}
    public func prepareDelivery(_ message: inout DeliveredMessage) {}
    public func prepareView(_ view: inout GroupView) {}
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
