import Cohort
public import CohortConfiguration
public import CohortCore
import CohortCrypto
public import CohortSecurity
public import CohortTransport
public import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Starts and stops real `cohortd` processes on loopback that form one server group, for
/// `cohort cluster`, `cohort demo`, the experiments and the end-to-end tests; and injects faults
/// into them: kill (SIGKILL) and restart a daemon, partition the daemons (each daemon drops the
/// protocol traffic of the others, `--fault-injection`) and heal.
public final class LocalCluster: @unchecked Sendable {
    /// One daemon of the cluster.
    public struct Member: Sendable {
        /// Daemon name.
        public var name: String
        /// TCP client address, `127.0.0.1:PORT`.
        public var clientAddress: String
        /// Unix socket client address, `unix:PATH`.
        public var socketAddress: String
        /// The port of its Prometheus endpoint (`http://127.0.0.1:PORT/metrics`), if it serves one.
        public var metricsPort: Int?
        /// The TCP client address, parsed.
        public var address: DaemonAddress { try! DaemonAddress(parsing: clientAddress) }
        /// The Unix socket address, parsed: served under every architecture (plain TCP is not
        /// under those that hand clients keys).
        public var localAddress: DaemonAddress { try! DaemonAddress(parsing: socketAddress) }
    }

    /// The daemons, in order.
    public let members: [Member]
    /// The architecture the daemons run (clients must run it too).
    public let architecture: Architecture
    /// The folder holding the configuration file and the daemons' logs.
    public let directory: URL
    private let configPath: URL
    private let executable: URL
    private let faultInjection: Bool
    // Guarded by `lock`: processes are started and stopped from any task.
    private var processes: [String: Process]
    private var stopped = false
    private let lock = NSLock()

    private init(members: [Member], architecture: Architecture, directory: URL, configPath: URL, executable: URL, faultInjection: Bool) {
        self.members = members
        self.architecture = architecture
        self.directory = directory
        self.configPath = configPath
        self.executable = executable
        self.faultInjection = faultInjection
        self.processes = [:]
    }

    /// Writes a configuration for `daemons` daemons on ports `basePort...` into `directory`
    /// (a fresh temporary folder when `nil`), starts one `cohortd` per daemon and returns once
    /// they form one configuration of all of them (or throws after `readyTimeout`).
    /// With `faultInjection`, the daemons accept ``partition(_:)`` and ``heal()``; with
    /// `metricsBasePort`, daemon i (from 0) serves its metrics on port `metricsBasePort + i`
    /// (``metrics(of:)``). `adjust` may change the configuration file's other settings (e.g. the
    /// daemons' key refresh policy) before it is written.
    public static func start(
        daemons: Int, basePort: Int, directory: URL? = nil, architecture: String = "plain",
        daemonExecutable: URL? = nil, logLevel: String = "notice", faultInjection: Bool = false,
        metricsBasePort: Int? = nil, membership: DaemonConfiguration.Membership = .init(), readyTimeout: Duration = .seconds(30),
        adjust: (inout DaemonConfiguration) -> Void = { _ in }
    ) async throws -> LocalCluster {
        guard (1...64).contains(daemons) else { throw ClusterError("a local cluster has 1 to 64 daemons, not \(daemons)") }
        let registered: Architecture
        do {
            registered = try Architecture.named(architecture)
        } catch {
            throw ClusterError(error.description)
        }
        let folder = directory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("cohort-cluster-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // Every daemon gets an Ed25519 key: the daemons of a local cluster authenticate each
        // other (docs/daemon-authentication.md), as a deployment should.
        var entries: [DaemonConfiguration.DaemonEntry] = []
        for index in 0..<daemons {
            let name = "d\(index + 1)"
            let key = SigningKey.generate()
            let keyPath = folder.appendingPathComponent("\(name).key").path
            do {
                try KeyFiles.write(key, privatePath: keyPath, publicPath: keyPath + ".pub")
            } catch {
                throw ClusterError("cannot write the key of \(name): \(error)")
            }
            entries.append(DaemonConfiguration.DaemonEntry(
                name: name, host: "127.0.0.1", daemonPort: basePort + 2 * index + 1,
                clientPort: basePort + 2 * index, socketPath: folder.appendingPathComponent("\(name).sock").path,
                publicKey: Data(key.publicKeyBytes).base64EncodedString(), privateKeyFile: keyPath))
        }
        var configuration = DaemonConfiguration(daemons: entries)
        configuration.architecture = architecture
        configuration.logLevel = logLevel
        configuration.membership = membership
        adjust(&configuration)
        do { try configuration.validate() } catch { throw ClusterError(error.description) }
        let configPath = folder.appendingPathComponent("cohort.yaml")
        try configuration.yaml().write(to: configPath, atomically: true, encoding: .utf8)

        let executable = daemonExecutable ?? Self.defaultDaemonExecutable()
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw ClusterError("cohortd not found at \(executable.path); build it with `swift build` or set COHORTD")
        }
        let cluster = LocalCluster(
            members: entries.enumerated().map { index, entry in
                Member(name: entry.name, clientAddress: "127.0.0.1:\(entry.clientPort!)", socketAddress: "unix:\(entry.socketPath!)",
                       metricsPort: metricsBasePort.map { $0 + index })
            },
            architecture: registered, directory: folder, configPath: configPath, executable: executable, faultInjection: faultInjection)
        do {
            for member in cluster.members { try cluster.launch(member.name) }
            try await cluster.waitUntilFormed(Set(cluster.members.map(\.name)), timeout: readyTimeout)
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

    /// The member named `name`.
    public func member(_ name: String) throws -> Member {
        guard let member = members.first(where: { $0.name == name }) else { throw ClusterError("no daemon \(name) in the cluster") }
        return member
    }

    // MARK: - Processes

    private func launch(_ name: String) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = [
            "--config", configPath.path, "--name", name,
            "--parent-pid", "\(ProcessInfo.processInfo.processIdentifier)",
        ] + (faultInjection ? ["--fault-injection"] : []) + (try member(name).metricsPort.map { ["--metrics-port", "\($0)"] } ?? [])
        let log = directory.appendingPathComponent("\(name).log")
        if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try lock.withLock {
            guard !stopped else { throw ClusterError("the cluster is stopped") }
            try process.run()
            processes[name] = process
        }
    }

    /// Kills daemon `name` with `signal` (SIGKILL: a crash) and waits for it to exit.
    public func kill(_ name: String, signal: Int32 = SIGKILL) async throws {
        _ = try member(name)
        guard let process = lock.withLock({ processes[name] }), process.isRunning else {
            throw ClusterError("daemon \(name) is not running")
        }
        Foundation.kill(process.processIdentifier, signal)
        while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
    }

    /// Starts daemon `name` again (a new incarnation) and waits until it accepts clients.
    public func restart(_ name: String, timeout: Duration = .seconds(20)) async throws {
        let member = try member(name)
        if let process = lock.withLock({ processes[name] }), process.isRunning { throw ClusterError("daemon \(name) is running") }
        try launch(name)
        let deadline = ContinuousClock.now + timeout
        while (try? await CohortClient.status(of: member.localAddress, architecture: architecture)) == nil {
            if pid(of: name) == nil { throw exited(name) }
            guard ContinuousClock.now < deadline else { throw ClusterError("daemon \(name) not ready within \(timeout)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The error for daemon `name` having exited: it names the daemon's log and quotes its last
    /// lines (a daemon that cannot start says why there, e.g. a port in use).
    private func exited(_ name: String) -> ClusterError {
        let log = directory.appendingPathComponent("\(name).log")
        let tail = (try? String(contentsOf: log, encoding: .utf8))
            .map { $0.split(separator: "\n").suffix(5).joined(separator: "\n") } ?? ""
        return ClusterError("daemon \(name) exited; its log is \(log.path)" + (tail.isEmpty ? "" : ", ending:\n\(tail)"))
    }

    /// Whether every daemon process is running.
    public var isRunning: Bool {
        lock.withLock { processes.count == members.count && processes.values.allSatisfy(\.isRunning) }
    }

    /// The process id of daemon `name`, if it is running.
    public func pid(of name: String) -> Int32? {
        lock.withLock { processes[name].flatMap { $0.isRunning ? $0.processIdentifier : nil } }
    }

    /// Names of the daemons whose process is running.
    public var running: [String] {
        lock.withLock { members.map(\.name).filter { processes[$0]?.isRunning ?? false } }
    }

    /// Sends SIGTERM to every daemon and waits for them to exit (SIGKILL after 5 s).
    public func stop() async {
        let running = lock.withLock { () -> [Process] in
            stopped = true
            defer { processes = [:] }
            return Array(processes.values)
        }
        for process in running where process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(5)
        for process in running {
            while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        }
    }

    // MARK: - Membership

    /// Daemon `name`'s status.
    public func status(of name: String) async throws -> DaemonStatus {
        try await CohortClient.status(of: try member(name).localAddress, architecture: architecture)
    }

    /// Daemon `name`'s metrics (the cluster was started with `metricsBasePort`).
    public func metrics(of name: String) async throws -> MetricsPage {
        guard let port = try member(name).metricsPort else { throw ClusterError("daemon \(name) serves no metrics: start the cluster with metricsBasePort") }
        return MetricsPage(text: try await Self.httpGet(host: "127.0.0.1", port: port, path: "/metrics"))
    }

    /// The body of `GET path` from the HTTP/1.1 server at `host:port`; throws unless it answers
    /// 200. For the daemons' metrics endpoints (which close the connection after the answer).
    public static func httpGet(host: String, port: Int, path: String) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let response = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"))
            var response = ByteBuffer()
            for try await var chunk in inbound { response.writeBuffer(&chunk) }
            return String(buffer: response)
        }
        guard let headEnd = response.range(of: "\r\n\r\n") else { throw ClusterError("no HTTP answer from \(host):\(port)") }
        guard response.hasPrefix("HTTP/1.1 200") else {
            throw ClusterError("GET \(path) from \(host):\(port): \(response.prefix { $0 != "\r" })")
        }
        return String(response[headEnd.upperBound...])
    }

    /// Waits until every daemon named in `component` is operational in one configuration of
    /// exactly those daemons.
    public func waitUntilFormed(_ component: Set<String>, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        var last = ""
        while true {
            var configurations: Set<String> = []
            var formed = true
            for name in component.sorted() {
                let status: DaemonStatus
                do {
                    status = try await self.status(of: name)
                } catch {
                    formed = false
                    last = "\(name) does not answer: \(error)"
                    break
                }
                let members = status.configurationMemberNames
                configurations.insert(status.configuration.description)
                if status.membershipState != "operational" || members != component {
                    formed = false
                    last = "\(name) is \(status.membershipState) in \(status.configuration) with \(members.sorted())"
                    break
                }
            }
            if formed, configurations.count == 1 { return }
            if formed { last = "daemons are in different configurations: \(configurations.sorted())" }
            if let name = component.sorted().first(where: { name in lock.withLock { !(processes[name]?.isRunning ?? false) } }) {
                throw exited(name)
            }
            guard ContinuousClock.now < deadline else {
                throw ClusterError("daemons \(component.sorted()) did not form one configuration within \(timeout): \(last)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Partitions the daemons into `components` (every daemon in exactly one): each daemon
    /// drops the protocol traffic of the daemons outside its component. Needs `faultInjection`.
    /// Asked over the Unix sockets, as ``status(of:)`` is: served under every architecture.
    public func partition(_ components: [Set<String>]) async throws {
        let all = Set(members.map(\.name))
        guard components.reduce(0, { $0 + $1.count }) == all.count, Set(components.flatMap { $0 }) == all else {
            throw ClusterError("a partition must name every daemon exactly once")
        }
        for component in components {
            for name in component.sorted() where lock.withLock({ processes[name]?.isRunning ?? false }) {
                _ = try await CohortClient.dropPeers(all.subtracting(component).sorted(), at: try member(name).localAddress, architecture: architecture)
            }
        }
    }

    /// Ends every partition.
    public func heal() async throws {
        for name in running {
            _ = try await CohortClient.dropPeers([], at: try member(name).localAddress, architecture: architecture)
        }
    }
}

/// A page of metrics in the Prometheus text format, as a daemon's `/metrics` serves it.
public struct MetricsPage: Sendable, CustomStringConvertible {
    /// The page.
    public var text: String

    /// Wraps a page.
    public init(text: String) { self.text = text }

    /// The value of the sample `name{labels}`, with `labels` as printed (`service="agreed"`), or
    /// of the sample `name` without labels when `labels` is nil; nil if the page has none.
    public func value(_ name: String, _ labels: String? = nil) -> Double? {
        let prefix = labels.map { "\(name){\($0)} " } ?? "\(name) "
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
    }

    public var description: String { text }
}

/// A local cluster could not be started or driven.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var description: String
    /// Creates an error.
    public init(_ description: String) { self.description = description }
}

extension LocalCluster {
    /// A TCP port on 127.0.0.1 that is free right now, with the `count - 1` ports after it free
    /// too (a cluster of n daemons uses 2n ports). The ports lie below the kernel's ephemeral
    /// range (`ip_local_port_range`), where no outgoing connection takes its port (a port that
    /// `bind(0)` hands out is in that range, and every daemon link dials from it).
    ///
    /// No two calls in one process return overlapping ranges (until the search has gone round
    /// the whole span), even when the ports of the first are not bound yet: each search starts
    /// just past the range the previous one returned — the first at a random point, so that
    /// processes searching at the same time are unlikely to meet. Another process may still
    /// take a port before its daemon binds it.
    public static func freePorts(_ count: Int = 2) throws -> Int {
        let ephemeralLow = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32768
        let low = 10_000
        let span = ephemeralLow - low
        guard count >= 1, count <= span else {
            throw ClusterError("no \(count) consecutive TCP ports below the ephemeral range (\(ephemeralLow)) and above \(low)")
        }
        return try portSearch.withLock { next in
            // Every start is tried once at most; one that would run past the span wraps to 0.
            var offset = next ?? Int.random(in: 0..<span)
            for _ in 0..<span {
                if offset + count > span { offset = 0 }
                if try (0..<count).allSatisfy({ try isFree(low + offset + $0) }) {
                    next = offset + count
                    return low + offset
                }
                offset += 1
            }
            throw ClusterError("no \(count) free consecutive TCP ports found on 127.0.0.1 between \(low) and \(ephemeralLow)")
        }
    }

    /// Where the next ``freePorts(_:)`` search starts, as an offset from its lowest port; nil
    /// before the first.
    private static let portSearch = Mutex<Int?>(nil)

    /// Whether a TCP socket can bind `port` on 127.0.0.1 right now.
    private static func isFree(_ port: Int) throws -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClusterError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        return withLoopbackAddress(port: port) { bind(fd, $0, $1) } == 0
    }

    /// Calls `body` with the socket address of 127.0.0.1:`port` and its length (for `bind`,
    /// `connect`).
    static func withLoopbackAddress<R>(port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}
