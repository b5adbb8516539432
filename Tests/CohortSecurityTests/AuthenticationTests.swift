import CohortCore
import CohortCrypto
import Testing
@testable import CohortSecurity

/// A users file with alice (password "wonderland") and bob ("builder"), at the minimum
/// iteration count so the tests stay fast.
let usersText: String = {
    var table = UserTable()
    try! table.set(SCRAM.Verifier(password: "wonderland", salt: Array("alice-salt-16byt".utf8), iterations: SCRAM.minimumIterations), for: "alice")
    try! table.set(SCRAM.Verifier(password: "builder", salt: Array("bob-salt-16bytes".utf8), iterations: SCRAM.minimumIterations), for: "bob")
    return table.text
}()

func passwordMethods(_ text: String = usersText, secret: UInt8 = 7) -> [any AuthenticationMethod] {
    try! AuthenticationMethods.make(["password"], usersFileText: text, nonceSecret: [UInt8](repeating: secret, count: 32))
}

/// Drives a daemon core through handshakes and records what it answers.
struct AuthHarness {
    var core: DaemonCore
    var now = Instant(nanoseconds: 1_000_000_000)
    var frames: [SessionID: [DaemonFrame]] = [:]
    var closed: Set<SessionID> = []
    var authenticated: [(SessionID, Principal)] = []
    var failures: [(SessionID, AuthenticationRefusal)] = []

    init(methods: [any AuthenticationMethod] = passwordMethods(), throttle: AuthenticationThrottle.Settings = .init()) {
        var settings = DaemonCore.Settings(daemonName: "d1")
        settings.throttle = throttle
        core = try! DaemonCore(settings: settings, authentication: methods)
        _ = core.on(.start, now: now)
    }

    mutating func feed(_ event: DaemonCore.Event) {
        for action in core.on(event, now: now) {
            switch action {
            case .send(let frame, let session): frames[session, default: []].append(frame)
            case .close(let session, _, _): closed.insert(session)
            case .authenticated(let session, let principal, _, _): authenticated.append((session, principal))
            case .authenticationFailed(let session, _, let refusal, _): failures.append((session, refusal))
            default: break
            }
        }
    }

    /// The last frame `session` received.
    func last(_ session: SessionID) -> DaemonFrame? { frames[session]?.last }

    /// Runs a whole handshake with `client`; returns the accept, or the reject's code.
    mutating func handshake(
        _ number: UInt64, name: String, client: some ClientAuthenticator, source: String = "10.0.0.1"
    ) -> Result<ConnectAccept, HandshakeFailure> {
        var client = client
        let session = SessionID(number)
        feed(.sessionOpened(session, .test(source)))
        feed(.frame(session, .connect(ConnectRequest(privateName: name, authMethod: client.method, authData: client.firstMessage()))))
        while true {
            switch last(session) {
            case .authChallenge(_, let challenge)?:
                do {
                    feed(.frame(session, .authResponse(try client.respond(to: challenge))))
                } catch {
                    return .failure(.client(error.reason))
                }
            case .accept(let accept)?:
                do {
                    try client.finish(accept.authData)
                } catch {
                    return .failure(.client(error.reason))
                }
                return .success(accept)
            case .reject(let code, _)?:
                return .failure(.rejected(code))
            default:
                return .failure(.client("no answer"))
            }
        }
    }
}

enum HandshakeFailure: Error, Equatable {
    case rejected(ErrorCode)
    case client(String)
}

func client(_ user: String, _ password: String, nonce: UInt8 = 1) -> PasswordClientAuthenticator {
    PasswordClientAuthenticator(user: user, password: password, nonce: [UInt8](repeating: nonce, count: 18))
}

@Suite("Authentication: method password (SCRAM-SHA-256) in the daemon core")
struct PasswordAuthenticationTests {
    @Test("the right password establishes a session as that principal, and the client verifies the daemon")
    func success() throws {
        var harness = AuthHarness()
        let accept = try harness.handshake(1, name: "a1", client: client("alice", "wonderland")).get()
        #expect(accept.principal == Principal("alice"))
        #expect(harness.core.principal(of: SessionID(1)) == Principal("alice"))
        #expect(harness.core.establishedSessionCount == 1)
        #expect(harness.authenticated.map(\.1) == [Principal("alice")])
        #expect(harness.failures.isEmpty)
    }

    @Test("a wrong password and an unknown user get the same reject; the log tells them apart")
    func wrongPasswordAndUnknownUser() {
        var harness = AuthHarness()
        #expect(harness.handshake(1, name: "a1", client: client("alice", "looking-glass")) == .failure(.rejected(.authFailed)))
        #expect(harness.handshake(2, name: "a2", client: client("mallory", "guess")) == .failure(.rejected(.authFailed)))
        guard case .reject(_, let wrongReason)? = harness.last(SessionID(1)),
              case .reject(_, let unknownReason)? = harness.last(SessionID(2))
        else { Issue.record("no rejects"); return }
        #expect(wrongReason == unknownReason)
        #expect(harness.failures.map(\.1.label) == ["wrong_password", "unknown_user"])
        #expect(harness.core.establishedSessionCount == 0)
        #expect(harness.closed == [SessionID(1), SessionID(2)])
        #expect(harness.core.table.groups.isEmpty)
    }

    @Test("an unknown user is answered with a salt that does not change between attempts")
    func stableDecoySalt() {
        var harness = AuthHarness()
        var salts: [String] = []
        for number in UInt64(1)...2 {
            var scram = client("mallory", "x", nonce: UInt8(number))
            harness.feed(.sessionOpened(SessionID(number), .test()))
            harness.feed(.frame(SessionID(number), .connect(ConnectRequest(
                privateName: "m\(number)", authMethod: "password", authData: scram.firstMessage()))))
            guard case .authChallenge(_, let challenge)? = harness.last(SessionID(number)) else { Issue.record("no challenge"); return }
            salts.append(String(decoding: challenge, as: UTF8.self).split(separator: ",")[1].description)
        }
        #expect(salts[0] == salts[1])
        #expect(salts[0].hasPrefix("s="))
    }

    @Test("garbage in the handshake gets its own reject and creates nothing", arguments: [
        Array("not scram at all".utf8), Array("p=tls-unique,,n=alice,r=abc".utf8), [0xFF, 0xFE], [],
    ])
    func garbageFirstMessage(data: [UInt8]) {
        var harness = AuthHarness()
        harness.feed(.sessionOpened(SessionID(1), .test()))
        harness.feed(.frame(SessionID(1), .connect(ConnectRequest(privateName: "g", authMethod: "password", authData: data))))
        guard case .reject(.authMalformed, _)? = harness.last(SessionID(1)) else { Issue.record("no authMalformed reject"); return }
        #expect(harness.core.establishedSessionCount == 0)
        #expect(harness.failures.map(\.1.label) == ["malformed"])
    }

    @Test("a garbage or out-of-turn response is rejected")
    func garbageResponse() {
        for frame in [ClientFrame.authResponse(Array("c=biws,r=wrong,p=AAAA".utf8)), .join(try! GroupName("g")), .authResponse([0xC0])] {
            var harness = AuthHarness()
            var scram = client("alice", "wonderland")
            harness.feed(.sessionOpened(SessionID(1), .test()))
            harness.feed(.frame(SessionID(1), .connect(ConnectRequest(privateName: "a", authMethod: "password", authData: scram.firstMessage()))))
            harness.feed(.frame(SessionID(1), frame))
            guard case .reject(.authMalformed, _)? = harness.last(SessionID(1)) else { Issue.record("no reject for \(frame)"); continue }
            #expect(harness.core.establishedSessionCount == 0)
        }
    }

    @Test("a replayed client-final message does not authenticate a new exchange")
    func replay() throws {
        var harness = AuthHarness()
        // Record a good exchange's client-final message.
        var scram = client("alice", "wonderland")
        harness.feed(.sessionOpened(SessionID(1), .test()))
        harness.feed(.frame(SessionID(1), .connect(ConnectRequest(privateName: "a", authMethod: "password", authData: scram.firstMessage()))))
        guard case .authChallenge(_, let challenge)? = harness.last(SessionID(1)) else { Issue.record("no challenge"); return }
        let clientFinal = try scram.respond(to: challenge)
        harness.feed(.frame(SessionID(1), .authResponse(clientFinal)))
        guard case .accept? = harness.last(SessionID(1)) else { Issue.record("first exchange failed"); return }
        // Replay both messages on a new session: the daemon's nonce differs, so it fails.
        var replayed = client("alice", "whatever")
        harness.feed(.sessionOpened(SessionID(2), .test()))
        harness.feed(.frame(SessionID(2), .connect(ConnectRequest(privateName: "b", authMethod: "password", authData: replayed.firstMessage()))))
        harness.feed(.frame(SessionID(2), .authResponse(clientFinal)))
        guard case .reject(let code, _)? = harness.last(SessionID(2)) else { Issue.record("replay accepted"); return }
        #expect(code == .authMalformed)  // the nonce no longer matches
        #expect(harness.core.member(of: SessionID(2)) == nil)
    }

    @Test("a method the daemon does not offer is rejected before anything runs")
    func notOffered() {
        var harness = AuthHarness()
        #expect(harness.handshake(1, name: "n", client: NoDataClientAuthenticator()) == .failure(.rejected(.authMethodNotOffered)))
        #expect(harness.failures.isEmpty)
    }

    @Test("a handshake that stalls in the middle of an exchange times out")
    func stalled() {
        var harness = AuthHarness()
        var scram = client("alice", "wonderland")
        harness.feed(.sessionOpened(SessionID(1), .test()))
        harness.feed(.frame(SessionID(1), .connect(ConnectRequest(privateName: "a", authMethod: "password", authData: scram.firstMessage()))))
        harness.now = harness.now.advanced(by: .seconds(10))
        harness.feed(.timerFired(.handshake(SessionID(1))))
        guard case .reject(.handshakeTimeout, _)? = harness.last(SessionID(1)) else { Issue.record("no timeout"); return }
        #expect(harness.core.establishedSessionCount == 0)
    }

    @Test("the client refuses a daemon that cannot prove it holds the verifier")
    func impostorDaemon() {
        // The impostor's users file has alice with another password: it cannot compute the
        // server signature the real verifier gives.
        var impostorTable = UserTable()
        try! impostorTable.set(SCRAM.Verifier(password: "other", salt: Array("alice-salt-16byt".utf8), iterations: 4096), for: "alice")
        var harness = AuthHarness(methods: passwordMethods(impostorTable.text))
        let result = harness.handshake(1, name: "a", client: client("alice", "wonderland"))
        // The impostor cannot verify alice's proof either: the exchange fails on its side first.
        #expect(result == .failure(.rejected(.authFailed)))
        var scram = client("alice", "wonderland")
        _ = scram.firstMessage()
        #expect(throws: ClientAuthenticationError.self) { try scram.finish(Array("v=AAAA".utf8)) }
    }

    @Test("a reload takes effect for new handshakes; an exchange under way finishes with the old table")
    func reload() throws {
        var harness = AuthHarness()
        var carol = UserTable()
        try carol.set(SCRAM.Verifier(password: "c", salt: Array("carol-salt-16byt".utf8), iterations: 4096), for: "carol")
        // Alice starts under the old table...
        var alice = client("alice", "wonderland")
        harness.feed(.sessionOpened(SessionID(1), .test()))
        harness.feed(.frame(SessionID(1), .connect(ConnectRequest(privateName: "a", authMethod: "password", authData: alice.firstMessage()))))
        guard case .authChallenge(_, let challenge)? = harness.last(SessionID(1)) else { Issue.record("no challenge"); return }
        // ...the table is replaced by one with carol alone...
        harness.feed(.authenticationMethodsChanged(passwordMethods(carol.text, secret: 9)))
        // ...alice still completes, carol can now log in, and a new alice cannot.
        harness.feed(.frame(SessionID(1), .authResponse(try alice.respond(to: challenge))))
        guard case .accept? = harness.last(SessionID(1)) else { Issue.record("exchange under way failed"); return }
        #expect(try harness.handshake(2, name: "c", client: client("carol", "c")).get().principal == Principal("carol"))
        #expect(harness.handshake(3, name: "a3", client: client("alice", "wonderland")) == .failure(.rejected(.authFailed)))
    }

    @Test("the name is checked again when a long exchange completes")
    func nameTakenDuringExchange() {
        var harness = AuthHarness(methods: passwordMethods() + [NoAuthentication()])
        var alice = client("alice", "wonderland")
        harness.feed(.sessionOpened(SessionID(1), .test()))
        harness.feed(.frame(SessionID(1), .connect(ConnectRequest(privateName: "same", authMethod: "password", authData: alice.firstMessage()))))
        guard case .authChallenge(_, let challenge)? = harness.last(SessionID(1)) else { Issue.record("no challenge"); return }
        _ = harness.handshake(2, name: "same", client: NoDataClientAuthenticator())
        harness.feed(.frame(SessionID(1), .authResponse(try! alice.respond(to: challenge))))
        guard case .reject(.duplicatePrivateName, _)? = harness.last(SessionID(1)) else { Issue.record("no reject"); return }
        #expect(harness.core.principal(of: SessionID(2)) == .anonymous)
    }
}

@Suite("Authentication: throttling repeated failures")
struct ThrottleTests {
    @Test("after the burst of failures a source is refused until a token comes back; other sources are not")
    func burstThenRefill() {
        var settings = AuthenticationThrottle.Settings()
        settings.failuresBurst = 3
        settings.refillInterval = .seconds(2)
        var harness = AuthHarness(throttle: settings)
        for number in UInt64(1)...3 {
            #expect(harness.handshake(number, name: "x\(number)", client: client("alice", "bad")) == .failure(.rejected(.authFailed)))
        }
        // The fourth attempt, even with the right password, is throttled without running SCRAM.
        #expect(harness.handshake(4, name: "x4", client: client("alice", "wonderland")) == .failure(.rejected(.authThrottled)))
        guard case .reject(_, let reason)? = harness.last(SessionID(4)) else { return }
        #expect(reason.contains("retry in 2 s"))
        #expect(harness.failures.count == 3)
        // Another source is unaffected.
        #expect((try? harness.handshake(5, name: "y", client: client("alice", "wonderland"), source: "10.0.0.2").get()) != nil)
        // One refill interval later, one attempt is allowed.
        harness.now = harness.now.advanced(by: .seconds(2))
        #expect((try? harness.handshake(6, name: "z", client: client("alice", "wonderland")).get()) != nil)
    }

    @Test("the token bucket: burst, refill, memory bound")
    func bucket() {
        var settings = AuthenticationThrottle.Settings()
        settings.failuresBurst = 2
        settings.refillInterval = .seconds(1)
        settings.sourcesMax = 3
        var throttle = AuthenticationThrottle(settings: settings)
        let start = Instant(nanoseconds: 5_000_000_000)
        #expect(throttle.wait(for: "a", now: start) == nil)
        throttle.recordFailure(of: "a", now: start)
        #expect(throttle.wait(for: "a", now: start) == nil)
        throttle.recordFailure(of: "a", now: start)
        #expect(throttle.wait(for: "a", now: start) == .seconds(1))
        #expect(throttle.wait(for: "a", now: start.advanced(by: .milliseconds(400))) == .milliseconds(600))
        #expect(throttle.wait(for: "a", now: start.advanced(by: .seconds(1))) == nil)
        // Fully refilled sources are forgotten.
        #expect(throttle.wait(for: "a", now: start.advanced(by: .seconds(3))) == nil)
        #expect(throttle.trackedSourceCount == 0)
        // At most sourcesMax sources are remembered: the oldest goes first.
        for (offset, source) in ["p", "q", "r", "s"].enumerated() {
            throttle.recordFailure(of: source, now: start.advanced(by: .milliseconds(Int64(offset))))
        }
        #expect(throttle.trackedSourceCount == 3)
    }
}

@Suite("Authentication: users file")
struct UserTableTests {
    @Test("a users file survives writing and reading back")
    func roundTrip() throws {
        let table = try UserTable(parsing: usersText)
        #expect(Set(table.verifiers.keys) == ["alice", "bob"])
        #expect(try UserTable(parsing: table.text) == table)
    }

    @Test("a bad line is reported with its number", arguments: [
        ("alice", 2, "NAME:VERIFIER"),
        ("alice:SCRAM-SHA-256$1:AAAA$AAAA:AAAA", 2, "verifier"),
        ("bad name:SCRAM-SHA-256$4096:AAAA$AAAA:AAAA", 2, "white space"),
        (":SCRAM-SHA-256$4096:AAAA$AAAA:AAAA", 2, "empty user name"),
    ])
    func badLine(line: String, number: Int, mentions: String) {
        let text = "# users\n" + line + "\n"
        #expect {
            try UserTable(parsing: text)
        } throws: { error in
            guard let error = error as? UserTableError else { return false }
            return error.line == number && error.description.contains(mentions)
        }
    }

    @Test("a user listed twice or with too few iterations is refused")
    func duplicatesAndWeakVerifiers() throws {
        let line = usersText.split(separator: "\n")[1]
        #expect(throws: UserTableError.self) { try UserTable(parsing: "\(line)\n\(line)\n") }
        let weak = try SCRAM.Verifier(password: "p", salt: [1, 2, 3, 4], iterations: 1000)
        #expect(throws: UserTableError.self) { try UserTable(parsing: "weak:\(weak.encoded)\n") }
    }

    @Test("the registry refuses unknown methods, duplicates, and password without a users file")
    func registry() {
        let secret = [UInt8](repeating: 1, count: 32)
        #expect(throws: AuthenticationSetupError.self) { try AuthenticationMethods.make(["kerberos"], usersFileText: nil, nonceSecret: secret) }
        #expect(throws: AuthenticationSetupError.self) { try AuthenticationMethods.make(["none", "none"], usersFileText: nil, nonceSecret: secret) }
        #expect(throws: AuthenticationSetupError.self) { try AuthenticationMethods.make(["password"], usersFileText: nil, nonceSecret: secret) }
        #expect(throws: AuthenticationSetupError.self) { try AuthenticationMethods.make([], usersFileText: nil, nonceSecret: secret) }
        #expect((try? AuthenticationMethods.make(["password", "none"], usersFileText: usersText, nonceSecret: secret))?.map(\.name) == ["password", "none"])
    }
}

@Suite("Authentication: method peer-credentials")
struct PeerCredentialsTests {
    func answer(to origin: ClientOrigin) -> DaemonFrame? {
        var harness = AuthHarness(methods: [PeerCredentialsAuthentication()])
        harness.feed(.sessionOpened(SessionID(1), origin))
        harness.feed(.frame(SessionID(1), .connect(ConnectRequest(privateName: "p", authMethod: "peer-credentials"))))
        return harness.last(SessionID(1))
    }

    @Test("a local client is the user its process runs as; a uid without a name is uid:N")
    func localUsers() {
        let alice = PeerCredentials(uid: 1000, gid: 1000, pid: 42, userName: "alice")
        guard case .accept(let accept)? = answer(to: ClientOrigin(source: "unix:1000", address: "unix", peerCredentials: alice)) else {
            Issue.record("no accept"); return
        }
        #expect(accept.principal == Principal("alice"))
        let nameless = PeerCredentials(uid: 4242, gid: 4242, pid: 7)
        guard case .accept(let other)? = answer(to: ClientOrigin(source: "unix:4242", address: "unix", peerCredentials: nameless)) else {
            Issue.record("no accept"); return
        }
        #expect(other.principal == Principal("uid:4242"))
    }

    @Test("a client without peer credentials (TCP) is refused")
    func tcpRefused() {
        guard case .reject(.authFailed, let reason)? = answer(to: .test("10.1.1.1")) else { Issue.record("no reject"); return }
        #expect(reason.contains("Unix socket"))
    }
}

@Suite("Authentication: fuzzing the daemon's side")
struct AuthenticationFuzzTests {
    @Test("random and mutated client messages never trap, never authenticate, and create no session")
    func fuzz() throws {
        var random = SeededRandom(seed: 0xA17)
        // A genuine first message and response, to mutate.
        var scram = client("alice", "wonderland")
        let first = scram.firstMessage()
        var probe = AuthHarness()
        probe.feed(.sessionOpened(SessionID(1), .test()))
        probe.feed(.frame(SessionID(1), .connect(ConnectRequest(privateName: "p", authMethod: "password", authData: first))))
        guard case .authChallenge(_, let challenge)? = probe.last(SessionID(1)) else { Issue.record("no challenge"); return }
        let response = try scram.respond(to: challenge)

        /// `original` changed at random (never left as it was).
        func mutated(_ original: [UInt8]) -> [UInt8] {
            var bytes = original
            while bytes == original { bytes = mutation(of: original) }
            return bytes
        }
        func mutation(of original: [UInt8]) -> [UInt8] {
            var bytes = original
            switch random.next() % 4 {
            case 0: return (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1: if !bytes.isEmpty { bytes[Int(random.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1) }
            case 2: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count + 1))))
            default: bytes += (0..<Int(random.next() % 8)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            }
            return bytes
        }
        var harness = AuthHarness(throttle: {
            var settings = AuthenticationThrottle.Settings()
            settings.failuresBurst = 1_000_000
            return settings
        }())
        for round in UInt64(1)...3000 {
            let session = SessionID(round)
            harness.feed(.sessionOpened(session, .test()))
            let mutateFirst = round % 2 == 0
            harness.feed(.frame(session, .connect(ConnectRequest(
                privateName: "f\(round)", authMethod: "password", authData: mutateFirst ? mutated(first) : first))))
            if case .authChallenge? = harness.last(session) {
                harness.feed(.frame(session, .authResponse(mutateFirst ? response : mutated(response))))
            }
            if case .accept? = harness.last(session) { Issue.record("round \(round) authenticated with mutated input") }
        }
        #expect(harness.core.establishedSessionCount == 0)
        #expect(harness.authenticated.isEmpty)
    }
}

@Suite("Authentication: several methods required")
struct RequiredMethodsTests {
    func handshake(peer: PeerCredentials?) -> Result<ConnectAccept, HandshakeFailure> {
        var settings = DaemonCore.Settings(daemonName: "d1")
        settings.requiredAuthMethods = ["peer-credentials"]
        var harness = AuthHarness(methods: passwordMethods() + [PeerCredentialsAuthentication()])
        harness.core = try! DaemonCore(
            settings: settings, authentication: passwordMethods() + [PeerCredentialsAuthentication()])
        _ = harness.core.on(.start, now: harness.now)
        var scram = client("alice", "wonderland")
        let session = SessionID(1)
        harness.feed(.sessionOpened(session, ClientOrigin(source: "unix", address: "unix", peerCredentials: peer)))
        harness.feed(.frame(session, .connect(ConnectRequest(privateName: "a", authMethod: "password", authData: scram.firstMessage()))))
        guard case .authChallenge(_, let challenge)? = harness.last(session) else { return .failure(.client("no challenge")) }
        harness.feed(.frame(session, .authResponse(try! scram.respond(to: challenge))))
        switch harness.last(session) {
        case .accept(let accept)?: return .success(accept)
        case .reject(let code, _)?: return .failure(.rejected(code))
        default: return .failure(.client("no answer"))
        }
    }

    @Test("a password and the local user must name the same principal")
    func passwordAndPeer() {
        #expect((try? handshake(peer: PeerCredentials(uid: 1, gid: 1, pid: 1, userName: "alice")).get())?.principal == Principal("alice"))
        #expect(handshake(peer: PeerCredentials(uid: 2, gid: 2, pid: 2, userName: "bob")) == .failure(.rejected(.authFailed)))
        #expect(handshake(peer: nil) == .failure(.rejected(.authFailed)))
    }

    @Test("a required method must be offered")
    func notOffered() {
        var settings = DaemonCore.Settings(daemonName: "d1")
        settings.requiredAuthMethods = ["certificate"]
        #expect(throws: WireError.self) { try DaemonCore(settings: settings, authentication: passwordMethods()) }
    }
}
