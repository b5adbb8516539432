#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// SIGINT and SIGTERM as a flag that services poll.
///
/// A plain `sigaction` handler rather than Dispatch signal sources: on Linux, in processes
/// started through Foundation's `Process` (as `cohort cluster` starts `cohortd`), Dispatch
/// signal sources were seen never to fire, so a graceful shutdown never began.
public enum StopSignal {
    private static let flag = Atomic<Bool>(false)

    /// Whether SIGINT or SIGTERM arrived since ``install()``.
    public static var received: Bool { flag.load(ordering: .acquiring) }

    /// Installs the handlers for SIGINT and SIGTERM.
    public static func install() {
        for signalNumber in [SIGINT, SIGTERM] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { _ in StopSignal.flag.store(true, ordering: .releasing) }
            sigemptyset(&action.sa_mask)
            sigaction(signalNumber, &action, nil)
        }
    }
}

/// SIGHUP as a counter that services poll: each signal asks the daemon to reload its users
/// file and its access policy without dropping sessions.
public enum ReloadSignal {
    private static let counter = Atomic<Int>(0)

    /// How many SIGHUPs arrived since ``install()``.
    public static var count: Int { counter.load(ordering: .acquiring) }

    /// Installs the handler for SIGHUP.
    public static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in ReloadSignal.counter.add(1, ordering: .releasing) }
        sigemptyset(&action.sa_mask)
        sigaction(SIGHUP, &action, nil)
    }
}
