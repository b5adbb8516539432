import CohortConfiguration
import CohortCore
import CohortCrypto
import CohortSecurity
import CohortTransport
import Foundation
public import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// One running daemon: listeners for TCP and Unix-socket clients and the links to its peer
/// daemons, around a ``DaemonCore``.
///
/// All of a daemon's channels and its core share one event-loop thread; the protocol is
/// sequential, and a second daemon thread would only add locking.
public final class DaemonServer: Sendable {
    /// Addresses clients can connect to, as `host:port` or `unix:PATH`.
    public let clientAddresses: [String]
    /// The TCP port actually bound (useful with port 0), if TCP is enabled.
    public let clientPort: Int?
    /// The daemon's settings.
    public let settings: DaemonSettings

    private let group: MultiThreadedEventLoopGroup
    private let runtime: NIOLoopBound<DaemonRuntime>
    private let listeners: [any Channel]
    private let logger: Logger

    private init(
        settings: DaemonSettings, group: MultiThreadedEventLoopGroup, runtime: NIOLoopBound<DaemonRuntime>,
        listeners: [any Channel], clientAddresses: [String], clientPort: Int?, logger: Logger
    ) {
        self.settings = settings
        self.group = group
        self.runtime = runtime
        self.listeners = listeners
        self.clientAddresses = clientAddresses
        self.clientPort = clientPort
        self.logger = logger
    }

    /// Binds the listeners and starts serving.
    public static func start(settings: DaemonSettings, logger: Logger) async throws -> DaemonServer {
        let daemonAuthentication = try daemonAuthentication(settings)
        let security = try securityEngine(settings, daemonAuthentication: daemonAuthentication)
        let incarnation = UInt64(Date().timeIntervalSince1970 * 1000)
        let coreSettings = try settings.coreSettings(incarnation: incarnation)
        let authentication = try authenticationMethods(settings)
        let core = try DaemonCore(
            settings: coreSettings, security: security, authentication: authentication, accessControl: try accessControl(settings))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let eventLoop = group.next()
        let membership = settings.membership
        let linkSettings = PeerLinks.Settings(
            heartbeatInterval: .milliseconds(Int64(membership.heartbeatMilliseconds)),
            idleTimeout: .milliseconds(Int64(membership.linkIdleMilliseconds)),
            frameBytesMax: PeerLinkFrame.frameBytesMax(packetBytesMax: membership.packetBytesMax, limits: settings.limits),
            limits: settings.limits, daemonsMax: coreSettings.ring.daemonsMax)
        let peers = settings.peers
        let daemon = core.daemon
        let (runtime, links) = try await eventLoop.submit {
            let links = PeerLinks(
                me: daemon, peers: peers, authentication: daemonAuthentication, settings: linkSettings, eventLoop: eventLoop, logger: logger)
            let runtime = DaemonRuntime(core: core, links: links, eventLoop: eventLoop, logger: logger)
            return (NIOLoopBound(runtime, eventLoop: eventLoop), NIOLoopBound(links, eventLoop: eventLoop))
        }.get()

        var listeners: [any Channel] = []
        var addresses: [String] = []
        var boundPort: Int?
        do {
            if let endpoint = settings.daemonEndpoint, !peers.isEmpty {
                listeners.append(try await PeerLinks.bind(links, endpoint: endpoint, settings: linkSettings, eventLoop: eventLoop))
            }
            if let port = settings.clientPort {
                let channel = try await bootstrap(group: group, runtime: runtime, settings: settings, logger: logger, tcp: true)
                    .bind(host: settings.clientHost, port: port).get()
                listeners.append(channel)
                boundPort = channel.localAddress?.port
                addresses.append("\(settings.clientHost):\(boundPort ?? port)")
            }
            if let port = settings.tlsClientPort {
                guard let tls = settings.tls else { throw ConfigurationError.invalid("tlsClientPort needs the tls section") }
                let context = try serverTLSContext(tls)
                let channel = try await bootstrap(group: group, runtime: runtime, settings: settings, logger: logger, tcp: true, tls: context)
                    .bind(host: settings.clientHost, port: port).get()
                listeners.append(channel)
                addresses.append("tls:\(settings.clientHost):\(channel.localAddress?.port ?? port)")
            }
            if let path = settings.socketPath {
                let channel = try await bootstrap(group: group, runtime: runtime, settings: settings, logger: logger, tcp: false)
                    .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
                listeners.append(channel)
                addresses.append("unix:\(path)")
            }
        } catch {
            for channel in listeners { try? await channel.close() }
            try? await group.shutdownGracefully()
            throw error
        }
        try await eventLoop.submit { runtime.value.start() }.get()
        if settings.authMethods.contains(NoAuthentication().name) {
            logger.notice("authentication method none is offered: any client may connect, as principal anonymous (for local development)")
        }
        logger.info("daemon serving", metadata: [
            "daemon": "\(daemon)", "architecture": "\(settings.architecture.name)",
            "clients": "\(addresses.joined(separator: ", "))",
            "auth": "\(settings.authMethods.joined(separator: ","))",
            "policy": "\(settings.accessPolicyFile ?? "none: every operation allowed")",
            "daemon-auth": "\(daemonAuthentication.isEnabled ? "signed hellos (Ed25519)" : "off: peers are not authenticated")",
            "peers": "\(peers.map { "\($0.name)@\($0.host):\($0.port)" }.joined(separator: ", "))",
        ])
        return DaemonServer(
            settings: settings, group: group, runtime: runtime, listeners: listeners,
            clientAddresses: addresses, clientPort: boundPort, logger: logger)
    }

    /// Reads the users file (when method `password` is offered) and makes the authentication
    /// methods, with a fresh nonce secret from the system's generator.
    static func authenticationMethods(_ settings: DaemonSettings) throws(AuthenticationSetupError) -> [any AuthenticationMethod] {
        var usersFileText: String?
        if settings.authMethods.contains(PasswordAuthentication.name), let path = settings.usersFile {
            do {
                usersFileText = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw AuthenticationSetupError("cannot read users file \(path): \(error.localizedDescription)")
            }
        }
        var generator = SystemRandomNumberGenerator()
        let nonceSecret = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return try AuthenticationMethods.make(settings.authMethods, usersFileText: usersFileText, nonceSecret: nonceSecret)
    }

    /// Daemon authentication from `settings`: on when the configuration lists keys, which needs
    /// this daemon's private key, matching its listed public key.
    static func daemonAuthentication(_ settings: DaemonSettings) throws(ConfigurationError) -> DaemonAuthentication {
        guard !settings.daemonPublicKeys.isEmpty else {
            return DaemonAuthentication(me: settings.name, signingKey: nil, publicKeys: [:])
        }
        guard let path = settings.privateKeyFile else {
            throw .invalid("the configuration lists daemon keys: daemon \(settings.name) needs its privateKeyFile (cohort keygen)")
        }
        let key: SigningKey
        do {
            key = try KeyFiles.readPrivateKey(path: path)
        } catch {
            throw .invalid("daemon key: \(error)")
        }
        guard settings.daemonPublicKeys[settings.name] == key.publicKeyBytes else {
            throw .invalid("the private key in \(path) does not match the publicKey listed for daemon \(settings.name)")
        }
        return DaemonAuthentication(me: settings.name, signingKey: key, publicKeys: settings.daemonPublicKeys)
    }

    /// The architecture's daemon engine, signing with the daemon's key when daemon
    /// authentication is on.
    static func securityEngine(
        _ settings: DaemonSettings, daemonAuthentication: DaemonAuthentication
    ) throws(ConfigurationError) -> any DaemonSecurityEngine {
        let context = DaemonSecurityContext(
            daemonName: settings.name, signingKey: daemonAuthentication.signingKey, daemonPublicKeys: settings.daemonPublicKeys,
            hasPeers: !settings.peers.isEmpty, options: settings.architectureOptions)
        do {
            return try settings.architecture.makeDaemonEngine(context)
        } catch {
            throw .invalid("architecture \(settings.architecture.name): \(error)")
        }
    }

    /// The access-control policy of `settings`: the policy file's, or everything allowed.
    static func accessControl(_ settings: DaemonSettings) throws(AccessPolicyError) -> any AccessControl {
        guard let path = settings.accessPolicyFile else { return AllowEverything() }
        return try AccessPolicyFile.load(path: path)
    }

    /// Reloads the users file and the access-control policy (SIGHUP): new handshakes and every
    /// later operation use them; sessions stay. A file that does not parse leaves its part as
    /// it was, and the log says why.
    public func reloadSecurity() async {
        let runtime = self.runtime
        do {
            let methods = try Self.authenticationMethods(settings)
            try? await group.next().submit { runtime.value.handle(.authenticationMethodsChanged(methods)) }.get()
            logger.notice("authentication reloaded", metadata: ["auth": "\(settings.authMethods.joined(separator: ","))"])
        } catch {
            logger.error("authentication reload failed; keeping the previous methods", metadata: ["reason": "\(error)"])
        }
        guard settings.accessPolicyFile != nil else { return }
        do {
            let control = try Self.accessControl(settings)
            try? await group.next().submit { runtime.value.handle(.accessControlChanged(control)) }.get()
            logger.notice("access policy reloaded", metadata: ["policy": "\(settings.accessPolicyFile ?? "")"])
        } catch {
            logger.error("access policy reload failed; keeping the previous policy", metadata: ["reason": "\(error)"])
        }
    }

    /// The server side of TLS: the daemon's certificate chain and key, and the client
    /// certificates it asks for, verified against `clientCAFile` (the chain, the dates and the
    /// key possession; NIOSSL/BoringSSL).
    static func serverTLSContext(_ tls: DaemonConfiguration.TLS) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(tls.certificateFile).map { NIOSSLCertificateSource.certificate($0) }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.privateKeyFile, format: .pem)))
        configuration.minimumTLSVersion = .tlsv12
        if let ca = tls.clientCAFile { configuration.trustRoots = .file(ca) }
        switch tls.clientCertificates {
        case "required": configuration.certificateVerification = .noHostnameVerification
        case "optional": configuration.certificateVerification = .optionalVerification
        default: configuration.certificateVerification = .none
        }
        return try NIOSSLContext(configuration: configuration)
    }

    private static func bootstrap(
        group: MultiThreadedEventLoopGroup, runtime: NIOLoopBound<DaemonRuntime>, settings: DaemonSettings,
        logger: Logger, tcp: Bool, tls: NIOSSLContext? = nil
    ) -> ServerBootstrap {
        let queueBytesMax = settings.clientQueueBytesMax
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: queueBytesMax / 2, high: queueBytesMax))
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 256 * 1024))
        if tcp {
            bootstrap = bootstrap
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        }
        let limits = settings.limits
        return bootstrap.childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let handler = ClientSessionHandler(runtime: runtime.value, logger: logger, tls: tls != nil)
                if let tls {
                    // TLS first: the session opens once its handshake completes (the handler
                    // waits for TLSUserEvent.handshakeCompleted), so nothing is written before.
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                }
                try channel.pipeline.syncOperations.addHandler(FrameBatchHandler<ClientFrame>(limits: limits))
                try channel.pipeline.syncOperations.addHandler(handler)
            }
        }
    }

    /// Tells every client the daemon is going away, closes every session and listener, and
    /// removes the Unix socket file.
    public func shutdown() async {
        logger.info("daemon shutting down", metadata: ["daemon": "\(settings.name)"])
        let runtime = self.runtime
        try? await group.next().submit { runtime.value.shutdown() }.get()
        for listener in listeners { try? await listener.close() }
        // Give the error frames and closes a moment to reach the clients.
        try? await Task.sleep(for: .milliseconds(50))
        if let path = settings.socketPath { try? FileManager.default.removeItem(atPath: path) }
        try? await group.shutdownGracefully()
    }
}
