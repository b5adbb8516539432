public import Foundation

/// Starts and stops real `cohortd` processes on loopback, for `cohort cluster`, `cohort demo`,
/// the experiments and the end-to-end tests.
public final class LocalCluster: @unchecked Sendable {
    /// One launched daemon.
    public struct Member: Sendable {
        /// Daemon name.
        public var name: String
        /// TCP client address, `127.0.0.1:PORT`.
        public var clientAddress: String
        /// Unix socket client address, `unix:PATH`.
        public var socketAddress: String
    }

    /// The daemons, in order.
    public let members: [Member]
    /// The folder holding the configuration file and the daemons' logs.
    public let directory: URL
    // Guarded by `lock`: the processes are stopped at most once, from any thread.
    private var processes: [Process]
    private let lock = NSLock()

    private init(members: [Member], directory: URL, processes: [Process]) {
        self.members = members
        self.directory = directory
        self.processes = processes
    }

    /// Writes a configuration for `daemons` daemons on ports `basePort...` into `directory`
    /// (a fresh temporary folder when `nil`) and starts one `cohortd` per daemon; returns once
    /// every daemon accepts connections or throws after `readyTimeout`.
    public static func start(
        daemons: Int, basePort: Int, directory: URL? = nil, architecture: String = "plain",
        daemonExecutable: URL? = nil, logLevel: String = "notice", readyTimeout: Duration = .seconds(20)
    ) async throws -> LocalCluster {
        guard daemons == 1 else {
            throw ClusterError("a server group of \(daemons) daemons needs the multi-daemon runtime, which has not landed yet; use --daemons 1")
        }
        let folder = directory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("cohort-cluster-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let entries = (0..<daemons).map { index in
            DaemonConfiguration.DaemonEntry(
                name: "d\(index + 1)", host: "127.0.0.1", daemonPort: basePort + 2 * index + 1,
                clientPort: basePort + 2 * index, socketPath: folder.appendingPathComponent("d\(index + 1).sock").path)
        }
        var configuration = DaemonConfiguration(daemons: entries)
        configuration.architecture = architecture
        configuration.logLevel = logLevel
        let configPath = folder.appendingPathComponent("cohort.yaml")
        try configuration.yaml().write(to: configPath, atomically: true, encoding: .utf8)

        let executable = daemonExecutable ?? Self.defaultDaemonExecutable()
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw ClusterError("cohortd not found at \(executable.path); build it with `swift build` or set COHORTD")
        }
        var processes: [Process] = []
        for entry in entries {
            let process = Process()
            process.executableURL = executable
            process.arguments = [
                "--config", configPath.path, "--name", entry.name,
                "--parent-pid", "\(ProcessInfo.processInfo.processIdentifier)",
            ]
            let log = folder.appendingPathComponent("\(entry.name).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            processes.append(process)
        }
        let cluster = LocalCluster(
            members: entries.map { Member(name: $0.name, clientAddress: "127.0.0.1:\($0.clientPort!)", socketAddress: "unix:\($0.socketPath!)") },
            directory: folder, processes: processes)
        do {
            try await cluster.waitUntilReady(entries: entries, timeout: readyTimeout)
        } catch {
            await cluster.stop()
            throw error
        }
        return cluster
    }

    /// `cohortd` next to the running executable, or `$COHORTD`.
    public static func defaultDaemonExecutable() -> URL {
        if let path = ProcessInfo.processInfo.environment["COHORTD"] { return URL(fileURLWithPath: path) }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return me.deletingLastPathComponent().appendingPathComponent("cohortd")
    }

    private func waitUntilReady(entries: [DaemonConfiguration.DaemonEntry], timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        for (index, entry) in entries.enumerated() {
            while !Self.canConnect(port: entry.clientPort!) || !FileManager.default.fileExists(atPath: entry.socketPath!) {
                if !processes[index].isRunning {
                    let log = (try? String(contentsOf: directory.appendingPathComponent("\(entry.name).log"), encoding: .utf8)) ?? ""
                    throw ClusterError("cohortd \(entry.name) exited with status \(processes[index].terminationStatus): \(log)")
                }
                guard ContinuousClock.now < deadline else { throw ClusterError("cohortd \(entry.name) not ready within \(timeout)") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// A TCP port on 127.0.0.1 that is free right now, whose successor is free too (the peer
    /// port of a one-daemon cluster). Another process may take it before it is bound again.
    public static func freePortPair() throws -> Int {
        for _ in 0..<50 {
            let port = try boundPort(0)
            if port < 65535, (try? boundPort(port + 1)) != nil { return port }
        }
        throw ClusterError("no free pair of TCP ports found on 127.0.0.1")
    }

    private static func boundPort(_ port: Int) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClusterError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw ClusterError("port \(port) is in use") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// Whether every daemon process is still running.
    public var isRunning: Bool {
        lock.withLock { processes.allSatisfy(\.isRunning) }
    }

    /// Sends SIGTERM to every daemon and waits for them to exit (SIGKILL after 5 s).
    public func stop() async {
        let running = lock.withLock { () -> [Process] in
            defer { processes = [] }
            return processes
        }
        for process in running where process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(5)
        for process in running {
            while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }
}

/// A local cluster could not be started.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var description: String
    /// Creates an error.
    public init(_ description: String) { self.description = description }
}
