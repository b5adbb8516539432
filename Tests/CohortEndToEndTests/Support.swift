import Cohort
@testable import CohortCluster
import CohortCore
import CohortDaemon
import CohortTransport
import Foundation
import Logging

/// An in-process daemon on a free TCP port and a Unix socket in a fresh folder.
struct TestDaemon {
    let server: DaemonServer
    let directory: URL

    var tcp: DaemonAddress { .tcp(host: "127.0.0.1", port: server.clientPort!) }
    var unix: DaemonAddress { .unix(path: server.settings.socketPath!) }

    static func start(configure: (inout DaemonSettings) -> Void = { _ in }) async throws -> TestDaemon {
        let directory = try makeTemporaryFolder("cohort-test")
        var settings = DaemonSettings(name: "d1")
        settings.clientPort = 0
        settings.socketPath = directory.appendingPathComponent("d1.sock").path
        configure(&settings)
        var logger = Logger(label: "test.cohortd")
        logger.logLevel = .warning
        return TestDaemon(server: try await DaemonServer.start(settings: settings, logger: logger), directory: directory)
    }

    func stop() async {
        await server.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A new, empty folder under the temporary directory, named `prefix-` and a random suffix; the
/// caller removes it.
func makeTemporaryFolder(_ prefix: String) throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
}

/// Runs `body` with a daemon and always stops it.
func withDaemon<Result: Sendable>(
    configure: (inout DaemonSettings) -> Void = { _ in }, _ body: (TestDaemon) async throws -> Result
) async throws -> Result {
    let daemon = try await TestDaemon.start(configure: configure)
    do {
        let result = try await body(daemon)
        await daemon.stop()
        return result
    } catch {
        await daemon.stop()
        throw error
    }
}

extension CohortEvents.Iterator {
    /// The next view of `group` with exactly `count` members, skipping other events.
    mutating func view(of group: String, members count: Int) async throws -> GroupView {
        while let event = try await next() {
            if case .view(let view) = event, view.group.rawValue == group, view.members.count == count { return view }
        }
        throw CohortError.disconnected
    }

    /// The next `count` messages, skipping other events.
    mutating func messages(_ count: Int) async throws -> [DeliveredMessage] {
        var messages: [DeliveredMessage] = []
        while messages.count < count, let event = try await next() {
            if case .message(let message) = event { messages.append(message) }
        }
        return messages
    }
}

/// A blocking TCP client that speaks raw bytes, for feeding a daemon bad input.
final class RawClient {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let result = LocalCluster.withLoopbackAddress(port: port) { connect(fd, $0, $1) }
        guard result == 0 else { throw CohortError.connectFailed(address: "127.0.0.1:\(port)", reason: "errno \(errno)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Sets the receive buffer small so that a client that does not read fills up fast.
    func shrinkReceiveBuffer() {
        var size: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Reads text until the peer closes the connection (or 5 s pass).
    func readText() -> String {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            buffer += chunk[0..<count]
        }
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Reads frames until the daemon closes the connection (or 5 s pass).
    func readUntilClosed() -> (frames: [DaemonFrame], closed: Bool) {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var closed = false
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { closed = true; break }
            if count < 0 { break }
            buffer += chunk[0..<count]
        }
        var frames: [DaemonFrame] = []
        var offset = 0
        while buffer.count - offset >= 4 {
            let length = Int(buffer[offset]) << 24 | Int(buffer[offset + 1]) << 16 | Int(buffer[offset + 2]) << 8 | Int(buffer[offset + 3])
            guard buffer.count - offset - 4 >= length else { break }
            if let frame = try? DaemonFrame.decode(body: Array(buffer[(offset + 4)..<(offset + 4 + length)]), limits: Limits()) {
                frames.append(frame)
            }
            offset += 4 + length
        }
        return (frames, closed)
    }
}

/// Every byte that daemon processes read from and write to their sockets (daemon links and
/// client sockets alike), captured from outside by `strace` attached to them: the capture of
/// the end-to-end confidentiality tests, which cannot trust a tap inside the daemon.
final class SocketCapture {
    private let tracers: [Process]
    private let files: [URL]

    /// Whether `strace` is installed (tests that capture skip without it, and say so).
    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/strace") }

    /// Attaches to every thread of each of `pids` and returns once all are attached.
    init(pids: [Int32]) async throws {
        var tracers: [Process] = []
        var files: [URL] = []
        var logs: [URL] = []
        for pid in pids {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-capture-\(pid)-\(UUID().uuidString.prefix(8)).txt")
            let log = file.appendingPathExtension("err")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let tracer = Process()
            tracer.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
            tracer.arguments = ["-f", "-p", "\(pid)", "-o", file.path, "-xx", "-s", "1048576", "-e", "signal=none",
                                "-e", "trace=read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg,recvmmsg,sendmmsg"]
            tracer.standardError = try FileHandle(forWritingTo: log)
            tracer.standardOutput = FileHandle.nullDevice
            try tracer.run()
            tracers.append(tracer)
            files.append(file)
            logs.append(log)
        }
        self.tracers = tracers
        self.files = files
        defer { for log in logs { try? FileManager.default.removeItem(at: log) } }
        let deadline = ContinuousClock.now + .seconds(10)
        while !logs.allSatisfy({ ((try? String(contentsOf: $0, encoding: .utf8)) ?? "").contains("attached") }) {
            guard ContinuousClock.now < deadline, tracers.allSatisfy(\.isRunning) else {
                let reasons = logs.map { (try? String(contentsOf: $0, encoding: .utf8)) ?? "" }.joined(separator: "; ")
                discard()
                throw ClusterError("strace could not attach to the daemons: \(reasons)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Returns the bytes seen, as lowercase hex, one line per system call, once the traced
    /// processes have ended (stop them first): strace ends with its tracees, while a signal
    /// would not reach it, as it inherits a mask that blocks them from the test's threads.
    /// Kills a tracer that is still running after `timeout`.
    func bytes(timeout: Duration = .seconds(20)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while tracers.contains(where: \.isRunning), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        killTracers()
        var hex = ""
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            try? FileManager.default.removeItem(at: file)
            // `-xx` writes every byte of a buffer as \xNN.
            hex += text.replacingOccurrences(of: "\\x", with: "")
        }
        return hex
    }

    /// Kills the tracers and removes their files (for a test that ends early; nothing to do
    /// after ``bytes(timeout:)``).
    func discard() {
        killTracers()
        for file in files { try? FileManager.default.removeItem(at: file) }
    }

    /// SIGKILL, the one signal a tracer here does not block.
    private func killTracers() {
        for tracer in tracers where tracer.isRunning { kill(tracer.processIdentifier, SIGKILL) }
    }

    /// The windows of `width` bytes of `marker` that occur in `hex` (a capture of `stop()`).
    static func leaks(of marker: String, width: Int = 8, in hex: String) -> [String] {
        let bytes = Array(marker.utf8)
        return stride(from: 0, through: bytes.count - width, by: 1).compactMap { start in
            let window = bytes[start..<start + width]
            return hex.contains(window.map { String(format: "%02x", $0) }.joined()) ? String(decoding: window, as: UTF8.self) : nil
        }
    }
}
