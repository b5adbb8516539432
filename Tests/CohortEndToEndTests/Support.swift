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
