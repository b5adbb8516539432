public import Logging
public import ServiceLifecycle

/// Runs a ``DaemonServer`` as a ServiceLifecycle service: starts it, reloads its users file and
/// access policy on every SIGHUP (``ReloadSignal``, when installed), waits for a graceful shutdown
/// (SIGTERM/SIGINT), then tells clients, closes sessions and removes the socket file.
public struct DaemonService: Service {
    /// What the daemon runs with.
    public let settings: DaemonSettings
    /// Where it logs.
    public let logger: Logger
    /// Called once the daemon is serving, with its client addresses.
    public let onStarted: @Sendable ([String]) -> Void

    /// Creates the service.
    public init(settings: DaemonSettings, logger: Logger, onStarted: @escaping @Sendable ([String]) -> Void = { _ in }) {
        self.settings = settings
        self.logger = logger
        self.onStarted = onStarted
    }

    /// Serves until a graceful shutdown or cancellation.
    public func run() async throws {
        let server = try await DaemonServer.start(settings: settings, logger: logger)
        onStarted(server.clientAddresses)
        let reloads = Task {
            var seen = ReloadSignal.count
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                let count = ReloadSignal.count
                if count != seen {
                    seen = count
                    await server.reloadSecurity()
                }
            }
        }
        try? await gracefulShutdown()
        reloads.cancel()
        await server.shutdown()
    }
}
