import ArgumentParser
import CohortConfiguration
import CohortDaemon
import CohortSecurity
import CohortTransport
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// `cohortd`: the Cohort daemon.
@main
struct CohortDaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cohortd",
        abstract: "The Cohort group communication daemon.",
        discussion: """
            Without --config, runs one daemon on embedded defaults (TCP 127.0.0.1:4803 and \
            unix:/tmp/cohort-4803.sock). With --config, runs the daemon named --name from the \
            file's daemon list; flags override file values. See docs/configuration.md.
            """,
        version: CohortVersion.string)

    @Option(help: "YAML configuration file listing the daemons and their settings.")
    var config: String?

    @Option(help: "This daemon's name (must be listed in --config when one is given).")
    var name: String = "d1"

    @Option(help: "Host to listen on for TCP clients.")
    var host: String?

    @Option(help: "TCP port for clients (0 picks a free port).")
    var port: Int?

    @Option(help: "Unix domain socket path for local clients.")
    var socket: String?

    @Flag(help: "Do not listen on a Unix domain socket.")
    var noSocket = false

    @Option(help: "Security architecture: \(Architecture.registered.map(\.name).joined(separator: ", ")).")
    var architecture: String?

    @Option(help: "Cipher suite clients seal group data with (encrypting architectures): \(ArchitectureOptions.cipherNames.joined(separator: ", ")).")
    var cipher: String?

    @Option(help: "DH group of the daemons' key agreement (TGDH): \(ArchitectureOptions.daemonKeyAgreementGroupNames.joined(separator: ", ")) (default \(ArchitectureOptions().daemonKeyAgreementGroup)).")
    var daemonKeyAgreementGroup: String?

    @Flag(help: "Serve plain TCP clients on loopback under an architecture that hands out keys (tests on one host).")
    var allowLoopbackTcp = false

    @Option(help: "Refresh the daemons' shared key after this many seconds (0: never; default 3600).")
    var daemonKeyMaxAge: Double?

    @Option(help: "Refresh the daemons' shared key after this many bytes of sealed client data (0: never; default 2^36).")
    var daemonKeyMaxBytes: UInt64?

    @Option(help: "Serve Prometheus metrics on this port (GET /metrics).")
    var metricsPort: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    @Option(help: "Authentication methods offered to clients, comma-separated in order of preference: \(AuthenticationMethods.available.joined(separator: ", ")).")
    var auth: String?

    @Option(help: "Methods every client must also pass, comma-separated: certificate, peer-credentials (same principal).")
    var authRequired: String?

    @Option(help: "Users file of method password (written by `cohort passwd`); reloaded on SIGHUP.")
    var users: String?

    @Option(help: "Access-control policy file (YAML, docs/access-control.md); reloaded on SIGHUP. Without one, every operation is allowed.")
    var policy: String?

    @Option(help: "TCP port for TLS clients (0 picks a free port); needs --tls-cert and --tls-key (or the tls section).")
    var tlsPort: Int?

    @Option(help: "The daemon's TLS certificate chain (PEM).")
    var tlsCert: String?

    @Option(help: "The daemon's TLS private key (PEM).")
    var tlsKey: String?

    @Option(help: "CA certificates (PEM) that client certificates must chain to.")
    var tlsClientCa: String?

    @Option(help: "Client certificates: none, optional (verified when presented), required.")
    var tlsClientCertificates: String?

    @Flag(help: "Accept fault-injection commands from clients (`cohort fault`): for tests only.")
    var faultInjection = false

    @Option(help: ArgumentHelp("Shut down gracefully when the process with this id is no longer the parent (used by `cohort cluster`).", visibility: .hidden))
    var parentPid: Int32?

    func run() async throws {
        // 0. The allocator keeps freed buffers for reuse (docs/daemon.md, "Heap").
        let heapTuning = HeapTuning.apply()

        // 1. Configuration: the file (or embedded defaults), then flags on top.
        var configuration: DaemonConfiguration
        if let config {
            configuration = try DaemonConfiguration.load(path: config)
        } else {
            let clientPort = port ?? 4803
            configuration = DaemonConfiguration(daemons: [.init(
                name: name, host: host ?? "127.0.0.1", clientPort: clientPort,
                socketPath: noSocket ? nil : (socket ?? "/tmp/cohort-\(clientPort).sock"))])
        }
        if let architecture { configuration.architecture = architecture }
        if let cipher { configuration.cipher = cipher }
        if let daemonKeyAgreementGroup { configuration.daemonKeyAgreementGroup = daemonKeyAgreementGroup }
        if allowLoopbackTcp { configuration.allowLoopbackTCP = true }
        if let daemonKeyMaxAge { configuration.daemonKeyMaxAgeSeconds = daemonKeyMaxAge }
        if let daemonKeyMaxBytes { configuration.daemonKeyMaxBytes = daemonKeyMaxBytes }
        if let metricsPort { configuration.metricsPort = metricsPort }
        if let logLevel { configuration.logLevel = logLevel }
        if let auth { configuration.authMethods = auth.split(separator: ",").map { String($0) } }
        if let users { configuration.usersFile = users }
        if let authRequired { configuration.requiredAuthMethods = authRequired.split(separator: ",").map { String($0) } }
        if let policy { configuration.accessPolicyFile = policy }
        if let tlsCert, let tlsKey {
            // Without a client CA, TLS only protects the link and proves the daemon.
            configuration.tls = .init(
                certificateFile: tlsCert, privateKeyFile: tlsKey, clientCAFile: tlsClientCa,
                clientCertificates: tlsClientCertificates ?? (tlsClientCa == nil ? "none" : "optional"))
        } else if tlsCert != nil || tlsKey != nil {
            throw ValidationError("--tls-cert and --tls-key go together")
        } else {
            if let tlsClientCa { configuration.tls?.clientCAFile = tlsClientCa }
            if let tlsClientCertificates { configuration.tls?.clientCertificates = tlsClientCertificates }
        }
        try configuration.validate()
        var settings = try DaemonSettings(configuration: configuration, name: name)
        if let host { settings.clientHost = host }
        if let port { settings.clientPort = port }
        if let socket { settings.socketPath = socket }
        if noSocket { settings.socketPath = nil }
        if let tlsPort { settings.tlsClientPort = tlsPort }
        settings.faultInjection = faultInjection
        guard let level = Logger.Level(rawValue: configuration.logLevel) else {
            throw ValidationError("unknown log level '\(configuration.logLevel)'")
        }

        // 2. Logging and metrics backends.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "cohortd.\(settings.name)")
        logger.debug("allocator thresholds", metadata: ["heap_tuning": "\(heapTuning)"])
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        // 3. Services, stopped gracefully on SIGTERM/SIGINT.
        let daemonName = settings.name
        var services: [any Service] = [DaemonService(settings: settings, logger: logger) { addresses in
            print("cohortd \(daemonName) ready: \(addresses.joined(separator: " "))")
        }]
        if let metricsPort = configuration.metricsPort {
            services.append(MetricsService(registry: registry, host: settings.clientHost, port: metricsPort, logger: logger))
        }
        var serviceConfigurations = services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
        StopSignal.install()
        ReloadSignal.install()
        serviceConfigurations.append(.init(
            service: ShutdownTriggerService(parentPid: parentPid, logger: logger),
            successTerminationBehavior: .gracefullyShutdownGroup))
        try await ServiceGroup(configuration: ServiceGroupConfiguration(services: serviceConfigurations, logger: logger)).run()
    }
}

/// Serves the Prometheus endpoint until graceful shutdown.
struct MetricsService: Service {
    let registry: PrometheusCollectorRegistry
    let host: String
    let port: Int
    let logger: Logger

    func run() async throws {
        let endpoint = try await MetricsEndpoint.start(registry: registry, host: host, port: port, logger: logger)
        try? await gracefulShutdown()
        await endpoint.shutdown()
    }
}

/// Returns, which shuts the daemon down gracefully, on SIGINT/SIGTERM or, with a parent pid,
/// once the launching process is gone: daemons started by `cohort cluster` never outlive it,
/// even when it is killed with SIGKILL.
struct ShutdownTriggerService: Service {
    let parentPid: Int32?
    let logger: Logger

    func run() async throws {
        while !StopSignal.received {
            if let parentPid, getppid() != parentPid {
                logger.notice("parent process \(parentPid) is gone; shutting down")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        logger.info("stop signal received; shutting down")
    }
}
