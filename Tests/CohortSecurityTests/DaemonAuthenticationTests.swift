import CohortCore
import CohortCrypto
import Testing
@testable import CohortSecurity

@Suite("Daemon authentication: signed link hellos")
struct DaemonAuthenticationTests {
    let d1 = SigningKey.generate()
    let d2 = SigningKey.generate()
    let now: UInt64 = 1_800_000_000_000

    var keys: [String: [UInt8]] { ["d1": d1.publicKeyBytes, "d2": d2.publicKeyBytes] }

    /// d1's acceptor side.
    func acceptor() -> DaemonAuthentication { DaemonAuthentication(me: "d1", signingKey: d1, publicKeys: keys) }

    /// A hello d2 (or whoever holds `key`) sends to `to`.
    func hello(signedBy key: SigningKey?, to: String = "d1", at time: UInt64? = nil, nonce: UInt8 = 1, incarnation: UInt64 = 7) -> PeerLinkFrame.Hello {
        DaemonAuthentication(me: "d2", signingKey: key, publicKeys: keys)
            .hello(from: DaemonID(name: "d2", incarnation: incarnation), to: to, timeMilliseconds: time ?? now,
                   nonce: [UInt8](repeating: nonce, count: 16))
    }

    func refusal(_ hello: PeerLinkFrame.Hello, at time: UInt64? = nil) -> String? {
        var acceptor = acceptor()
        do {
            try acceptor.check(hello, nowMilliseconds: time ?? now)
            return nil
        } catch {
            return error.label
        }
    }

    @Test("a hello signed with the dialer's configured key is accepted, and survives encoding")
    func genuine() throws {
        let genuine = hello(signedBy: d2)
        #expect(genuine.signature.count == 64)
        #expect(refusal(genuine) == nil)
        guard case .hello(let decoded) = try PeerLinkFrame.decode(body: Array(PeerLinkFrame.hello(genuine).encoded().dropFirst(4))) else {
            Issue.record("not a hello"); return
        }
        #expect(decoded == genuine)
        #expect(refusal(decoded) == nil)
    }

    @Test("a rogue key, no signature, a changed field, another acceptor, a stale time: each refused")
    func forgeries() {
        let rogue = SigningKey.generate()
        #expect(refusal(hello(signedBy: rogue)) == "bad_signature")
        #expect(refusal(hello(signedBy: nil)) == "unsigned")
        var tampered = hello(signedBy: d2)
        tampered.daemon.incarnation += 1
        #expect(refusal(tampered) == "bad_signature")
        #expect(refusal(hello(signedBy: d2, to: "d3")) == "wrong_acceptor")
        #expect(refusal(hello(signedBy: d2, at: now - 61_000)) == "stale")
        #expect(refusal(hello(signedBy: d2, at: now + 61_000)) == "stale")
        #expect(refusal(hello(signedBy: d2, at: now - 59_000)) == nil)
        var stranger = hello(signedBy: d2)
        stranger.daemon.name = "d9"
        #expect(refusal(stranger) == "no_key")
    }

    @Test("a captured hello cannot be replayed within the window; an expired nonce is forgotten")
    func replay() throws {
        var acceptor = acceptor()
        let genuine = hello(signedBy: d2)
        try acceptor.check(genuine, nowMilliseconds: now)
        #expect(throws: DaemonAuthentication.Refusal.self) { try acceptor.check(genuine, nowMilliseconds: now + 1000) }
        try acceptor.check(hello(signedBy: d2, nonce: 2), nowMilliseconds: now + 1000)
        // After the window the old hello is stale anyway, and its nonce is forgotten.
        #expect(throws: DaemonAuthentication.Refusal.self) { try acceptor.check(genuine, nowMilliseconds: now + 70_000) }
        #expect(acceptor.rememberedNonceCount == 0)
    }

    @Test("without configured keys, hellos are unsigned and only names are checked (by the links)")
    func disabled() throws {
        var open = DaemonAuthentication(me: "d1", signingKey: nil, publicKeys: [:])
        #expect(!open.isEnabled)
        let unsigned = open.hello(from: DaemonID(name: "d2", incarnation: 1), to: "d1", timeMilliseconds: now, nonce: [UInt8](repeating: 0, count: 16))
        #expect(unsigned.signature.isEmpty)
        try open.check(unsigned, nowMilliseconds: now)
    }
}
