import CohortCore
@testable import CohortCrypto
import Testing

@Suite("SCRAM-SHA-256 (RFC 5802, RFC 7677)")
struct SCRAMTests {
    // RFC 7677 §3: user "user", password "pencil".
    static let clientNonce = "rOprNGfwEbeRWgbNEkqO"
    static let serverNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    static let serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    static let clientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    static let serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    static let salt: [UInt8] = [0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81]
    static let decoy = [UInt8](repeating: 9, count: 32)

    static func verifier(_ password: String = "pencil") throws -> SCRAM.Verifier {
        try SCRAM.Verifier(password: password, salt: salt, iterations: 4096)
    }

    @Test("the client's messages are RFC 7677's test vector")
    func clientVector() throws {
        var client = SCRAM.Client(username: "user", password: "pencil", nonce: Self.clientNonce)
        #expect(client.firstMessage() == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        #expect(try client.finalMessage(answering: Self.serverFirst) == Self.clientFinal)
        try client.verify(serverFinal: Self.serverFinal)
    }

    @Test("the server's messages are RFC 7677's test vector, from the stored verifier alone")
    func serverVector() throws {
        let verifier = try Self.verifier()
        var server = SCRAM.Server(nonce: Self.serverNonce, decoySecret: Self.decoy)
        #expect(try server.firstMessage(answering: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO") { $0 == "user" ? verifier : nil } == Self.serverFirst)
        #expect(server.authenticatedUser == nil)
        #expect(try server.finalMessage(answering: Self.clientFinal) == Self.serverFinal)
        #expect(server.authenticatedUser == "user")
    }

    @Test("a wrong password and an unknown user fail alike, and the salt does not tell them apart")
    func wrongPasswordUnknownUser() throws {
        let verifier = try Self.verifier()
        func exchange(user: String, password: String) throws -> (serverFirst: String, result: Result<String, SCRAM.Failure>) {
            var client = SCRAM.Client(username: user, password: password, nonce: "clientnonce")
            var server = SCRAM.Server(nonce: "servernonce", decoySecret: Self.decoy)
            let serverFirst = try server.firstMessage(answering: client.firstMessage()) { $0 == "user" ? verifier : nil }
            let final = try client.finalMessage(answering: serverFirst)
            do { return (serverFirst, .success(try server.finalMessage(answering: final))) } catch let failure as SCRAM.Failure { return (serverFirst, .failure(failure)) }
        }
        #expect(try exchange(user: "user", password: "pencil").result == .success(exchange(user: "user", password: "pencil").result.get()))
        #expect(try exchange(user: "user", password: "pen").result == .failure(.authenticationFailed))
        let stranger = try exchange(user: "mallory", password: "pencil")
        #expect(stranger.result == .failure(.authenticationFailed))
        // The decoy salt is stable per name and looks like any other.
        #expect(try exchange(user: "mallory", password: "x").serverFirst == stranger.serverFirst)
        #expect(try exchange(user: "eve", password: "x").serverFirst != stranger.serverFirst)
    }

    @Test("a recorded client-final does not authenticate a later exchange (fresh server nonce)")
    func replay() throws {
        let verifier = try Self.verifier()
        var server = SCRAM.Server(nonce: "another-server-nonce", decoySecret: Self.decoy)
        _ = try server.firstMessage(answering: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO") { _ in verifier }
        #expect(throws: SCRAM.Failure.nonceMismatch) { try server.finalMessage(answering: Self.clientFinal) }
        #expect(server.authenticatedUser == nil)
    }

    @Test("a server without the verifier is caught by the client; weak parameters are refused")
    func serverAuthentication() throws {
        var client = SCRAM.Client(username: "user", password: "pencil", nonce: Self.clientNonce)
        _ = client.firstMessage()
        _ = try client.finalMessage(answering: Self.serverFirst)
        #expect(throws: SCRAM.Failure.serverNotAuthenticated) { try client.verify(serverFinal: "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") }

        var weak = SCRAM.Client(username: "user", password: "pencil", nonce: Self.clientNonce)
        _ = weak.firstMessage()
        #expect(throws: SCRAM.Failure.weakParameters(iterations: 1)) {
            try weak.finalMessage(answering: "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1")
        }
        var other = SCRAM.Client(username: "user", password: "pencil", nonce: Self.clientNonce)
        _ = other.firstMessage()
        #expect(throws: SCRAM.Failure.nonceMismatch) { try other.finalMessage(answering: "r=somebodyelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") }
    }

    @Test("user names with = and , are escaped and come back whole")
    func escaping() throws {
        let verifier = try Self.verifier()
        var client = SCRAM.Client(username: "a=b,c", password: "pencil", nonce: "n1")
        var server = SCRAM.Server(nonce: "n2", decoySecret: Self.decoy)
        let first = client.firstMessage()
        #expect(first == "n,,n=a=3Db=2Cc,r=n1")
        let serverFirst = try server.firstMessage(answering: first) { $0 == "a=b,c" ? verifier : nil }
        try client.verify(serverFinal: try server.finalMessage(answering: try client.finalMessage(answering: serverFirst)))
        #expect(server.authenticatedUser == "a=b,c")
    }

    @Test("verifiers round-trip through their text form; bad ones are refused")
    func verifierText() throws {
        let verifier = try Self.verifier()
        #expect(verifier.encoded.hasPrefix("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"))
        #expect(try SCRAM.Verifier(encoded: verifier.encoded) == verifier)
        for bad in ["", "SCRAM-SHA-1$4096:AA==$AA==:AA==", "SCRAM-SHA-256$x:AA==$AA==:AA==", "SCRAM-SHA-256$4096:AA==$AA==", "SCRAM-SHA-256$4096:!!$AA==:AA=="] {
            #expect(throws: SCRAM.Failure.self) { try SCRAM.Verifier(encoded: bad) }
        }
    }

    @Test("malformed and out-of-turn messages get typed failures, and random input never crashes")
    func badInput() throws {
        let verifier = try Self.verifier()
        for bad in ["", "y,,n=user,r=x", "p=tls-unique,,n=user,r=x", "n,,r=x,n=user", "n,,n=,r=x", "n,,n=us=4er,r=x", "n,,n=user,r=a,b"] {
            var server = SCRAM.Server(nonce: "s", decoySecret: Self.decoy)
            #expect(throws: SCRAM.Failure.self) { try server.firstMessage(answering: bad) { _ in verifier } }
        }
        var server = SCRAM.Server(nonce: "s", decoySecret: Self.decoy)
        #expect(throws: SCRAM.Failure.unexpectedMessage) { try server.finalMessage(answering: Self.clientFinal) }
        var random = SeededRandom(seed: 7)
        let alphabet = Array("n,=rcpvsiy abc0123+/".utf8)
        for _ in 0..<2000 {
            let text = String(decoding: (0..<Int(random.next() % 60)).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }, as: UTF8.self)
            var server = SCRAM.Server(nonce: "s", decoySecret: Self.decoy)
            if (try? server.firstMessage(answering: text) { _ in verifier }) != nil {
                _ = try? server.finalMessage(answering: text)
            }
            var client = SCRAM.Client(username: "user", password: "pencil", nonce: "c")
            _ = client.firstMessage()
            _ = try? client.finalMessage(answering: text)
        }
    }
}
