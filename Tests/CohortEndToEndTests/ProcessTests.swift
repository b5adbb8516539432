import CohortCluster
import CohortDaemon
import Foundation
import Testing

/// Runs the built executables as a user would: the CLI contract outside scripts rely on.
@Suite("Processes: cohortd and the cohort CLI", .serialized, .timeLimit(.minutes(3)))
struct ProcessTests {
    /// The folder holding the built products (next to the test bundle).
    static let products = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    static var cohort: URL { products.appendingPathComponent("cohort") }
    static var cohortd: URL { products.appendingPathComponent("cohortd") }

    struct Run {
        var status: Int32
        var output: String
        var errors: String
    }

    /// Starts a process with its output captured to files.
    static func launch(_ executable: URL, _ arguments: [String]) throws -> (Process, URL, URL) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let folder = FileManager.default.temporaryDirectory
        let out = folder.appendingPathComponent("cohort-test-\(UUID().uuidString).out")
        let err = folder.appendingPathComponent("cohort-test-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, out, err)
    }

    /// Waits for a launched process (killing it after `timeout`) and collects its output.
    static func finish(_ launched: (Process, URL, URL), timeout: Duration = .seconds(60)) async -> Run {
        let (process, out, err) = launched
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { process.terminate(); process.waitUntilExit() }
        defer {
            try? FileManager.default.removeItem(at: out)
            try? FileManager.default.removeItem(at: err)
        }
        return Run(status: process.terminationStatus,
                   output: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                   errors: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    static func run(_ executable: URL, _ arguments: [String], timeout: Duration = .seconds(60)) async throws -> Run {
        await finish(try launch(executable, arguments), timeout: timeout)
    }

    static func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test("cohort demo runs a cluster, checks the order and exits 0")
    func demo() async throws {
        let run = try await Self.run(Self.cohort, ["demo", "--clients", "3", "--messages", "300", "--size", "64"])
        #expect(run.status == 0, "\(run.output)\(run.errors)")
        #expect(run.output.contains("every client saw one total order:    yes"))
        #expect(run.output.contains("cluster stopped"))
    }

    @Test("listen --json, send and status --json against a cluster of real processes")
    func listenSendStatus() async throws {
        let port = try LocalCluster.freePorts(2)
        let cluster = try await LocalCluster.start(daemons: 1, basePort: port, daemonExecutable: Self.cohortd)
        defer { Task { await cluster.stop() } }
        let tcp = cluster.members[0].clientAddress
        let unix = cluster.members[0].socketAddress

        let listener = try Self.launch(Self.cohort, [
            "listen", "--daemon", tcp, "--name", "bob", "--group", "chat", "--count", "4", "--timeout", "30", "--json",
        ])
        // Wait until bob has joined.
        var joined = false
        for _ in 0..<200 where !joined {
            let status = try await Self.run(Self.cohort, ["status", "--daemon", unix, "--json"])
            let object = Self.jsonLines(status.output).first
            let groups = object?["groups"] as? [[String: Any]] ?? []
            joined = groups.contains { ($0["group"] as? String) == "chat" }
            if !joined { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(joined)

        let text = try await Self.run(Self.cohort, ["send", "--daemon", unix, "--name", "alice", "--group", "chat", "hello"])
        #expect(text.status == 0, "\(text.errors)")
        let numbered = try await Self.run(Self.cohort, [
            "send", "--daemon", tcp, "--name", "carol", "--group", "chat", "--service", "fifo", "--count", "3", "--size", "40",
        ])
        #expect(numbered.status == 0, "\(numbered.errors)")

        let listened = await Self.finish(listener)
        #expect(listened.status == 0, "\(listened.errors)")
        let lines = Self.jsonLines(listened.output)
        let views = lines.filter { $0["event"] as? String == "view" }
        let messages = lines.filter { $0["event"] as? String == "message" }
        #expect(views.first?["group"] as? String == "chat")
        #expect(views.first?["members"] as? [String] == ["#bob#d1"])
        #expect(views.first?["cause"] as? String == "join")
        #expect(views.first?["transitional"] as? Bool == false)
        #expect(views.first?["view_id"] is String)
        #expect(messages.count == 4)
        #expect(messages.first?["payload"] as? String == "hello")
        #expect(messages.first?["sender"] as? String == "#alice#d1")
        #expect(messages.first?["service"] as? String == "agreed")
        let payloads = messages.dropFirst().compactMap { $0["payload"] as? String }
        #expect(payloads.map { $0.prefix(8) } == ["carol:1:", "carol:2:", "carol:3:"])
        #expect(payloads.allSatisfy { $0.utf8.count == 40 })
        #expect(messages.dropFirst().allSatisfy { $0["service"] as? String == "fifo" })
    }

    @Test("flood reports its figures as JSON")
    func flood() async throws {
        let port = try LocalCluster.freePorts(2)
        let cluster = try await LocalCluster.start(daemons: 1, basePort: port, daemonExecutable: Self.cohortd)
        defer { Task { await cluster.stop() } }
        let run = try await Self.run(Self.cohort, [
            "flood", "--daemon", cluster.members[0].socketAddress, "--count", "2000", "--size", "512", "--json",
        ])
        #expect(run.status == 0, "\(run.errors)")
        let result = Self.jsonLines(run.output).first ?? [:]
        #expect(result["messages"] as? Int == 2000)
        #expect(result["bytes"] as? Int == 2000 * 512)
        #expect((result["msgs_per_second"] as? Double ?? 0) > 0)
        #expect((result["mb_per_second"] as? Double ?? 0) > 0)
        #expect((result["seconds"] as? Double ?? 0) > 0)
    }

    @Test("a write-only flood and a receive-only flood measure the same stream")
    func writeOnlyFlood() async throws {
        let port = try LocalCluster.freePorts(2)
        let cluster = try await LocalCluster.start(daemons: 1, basePort: port, daemonExecutable: Self.cohortd)
        defer { Task { await cluster.stop() } }
        let address = cluster.members[0].clientAddress
        let listener = try Self.launch(Self.cohort, [
            "flood", "--daemon", address, "--name", "listener", "--receive-only", "--count", "3000", "--size", "256", "--json",
        ])
        for _ in 0..<200 {
            let status = try await Self.run(Self.cohort, ["status", "--daemon", address, "--json"])
            if status.output.contains("#listener#d1") && status.output.contains("\"group\":\"flood\"") { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let sender = try await Self.run(Self.cohort, [
            "flood", "--daemon", address, "--write-only", "--count", "3000", "--size", "256", "--json",
        ])
        #expect(sender.status == 0, "\(sender.errors)")
        #expect(Self.jsonLines(sender.output).first?["mode"] as? String == "write-only")
        let received = await Self.finish(listener)
        #expect(received.status == 0, "\(received.errors)")
        #expect(Self.jsonLines(received.output).first?["messages"] as? Int == 3000)
    }

    @Test("cohort user: join, send, see the message and the view, show membership, quit")
    func interactiveUser() async throws {
        let port = try LocalCluster.freePorts(2)
        let cluster = try await LocalCluster.start(daemons: 1, basePort: port, daemonExecutable: Self.cohortd)
        defer { Task { await cluster.stop() } }
        let process = Process()
        process.executableURL = Self.cohort
        process.arguments = ["user", "--daemon", cluster.members[0].clientAddress, "--name", "ann"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let lines = ["j chat", "s chat hello there", "s! fifo chat in order", "m chat", "x", "h"]
        for line in lines {
            input.fileHandleForWriting.write(Data((line + "\n").utf8))
            try await Task.sleep(for: .milliseconds(150))
        }
        input.fileHandleForWriting.write(Data("q\n".utf8))
        let deadline = ContinuousClock.now + .seconds(20)
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { process.terminate() }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("connected as #ann#d1"))
        #expect(text.contains("[chat] #ann#d1 (agreed, type 0): hello there"), "\(text)")
        #expect(text.contains("[chat] #ann#d1 (fifo, type 0): in order"), "\(text)")
        #expect(text.contains("view chat"), "\(text)")
        #expect(text.contains("unknown command; h for help"))
        #expect(text.contains("j GROUP"), "help is printed")
    }

    @Test("cohortd refuses an unknown architecture and a bad configuration before binding")
    func startupErrors() async throws {
        let unknown = try await Self.run(Self.cohortd, ["--architecture", "nonsense", "--port", "0", "--no-socket"], timeout: .seconds(20))
        #expect(unknown.status != 0)
        #expect(unknown.errors.contains("unknown architecture 'nonsense'; available: plain"), "\(unknown.errors)")

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-bad-\(UUID().uuidString).yaml")
        try "daemons:\n  - name: d1\n    clientPort: 70000\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let bad = try await Self.run(Self.cohortd, ["--config", file.path, "--name", "d1"], timeout: .seconds(20))
        #expect(bad.status != 0)
        #expect(bad.errors.contains("port 70000 of daemon d1 is out of range"), "\(bad.errors)")

        let missing = try await Self.run(Self.cohortd, ["--config", file.path, "--name", "d9"], timeout: .seconds(20))
        #expect(missing.status != 0)

        // Daemon keys listed, but this daemon has no private key, or another one.
        let keyed = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-keyed-\(UUID().uuidString).yaml")
        let publicKey = Data(repeating: 7, count: 32).base64EncodedString()
        try "daemons:\n  - name: d1\n    clientPort: 0\n    publicKey: \(publicKey)\n".write(to: keyed, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: keyed) }
        let keyless = try await Self.run(Self.cohortd, ["--config", keyed.path, "--name", "d1", "--no-socket"], timeout: .seconds(20))
        #expect(keyless.status != 0)
        #expect(keyless.errors.contains("needs its privateKeyFile"), "\(keyless.errors)")
        let keyFile = keyed.path + ".key"
        let keygen = try await Self.run(Self.cohort, ["keygen", "--out", keyFile])
        defer { try? FileManager.default.removeItem(atPath: keyFile); try? FileManager.default.removeItem(atPath: keyFile + ".pub") }
        #expect(keygen.status == 0 && keygen.output.contains("publicKey: "), "\(keygen.errors)")
        try "daemons:\n  - name: d1\n    clientPort: 0\n    publicKey: \(publicKey)\n    privateKeyFile: \(keyFile)\n"
            .write(to: keyed, atomically: true, encoding: .utf8)
        let mismatched = try await Self.run(Self.cohortd, ["--config", keyed.path, "--name", "d1", "--no-socket"], timeout: .seconds(20))
        #expect(mismatched.status != 0)
        #expect(mismatched.errors.contains("does not match the publicKey listed for daemon d1"), "\(mismatched.errors)")
    }

    @Test("the CLI prints a readable error and exits non-zero when the daemon is absent or refuses")
    func clientErrors() async throws {
        let absent = try await Self.run(Self.cohort, ["send", "--daemon", "unix:/nonexistent/x.sock", "--group", "g", "hi"])
        #expect(absent.status != 0)
        #expect(absent.errors.contains("cannot connect to unix:/nonexistent/x.sock"), "\(absent.errors)")

        let badAddress = try await Self.run(Self.cohort, ["status", "--daemon", "nonsense"])
        #expect(badAddress.status != 0)
        #expect(badAddress.errors.contains("invalid daemon address 'nonsense'"), "\(badAddress.errors)")

        let badArchitecture = try await Self.run(Self.cohort, ["status", "--architecture", "layered"])
        #expect(badArchitecture.status != 0)
        #expect(badArchitecture.errors.contains("unknown architecture 'layered'"), "\(badArchitecture.errors)")
    }

    @Test("cohort passwd writes a users file; cohortd --auth password serves it, reloads it on SIGHUP; the CLI authenticates")
    func passwordAuthentication() async throws {
        let folder = try makeTemporaryFolder("cohort-passwd")
        defer { try? FileManager.default.removeItem(at: folder) }
        let users = folder.appendingPathComponent("users").path
        let alicePassword = folder.appendingPathComponent("alice.pw").path
        let wrongPassword = folder.appendingPathComponent("wrong.pw").path
        try "wonderland\n".write(toFile: alicePassword, atomically: true, encoding: .utf8)
        try "nope\n".write(toFile: wrongPassword, atomically: true, encoding: .utf8)

        let added = try await Self.run(Self.cohort, ["passwd", "--file", users, "alice", "--password-file", alicePassword, "--iterations", "4096"])
        #expect(added.status == 0, "\(added.errors)")
        let text = try String(contentsOfFile: users, encoding: .utf8)
        #expect(text.contains("alice:SCRAM-SHA-256$4096:"))
        #expect(!text.contains("wonderland"))
        let mode = try FileManager.default.attributesOfItem(atPath: users)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        let socket = folder.appendingPathComponent("d.sock").path
        let daemon = try Self.launch(Self.cohortd, ["--port", "0", "--socket", socket, "--auth", "password,peer-credentials", "--users", users])
        defer { if daemon.0.isRunning { daemon.0.terminate() } }
        let deadline = ContinuousClock.now + .seconds(20)
        while !FileManager.default.fileExists(atPath: socket), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }

        let good = try await Self.run(Self.cohort, ["status", "--daemon", "unix:\(socket)", "--user", "alice", "--password-file", alicePassword])
        #expect(good.status == 0, "\(good.errors)")
        let wrong = try await Self.run(Self.cohort, ["status", "--daemon", "unix:\(socket)", "--user", "alice", "--password-file", wrongPassword])
        #expect(wrong.status != 0)
        #expect(wrong.errors.contains("authentication failed"), "\(wrong.errors)")
        #expect(wrong.errors.contains("wrong user name or password"), "\(wrong.errors)")
        let anonymous = try await Self.run(Self.cohort, ["status", "--daemon", "unix:\(socket)"])
        #expect(anonymous.status != 0)
        #expect(anonymous.errors.contains("method none not offered"), "\(anonymous.errors)")
        let local = try await Self.run(Self.cohort, ["status", "--daemon", "unix:\(socket)", "--auth", "peer-credentials"])
        #expect(local.status == 0, "\(local.errors)")

        // bob is added and the daemon told with SIGHUP.
        let bob = try await Self.run(Self.cohort, ["passwd", "--file", users, "bob", "--password-file", wrongPassword, "--iterations", "4096"])
        #expect(bob.status == 0, "\(bob.errors)")
        kill(daemon.0.processIdentifier, SIGHUP)
        var bobStatus = Run(status: 1, output: "", errors: "")
        for _ in 0..<50 where bobStatus.status != 0 {
            try await Task.sleep(for: .milliseconds(100))
            bobStatus = try await Self.run(Self.cohort, ["status", "--daemon", "unix:\(socket)", "--user", "bob", "--password-file", wrongPassword])
        }
        #expect(bobStatus.status == 0, "\(bobStatus.errors)")
        daemon.0.terminate()
        let log = await Self.finish(daemon)
        #expect(log.errors.contains("authentication failed"), "the failure is in the daemon's audit log")
        #expect(log.errors.contains("reason=wrong_password"), "\(log.errors)")
        #expect(log.errors.contains("authentication reloaded"))
    }

    @Test("cohortd --policy: a denied send and a denied join make the CLI print the denial and exit non-zero")
    func accessDenied() async throws {
        let folder = try makeTemporaryFolder("cohort-policy")
        defer { try? FileManager.default.removeItem(at: folder) }
        let policy = folder.appendingPathComponent("policy.yaml").path
        try "default: allow\nrules:\n  - deny: [join, send]\n    principals: [anonymous]\n    groups: [board]\n"
            .write(toFile: policy, atomically: true, encoding: .utf8)
        let socket = folder.appendingPathComponent("d.sock").path
        let daemon = try Self.launch(Self.cohortd, ["--port", "0", "--socket", socket, "--policy", policy])
        defer { if daemon.0.isRunning { daemon.0.terminate() } }
        let deadline = ContinuousClock.now + .seconds(20)
        while !FileManager.default.fileExists(atPath: socket), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }

        let send = try await Self.run(Self.cohort, ["send", "--daemon", "unix:\(socket)", "--group", "board", "hi"])
        #expect(send.status != 0)
        #expect(send.errors.contains("send on group board denied for principal anonymous (rule 1)"), "\(send.errors)")
        let listen = try await Self.run(Self.cohort, ["listen", "--daemon", "unix:\(socket)", "--group", "board", "--timeout", "10"])
        #expect(listen.status != 0)
        #expect(listen.errors.contains("join on group board denied"), "\(listen.errors)")
        let allowed = try await Self.run(Self.cohort, ["send", "--daemon", "unix:\(socket)", "--group", "lobby", "hi"])
        #expect(allowed.status == 0, "\(allowed.errors)")
        daemon.0.terminate()
        let log = await Self.finish(daemon)
        #expect(log.errors.contains("audit=access"), "\(log.errors)")
    }

    @Test("cohort certs makes a CA and certificates; cohortd serves TLS clients; the CLI connects with a client certificate")
    func tls() async throws {
        let folder = try makeTemporaryFolder("cohort-certs")
        defer { try? FileManager.default.removeItem(at: folder) }
        let certs = try await Self.run(Self.cohort, ["certs", "--dir", folder.path, "--daemons", "d1", "--clients", "alice"])
        #expect(certs.status == 0, "\(certs.errors)")
        func file(_ name: String) -> String { folder.appendingPathComponent(name).path }
        let keyMode = try FileManager.default.attributesOfItem(atPath: file("alice.key"))[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        let socket = file("d.sock")
        let port = try LocalCluster.freePorts(1)
        let daemon = try Self.launch(Self.cohortd, [
            "--port", "0", "--socket", socket, "--auth", "certificate", "--tls-port", "\(port)",
            "--tls-cert", file("d1.crt"), "--tls-key", file("d1.key"), "--tls-client-ca", file("ca.crt"),
        ])
        defer { if daemon.0.isRunning { daemon.0.terminate() } }
        let deadline = ContinuousClock.now + .seconds(20)
        while !FileManager.default.fileExists(atPath: socket), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }

        let good = try await Self.run(Self.cohort, [
            "status", "--daemon", "127.0.0.1:\(port)", "--auth", "certificate",
            "--tls-ca", file("ca.crt"), "--tls-cert", file("alice.crt"), "--tls-key", file("alice.key"),
        ])
        #expect(good.status == 0, "\(good.errors)")
        let untrusted = try await Self.run(Self.cohort, [
            "status", "--daemon", "127.0.0.1:\(port)", "--auth", "certificate", "--tls-ca", file("alice.crt"),
        ])
        #expect(untrusted.status != 0)
        #expect(untrusted.errors.contains("TLS handshake failed"), "\(untrusted.errors)")
        daemon.0.terminate()
        _ = await Self.finish(daemon)
    }
}
