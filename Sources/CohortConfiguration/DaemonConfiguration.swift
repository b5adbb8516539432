public import CohortCore
import Foundation
import Yams

/// The daemon configuration file (YAML), shared by every daemon of a server group.
///
/// It lists the set of daemons (the multi-daemon runtime forms its server group from this list)
/// and the settings every daemon runs with. Every key but `daemons` is optional. Example and
/// field reference: `docs/configuration.md`.
public struct DaemonConfiguration: Codable, Sendable, Equatable {
    /// One daemon of the server group.
    public struct DaemonEntry: Codable, Sendable, Equatable {
        /// Unique daemon name (printable ASCII, no `#`, at most 32 bytes).
        public var name: String
        /// Host the daemon listens on, for clients and for peer daemons.
        public var host: String
        /// TCP port for peer daemons.
        public var daemonPort: Int?
        /// TCP port for clients; `null` disables TCP clients.
        public var clientPort: Int?
        /// Unix domain socket path for local clients; `null` disables it.
        public var socketPath: String?
        /// TCP port for TLS clients (needs the `tls` section); `null` disables it.
        public var tlsClientPort: Int?
        /// The daemon's Ed25519 public key, base64 (`cohort keygen` prints it). When every entry
        /// has one, daemons authenticate each other (`docs/daemon-authentication.md`).
        public var publicKey: String?
        /// The daemon's private key file (`cohort keygen`), read by that daemon only; a relative
        /// path is taken from the configuration file's folder.
        public var privateKeyFile: String?

        /// Creates an entry.
        public init(
            name: String, host: String = "127.0.0.1", daemonPort: Int? = nil, clientPort: Int? = 4803, socketPath: String? = nil,
            publicKey: String? = nil, privateKeyFile: String? = nil
        ) {
            self.name = name
            self.host = host
            self.daemonPort = daemonPort
            self.clientPort = clientPort
            self.socketPath = socketPath
            self.publicKey = publicKey
            self.privateKeyFile = privateKeyFile
        }

        private enum CodingKeys: String, CodingKey {
            case name, host, daemonPort, clientPort, socketPath, publicKey, privateKeyFile, tlsClientPort
        }

        /// Decodes an entry; `host` defaults to 127.0.0.1.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            host = try container.decodeIfPresent(String.self, forKey: .host) ?? "127.0.0.1"
            daemonPort = try container.decodeIfPresent(Int.self, forKey: .daemonPort)
            clientPort = try container.decodeIfPresent(Int.self, forKey: .clientPort)
            socketPath = try container.decodeIfPresent(String.self, forKey: .socketPath)
            publicKey = try container.decodeIfPresent(String.self, forKey: .publicKey)
            privateKeyFile = try container.decodeIfPresent(String.self, forKey: .privateKeyFile)
            tlsClientPort = try container.decodeIfPresent(Int.self, forKey: .tlsClientPort)
        }

        /// The 32 bytes of ``publicKey``, if it is set and valid.
        public var publicKeyBytes: [UInt8]? {
            publicKey.flatMap { Data(base64Encoded: $0) }.flatMap { $0.count == 32 ? Array($0) : nil }
        }
    }

    /// The daemons of the server group.
    public var daemons: [DaemonEntry]
    /// The security architecture (`plain`, `integrated-vs`; docs/architectures.md).
    public var architecture: String = "plain"
    /// The cipher suite clients seal data with under an encrypting architecture
    /// (`aes-256-gcm`, `chacha20-poly1305`, `blowfish-cbc-hmac-sha256`); `nil`: the
    /// architecture's default (`ArchitectureOptions`).
    public var cipher: String?
    /// The DH group of the daemons' key agreement (`x25519`, `modp-1024`, `modp-2048`); `nil`:
    /// the architecture's default.
    public var daemonKeyAgreementGroup: String?
    /// Whether a daemon that hands out group keys also serves plain TCP clients on the loopback
    /// interface (tests and benchmarks on one host). Off: only TLS and the Unix socket.
    public var allowLoopbackTCP = false
    /// Seconds after which the daemons refresh their shared key (time-out; 0: never); `nil`: the
    /// architecture's default (one hour).
    public var daemonKeyMaxAgeSeconds: Double?
    /// Bytes of sealed client data after which the daemons refresh their shared key (data-out;
    /// 0: never); `nil`: the architecture's default (2^36).
    public var daemonKeyMaxBytes: UInt64?
    /// Bounds on client input.
    public var limits = Limits()
    /// Bytes queued toward one client above which it counts as backlogged (the daemon then
    /// stops taking client input until it drains).
    public var clientQueueBytesMax: Int = 8 * 1024 * 1024
    /// Seconds a client may stay backlogged before it is disconnected.
    public var slowClientTimeoutSeconds: Double = 5
    /// Seconds a client has to complete its handshake.
    public var handshakeTimeoutSeconds: Double = 10
    /// Authentication methods offered to clients, in order of preference (`none`, `password`;
    /// `docs/authentication.md`).
    public var authMethods: [String] = ["none"]
    /// Methods every client must pass on top of the one it picks, for the same principal: only
    /// methods without an exchange (`certificate`, `peer-credentials`), and offered ones.
    public var requiredAuthMethods: [String] = []
    /// The users file of method `password` (written by `cohort passwd`); a relative path is
    /// taken from the configuration file's folder. Reloaded on SIGHUP.
    public var usersFile: String?
    /// TLS for client links (`docs/authentication.md`, "TLS"): used by every daemon entry with a
    /// `tlsClientPort`.
    public var tls: TLS?

    /// The daemon's TLS certificate and what it asks of clients. Paths relative to the
    /// configuration file's folder.
    public struct TLS: Codable, Sendable, Equatable {
        /// The daemon's certificate chain (PEM), leaf first.
        public var certificateFile: String
        /// Its private key (PEM).
        public var privateKeyFile: String
        /// CA certificates (PEM) that client certificates must chain to.
        public var clientCAFile: String?
        /// `none`, `optional` (verified when presented) or `required`.
        public var clientCertificates: String = "optional"

        /// Creates the section.
        public init(certificateFile: String, privateKeyFile: String, clientCAFile: String? = nil, clientCertificates: String = "optional") {
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
            self.clientCAFile = clientCAFile
            self.clientCertificates = clientCertificates
        }

        private enum CodingKeys: String, CodingKey { case certificateFile, privateKeyFile, clientCAFile, clientCertificates }

        /// Decodes the section; `clientCertificates` defaults to `optional`.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            certificateFile = try container.decode(String.self, forKey: .certificateFile)
            privateKeyFile = try container.decode(String.self, forKey: .privateKeyFile)
            clientCAFile = try container.decodeIfPresent(String.self, forKey: .clientCAFile)
            clientCertificates = try container.decodeIfPresent(String.self, forKey: .clientCertificates) ?? "optional"
        }
    }

    /// The access-control policy file (`docs/access-control.md`); a relative path is taken
    /// from the configuration file's folder; `null` allows every operation. Reloaded on SIGHUP.
    public var accessPolicyFile: String?
    /// Failed authentications one source may have in a burst before it is slowed down.
    public var authFailuresBurst: Int = 5
    /// Seconds for one more authentication attempt to be allowed to a throttled source.
    public var authFailureRefillSeconds: Double = 2
    /// Most clients one daemon serves.
    public var clientsMax: Int = 10_000
    /// Port of the Prometheus endpoint; `null` disables it.
    public var metricsPort: Int?
    /// Log level: trace, debug, info, notice, warning, error, critical.
    public var logLevel: String = "info"
    /// Timing and bounds of the daemons' membership protocol and links.
    public var membership = Membership()

    /// Timing and bounds of the membership and ordering protocol (Totem, `docs/membership.md`)
    /// and of the links between daemons. Every daemon of a server group must use the same.
    public struct Membership: Codable, Sendable, Equatable {
        /// Without a token for this long, a daemon starts a membership change (failure
        /// detection: the time to notice a crashed or partitioned daemon).
        public var tokenLossMilliseconds: Int = 500
        /// An idle ring's representative holds the token this long.
        public var tokenHoldMilliseconds: Int = 10
        /// A member resends a token it forwarded after this long without progress.
        public var tokenRetransmitMilliseconds: Int = 100
        /// A gathering daemon rebroadcasts its join message this often.
        public var joinMilliseconds: Int = 30
        /// A gathering daemon gives up on daemons it has no consensus with after this long.
        public var consensusMilliseconds: Int = 300
        /// The representative announces its ring this often, so separated components merge.
        public var mergeDetectMilliseconds: Int = 100
        /// Client operations are packed into ring packets of up to this many bytes.
        public var packetBytesMax: Int = 128 * 1024
        /// Most packets a daemon broadcasts per token visit.
        public var packetsPerToken: Int = 16
        /// Most packets outstanding on the ring.
        public var windowPackets: Int = 128
        /// Operations waiting for the token above which a daemon pauses client input.
        public var pendingItemsMax: Int = 4096
        /// A link with nothing to send carries a heartbeat this often.
        public var heartbeatMilliseconds: Int = 100
        /// An incoming link silent for this long is closed (its dialer reconnects).
        public var linkIdleMilliseconds: Int = 1000

        /// Defaults (tuned for daemons on one LAN or one machine).
        public init() {}

        private enum CodingKeys: String, CodingKey {
            case tokenLossMilliseconds, tokenHoldMilliseconds, tokenRetransmitMilliseconds, joinMilliseconds
            case consensusMilliseconds, mergeDetectMilliseconds, packetBytesMax, packetsPerToken, windowPackets
            case pendingItemsMax, heartbeatMilliseconds, linkIdleMilliseconds
        }

        /// Decodes the section; every key is optional.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = Membership()
            func value(_ key: CodingKeys, _ fallback: Int) throws -> Int {
                try container.decodeIfPresent(Int.self, forKey: key) ?? fallback
            }
            tokenLossMilliseconds = try value(.tokenLossMilliseconds, defaults.tokenLossMilliseconds)
            tokenHoldMilliseconds = try value(.tokenHoldMilliseconds, defaults.tokenHoldMilliseconds)
            tokenRetransmitMilliseconds = try value(.tokenRetransmitMilliseconds, defaults.tokenRetransmitMilliseconds)
            joinMilliseconds = try value(.joinMilliseconds, defaults.joinMilliseconds)
            consensusMilliseconds = try value(.consensusMilliseconds, defaults.consensusMilliseconds)
            mergeDetectMilliseconds = try value(.mergeDetectMilliseconds, defaults.mergeDetectMilliseconds)
            packetBytesMax = try value(.packetBytesMax, defaults.packetBytesMax)
            packetsPerToken = try value(.packetsPerToken, defaults.packetsPerToken)
            windowPackets = try value(.windowPackets, defaults.windowPackets)
            pendingItemsMax = try value(.pendingItemsMax, defaults.pendingItemsMax)
            heartbeatMilliseconds = try value(.heartbeatMilliseconds, defaults.heartbeatMilliseconds)
            linkIdleMilliseconds = try value(.linkIdleMilliseconds, defaults.linkIdleMilliseconds)
        }

        /// The ring settings for `daemon`; throws if they cannot work together.
        public func ringSettings(for daemon: DaemonID) throws(ConfigurationError) -> TotemRing.Settings {
            var ring = TotemRing.Settings(daemon: daemon)
            ring.tokenLossTimeout = .milliseconds(tokenLossMilliseconds)
            ring.tokenHold = .milliseconds(tokenHoldMilliseconds)
            ring.tokenRetransmitInterval = .milliseconds(tokenRetransmitMilliseconds)
            ring.joinInterval = .milliseconds(joinMilliseconds)
            ring.consensusTimeout = .milliseconds(consensusMilliseconds)
            ring.mergeDetectInterval = .milliseconds(mergeDetectMilliseconds)
            ring.packetBytesMax = packetBytesMax
            ring.packetsPerTokenMax = packetsPerToken
            ring.windowPackets = windowPackets
            ring.pendingItemsMax = pendingItemsMax
            // Client input stops after the reads under way: each client may still submit one
            // burst (at most 4 reads of up to 256 KiB) after intake paused.
            ring.pendingItemsRefused = 64 * pendingItemsMax
            do { try ring.validate() } catch { throw .invalid("membership: \(error)") }
            return ring
        }

        /// Checks the values.
        public func validate() throws(ConfigurationError) {
            for (name, value) in [("tokenLossMilliseconds", tokenLossMilliseconds), ("tokenHoldMilliseconds", tokenHoldMilliseconds),
                                  ("tokenRetransmitMilliseconds", tokenRetransmitMilliseconds), ("joinMilliseconds", joinMilliseconds),
                                  ("consensusMilliseconds", consensusMilliseconds), ("mergeDetectMilliseconds", mergeDetectMilliseconds),
                                  ("heartbeatMilliseconds", heartbeatMilliseconds), ("linkIdleMilliseconds", linkIdleMilliseconds)]
            where value <= 0 || value > 3_600_000 {
                throw .invalid("membership.\(name) must be between 1 and 3600000")
            }
            guard packetBytesMax >= 1024, packetBytesMax <= 1 << 20 else {
                throw .invalid("membership.packetBytesMax must be between 1024 and 1048576")
            }
            guard linkIdleMilliseconds > 2 * heartbeatMilliseconds else {
                throw .invalid("membership.linkIdleMilliseconds must exceed twice heartbeatMilliseconds")
            }
            _ = try ringSettings(for: DaemonID(name: "check", incarnation: 0))
        }
    }

    /// A configuration with the given daemons and defaults for everything else.
    public init(daemons: [DaemonEntry]) { self.daemons = daemons }

    private enum CodingKeys: String, CodingKey {
        case daemons, architecture, cipher, daemonKeyAgreementGroup, allowLoopbackTCP, daemonKeyMaxAgeSeconds, daemonKeyMaxBytes, limits, clientQueueBytesMax, slowClientTimeoutSeconds, handshakeTimeoutSeconds, authMethods
        case usersFile, authFailuresBurst, authFailureRefillSeconds, accessPolicyFile, tls, requiredAuthMethods
        case clientsMax, metricsPort, logLevel, membership
    }

    /// Decodes a configuration; every key but `daemons` is optional.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = DaemonConfiguration(daemons: [])
        daemons = try container.decode([DaemonEntry].self, forKey: .daemons)
        architecture = try container.decodeIfPresent(String.self, forKey: .architecture) ?? defaults.architecture
        cipher = try container.decodeIfPresent(String.self, forKey: .cipher)
        daemonKeyAgreementGroup = try container.decodeIfPresent(String.self, forKey: .daemonKeyAgreementGroup)
        allowLoopbackTCP = try container.decodeIfPresent(Bool.self, forKey: .allowLoopbackTCP) ?? defaults.allowLoopbackTCP
        daemonKeyMaxAgeSeconds = try container.decodeIfPresent(Double.self, forKey: .daemonKeyMaxAgeSeconds)
        daemonKeyMaxBytes = try container.decodeIfPresent(UInt64.self, forKey: .daemonKeyMaxBytes)
        limits = try container.decodeIfPresent(Limits.self, forKey: .limits) ?? defaults.limits
        clientQueueBytesMax = try container.decodeIfPresent(Int.self, forKey: .clientQueueBytesMax) ?? defaults.clientQueueBytesMax
        slowClientTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .slowClientTimeoutSeconds)
            ?? defaults.slowClientTimeoutSeconds
        handshakeTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .handshakeTimeoutSeconds)
            ?? defaults.handshakeTimeoutSeconds
        authMethods = try container.decodeIfPresent([String].self, forKey: .authMethods) ?? defaults.authMethods
        usersFile = try container.decodeIfPresent(String.self, forKey: .usersFile)
        requiredAuthMethods = try container.decodeIfPresent([String].self, forKey: .requiredAuthMethods) ?? []
        accessPolicyFile = try container.decodeIfPresent(String.self, forKey: .accessPolicyFile)
        tls = try container.decodeIfPresent(TLS.self, forKey: .tls)
        authFailuresBurst = try container.decodeIfPresent(Int.self, forKey: .authFailuresBurst) ?? defaults.authFailuresBurst
        authFailureRefillSeconds = try container.decodeIfPresent(Double.self, forKey: .authFailureRefillSeconds)
            ?? defaults.authFailureRefillSeconds
        clientsMax = try container.decodeIfPresent(Int.self, forKey: .clientsMax) ?? defaults.clientsMax
        metricsPort = try container.decodeIfPresent(Int.self, forKey: .metricsPort)
        logLevel = try container.decodeIfPresent(String.self, forKey: .logLevel) ?? defaults.logLevel
        membership = try container.decodeIfPresent(Membership.self, forKey: .membership) ?? defaults.membership
    }

    /// Parses YAML text.
    public static func parse(yaml: String) throws(ConfigurationError) -> DaemonConfiguration {
        let configuration: DaemonConfiguration
        do {
            configuration = try YAMLDecoder().decode(DaemonConfiguration.self, from: yaml)
        } catch {
            throw .invalid("cannot parse configuration: \(error)")
        }
        try configuration.validate()
        return configuration
    }

    /// Reads and parses a YAML file.
    public static func load(path: String) throws(ConfigurationError) -> DaemonConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .invalid("cannot read configuration file \(path): \(error.localizedDescription)")
        }
        var configuration = try parse(yaml: text)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        func resolved(_ file: String?) -> String? { file.map { $0.hasPrefix("/") ? $0 : folder + "/" + $0 } }
        configuration.usersFile = resolved(configuration.usersFile)
        configuration.accessPolicyFile = resolved(configuration.accessPolicyFile)
        if var tls = configuration.tls {
            tls.certificateFile = resolved(tls.certificateFile) ?? tls.certificateFile
            tls.privateKeyFile = resolved(tls.privateKeyFile) ?? tls.privateKeyFile
            tls.clientCAFile = resolved(tls.clientCAFile)
            configuration.tls = tls
        }
        for index in configuration.daemons.indices {
            configuration.daemons[index].privateKeyFile = resolved(configuration.daemons[index].privateKeyFile)
        }
        return configuration
    }

    /// Renders the configuration as YAML (used by `cohort cluster` to write its file).
    public func yaml() throws -> String { try YAMLEncoder().encode(self) }

    /// Checks names, ports and bounds.
    public func validate() throws(ConfigurationError) {
        var names: Set<String> = []
        for daemon in daemons {
            guard MemberID.isValidDaemonName(daemon.name, limits: limits) else {
                throw .invalid("invalid daemon name \(daemon.name.debugDescription)")
            }
            guard names.insert(daemon.name).inserted else { throw .invalid("daemon \(daemon.name) is listed twice") }
            for port in [daemon.clientPort, daemon.daemonPort].compactMap({ $0 }) where !(0...65535).contains(port) {
                throw .invalid("port \(port) of daemon \(daemon.name) is out of range")
            }
            guard daemon.clientPort != nil || daemon.socketPath != nil else {
                throw .invalid("daemon \(daemon.name) has neither a client port nor a socket path")
            }
        }
        for daemon in daemons where daemon.tlsClientPort != nil && tls == nil {
            throw .invalid("daemon \(daemon.name) has a tlsClientPort but the configuration has no tls section")
        }
        if let tls {
            guard ["none", "optional", "required"].contains(tls.clientCertificates) else {
                throw .invalid("tls.clientCertificates must be none, optional or required")
            }
            guard tls.clientCertificates == "none" || tls.clientCAFile != nil else {
                throw .invalid("tls.clientCertificates \(tls.clientCertificates) needs tls.clientCAFile")
            }
        }
        let keyed = daemons.filter { $0.publicKey != nil }
        guard keyed.isEmpty || keyed.count == daemons.count else {
            throw .invalid("daemons \(daemons.filter { $0.publicKey == nil }.map(\.name).joined(separator: ", ")) have no publicKey: give every daemon one (daemon authentication) or none")
        }
        for daemon in keyed where daemon.publicKeyBytes == nil {
            throw .invalid("the publicKey of daemon \(daemon.name) is not the base64 of 32 bytes (cohort keygen prints one)")
        }
        for daemon in daemons where daemons.count > 1 && daemon.daemonPort == nil {
            throw .invalid("daemon \(daemon.name) needs a daemonPort: the daemons of a server group talk on it")
        }
        try membership.validate()
        do { try limits.validate() } catch { throw .invalid("limits: \(error)") }
        guard clientQueueBytesMax >= 64 * 1024 else { throw .invalid("clientQueueBytesMax must be at least 65536") }
        guard handshakeTimeoutSeconds > 0 else { throw .invalid("handshakeTimeoutSeconds must be positive") }
        guard slowClientTimeoutSeconds > 0 else { throw .invalid("slowClientTimeoutSeconds must be positive") }
        guard clientsMax > 0 else { throw .invalid("clientsMax must be positive") }
        guard !authMethods.isEmpty else { throw .invalid("authMethods must name at least one method") }
        for name in requiredAuthMethods {
            guard ["certificate", "peer-credentials"].contains(name) else {
                throw .invalid("requiredAuthMethods may list certificate and peer-credentials (methods without an exchange), not \(name)")
            }
            guard authMethods.contains(name) else { throw .invalid("required method \(name) is not in authMethods") }
        }
        guard authFailuresBurst > 0 else { throw .invalid("authFailuresBurst must be positive") }
        guard authFailureRefillSeconds > 0 else { throw .invalid("authFailureRefillSeconds must be positive") }
    }
}

/// A configuration file or flag that cannot be used.
public enum ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Why the configuration is invalid.
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let reason): reason
        }
    }
}

extension MemberID {
    /// Whether `name` is usable as a daemon name under `limits`.
    public static func isValidDaemonName(_ name: String, limits: Limits) -> Bool {
        (try? MemberID(name: "x", daemon: name, limits: limits)) != nil
    }
}
