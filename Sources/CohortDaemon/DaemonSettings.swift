public import CohortConfiguration
public import CohortCore
public import CohortSecurity

/// Everything one daemon process runs with, resolved from the configuration file and flags.
public struct DaemonSettings: Sendable {
    /// This daemon's name.
    public var name: String
    /// Host to listen on for TCP clients.
    public var clientHost: String = "127.0.0.1"
    /// TCP client port (0 picks a free port); `nil` disables TCP clients.
    public var clientPort: Int? = 4803
    /// TLS client port (0 picks a free port); `nil` disables TLS clients.
    public var tlsClientPort: Int?
    /// The TLS certificate, key and client-certificate policy (needed with ``tlsClientPort``).
    public var tls: DaemonConfiguration.TLS?
    /// Unix domain socket path; `nil` disables local IPC.
    public var socketPath: String?
    /// The security architecture.
    public var architecture: Architecture = .plain
    /// The architecture's options (cipher, daemon key agreement group, loopback TCP).
    public var architectureOptions = ArchitectureOptions()
    /// Bounds on client input.
    public var limits = Limits()
    /// Bytes queued toward one client above which it counts as backlogged: the daemon stops
    /// taking client input until it drains to half of this.
    public var clientQueueBytesMax: Int = 8 * 1024 * 1024
    /// How long a client may stay backlogged before it is disconnected.
    public var slowClientTimeout: Duration = .seconds(5)
    /// Time a client has to complete its handshake.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Authentication methods offered, in order of preference.
    public var authMethods: [String] = ["none"]
    /// The users file of method `password`.
    public var usersFile: String?
    /// Methods every client must pass on top of the one it picks.
    public var requiredAuthMethods: [String] = []
    /// The public keys of every daemon of the configuration (empty: daemons are not
    /// authenticated).
    public var daemonPublicKeys: [String: [UInt8]] = [:]
    /// This daemon's private key file (needed when ``daemonPublicKeys`` is not empty).
    public var privateKeyFile: String?
    /// The access-control policy file; `nil` allows every operation.
    public var accessPolicyFile: String?
    /// How repeated authentication failures from one source are slowed down.
    public var throttle = AuthenticationThrottle.Settings()
    /// Most clients served at once.
    public var clientsMax: Int = 10_000
    /// The other daemons of the server group, from the configuration file.
    public var peers: [PeerEndpoint] = []
    /// Host and port this daemon's peers dial; `nil` for a daemon alone.
    public var daemonEndpoint: PeerEndpoint?
    /// Timing and bounds of the membership protocol and the links.
    public var membership = DaemonConfiguration.Membership()
    /// Whether clients may inject faults (drop traffic to and from named peers).
    public var faultInjection = false

    /// Settings with defaults for everything but the name.
    public init(name: String) { self.name = name }

    /// Resolves the entry named `name` of `configuration`.
    public init(configuration: DaemonConfiguration, name: String) throws(ConfigurationError) {
        guard let entry = configuration.daemons.first(where: { $0.name == name }) else {
            let known = configuration.daemons.map(\.name).joined(separator: ", ")
            throw .invalid("daemon \(name) is not in the configuration (daemons: \(known))")
        }
        self.name = name
        clientHost = entry.host
        clientPort = entry.clientPort
        socketPath = entry.socketPath
        tlsClientPort = entry.tlsClientPort
        tls = configuration.tls
        do {
            architecture = try Architecture.named(configuration.architecture)
        } catch {
            throw .invalid(error.description)
        }
        if let cipher = configuration.cipher { architectureOptions.cipher = cipher }
        if let group = configuration.daemonKeyAgreementGroup { architectureOptions.daemonKeyAgreementGroup = group }
        architectureOptions.allowsLoopbackTCP = configuration.allowLoopbackTCP
        if let seconds = configuration.daemonKeyMaxAgeSeconds {
            guard seconds.isFinite, seconds >= 0, seconds <= 365 * 86_400 else {
                throw .invalid("daemonKeyMaxAgeSeconds must be between 0 (never) and one year, not \(seconds)")
            }
            architectureOptions.daemonKeyMaxAge = seconds == 0 ? nil : .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        if let bytes = configuration.daemonKeyMaxBytes { architectureOptions.daemonKeyMaxBytes = bytes == 0 ? nil : bytes }
        do {
            try architectureOptions.validate()
        } catch {
            throw .invalid(error.description)
        }
        limits = configuration.limits
        clientQueueBytesMax = configuration.clientQueueBytesMax
        handshakeTimeout = .milliseconds(Int64(configuration.handshakeTimeoutSeconds * 1000))
        slowClientTimeout = .milliseconds(Int64(configuration.slowClientTimeoutSeconds * 1000))
        authMethods = configuration.authMethods
        usersFile = configuration.usersFile
        requiredAuthMethods = configuration.requiredAuthMethods
        accessPolicyFile = configuration.accessPolicyFile
        privateKeyFile = entry.privateKeyFile
        for daemon in configuration.daemons {
            if let key = daemon.publicKeyBytes { daemonPublicKeys[daemon.name] = key }
        }
        throttle.failuresBurst = configuration.authFailuresBurst
        throttle.refillInterval = .milliseconds(Int64(configuration.authFailureRefillSeconds * 1000))
        clientsMax = configuration.clientsMax
        membership = configuration.membership
        peers = configuration.daemons.filter { $0.name != name }.compactMap { peer in
            peer.daemonPort.map { PeerEndpoint(name: peer.name, host: peer.host, port: $0) }
        }
        daemonEndpoint = entry.daemonPort.map { PeerEndpoint(name: name, host: entry.host, port: $0) }
    }

    /// Settings of the pure core.
    func coreSettings(incarnation: UInt64) throws(ConfigurationError) -> DaemonCore.Settings {
        var settings = DaemonCore.Settings(daemonName: name)
        settings.ring = try membership.ringSettings(for: DaemonID(name: name, incarnation: incarnation))
        settings.faultInjection = faultInjection
        settings.version = CohortVersion.string
        settings.incarnation = incarnation
        settings.limits = limits
        settings.throttle = throttle
        settings.requiredAuthMethods = requiredAuthMethods
        settings.clientsMax = clientsMax
        settings.handshakeTimeout = handshakeTimeout
        settings.slowClientTimeout = slowClientTimeout
        return settings
    }
}

/// Where a daemon listens for its peers.
public struct PeerEndpoint: Hashable, Sendable {
    /// The daemon's name.
    public var name: String
    /// Host it listens on for peers.
    public var host: String
    /// Its daemon port.
    public var port: Int

    /// An endpoint.
    public init(name: String, host: String, port: Int) {
        self.name = name
        self.host = host
        self.port = port
    }
}

/// The software version of this build.
public enum CohortVersion {
    /// Semantic version string.
    public static let string = "0.1.0"
}
