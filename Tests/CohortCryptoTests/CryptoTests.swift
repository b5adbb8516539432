import CohortCore
import Testing
@testable import CohortCrypto

func hex(_ text: String) -> [UInt8] { hexBytes(text) }

func hexString(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

extension String {
    init(format: String, _ byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}

func seal(_ suite: any CipherSuite, _ plaintext: [UInt8], nonce: Nonce, associatedData: [UInt8]) throws -> [UInt8] {
    var output: [UInt8] = []
    try plaintext.withUnsafeBytes { plaintext in
        try associatedData.withUnsafeBytes { associatedData in
            try suite.seal(plaintext, nonce: nonce, associatedData: associatedData, into: &output)
        }
    }
    return output
}

func open(_ suite: any CipherSuite, _ sealed: [UInt8], nonce: Nonce, associatedData: [UInt8]) throws -> [UInt8] {
    try sealed.withUnsafeBytes { sealed in
        try associatedData.withUnsafeBytes { associatedData in
            try suite.open(sealed, nonce: nonce, associatedData: associatedData)
        }
    }
}

@Suite("Known-answer tests")
struct KnownAnswerTests {
    @Test("AES-256-GCM: the GCM specification's test case 16 (McGrew & Viega)")
    func aesGCM() throws {
        let suite = try AES256GCM(keyMaterial: hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"))
        let nonce = Nonce(sender: 0xcafe_babe, counter: 0xface_dbad_deca_f888)
        let plaintext = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let associatedData = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let sealed = try seal(suite, plaintext, nonce: nonce, associatedData: associatedData)
        #expect(hexString(sealed) == "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            + "76fc6ece0f4e1768cddf8853bb2d551b")
        #expect(try open(suite, sealed, nonce: nonce, associatedData: associatedData) == plaintext)
    }

    @Test("ChaCha20-Poly1305: RFC 8439 §2.8.2")
    func chacha() throws {
        let suite = try ChaCha20Poly1305(keyMaterial: Array(0x80...0x9F))
        let nonce = Nonce(sender: 0x0700_0000, counter: 0x4041_4243_4445_4647)
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let associatedData = hex("50515253c0c1c2c3c4c5c6c7")
        let sealed = try seal(suite, plaintext, nonce: nonce, associatedData: associatedData)
        #expect(hexString(sealed) == "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
            + "1ae10b594f09e26a7e902ecbd0600691")
        #expect(try open(suite, sealed, nonce: nonce, associatedData: associatedData) == plaintext)
    }

    @Test("HMAC-SHA256: RFC 4231 test cases 1 and 2, each computed twice on one reused context")
    func hmac() throws {
        let first = try HMACSHA256(key: [UInt8](repeating: 0x0b, count: 20))
        for _ in 0..<2 {
            #expect(hexString(first.code(Array("Hi There".utf8))) == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        }
        let second = try HMACSHA256(key: Array("Jefe".utf8))
        for _ in 0..<2 {
            #expect(hexString(second.code(Array("what do ya ".utf8), Array("want for nothing?".utf8)))
                    == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        }
    }

    @Test("HKDF-SHA256: RFC 5869 test cases 1 and 3")
    func hkdf() throws {
        let one = try HKDF.sha256(inputKeyMaterial: [UInt8](repeating: 0x0b, count: 22), salt: hex("000102030405060708090a0b0c"),
                                  info: hex("f0f1f2f3f4f5f6f7f8f9"), outputBytes: 42)
        #expect(hexString(one) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let three = try HKDF.sha256(inputKeyMaterial: [UInt8](repeating: 0x0b, count: 22), info: [], outputBytes: 42)
        #expect(hexString(three) == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }
}

@Suite("Cipher suites")
struct CipherSuiteTests {
    static let sizes = [0, 1, 7, 8, 9, 15, 16, 17, 1000, 65536]

    static func key(_ suite: any CipherSuite.Type, _ seed: UInt8) -> [UInt8] {
        (0..<suite.keyMaterialBytes).map { UInt8(truncatingIfNeeded: Int($0) &* 31 &+ Int(seed)) }
    }

    @Test("the registry knows every suite by name", arguments: CipherSuites.names)
    func registry(name: String) throws {
        #expect(try CipherSuites.named(name).name == name)
    }

    @Test("an unknown suite is a typed error listing the registered ones")
    func unknownSuite() {
        #expect(throws: CryptoError.unknownSuite("rot13")) { try CipherSuites.named("rot13") }
        #expect(CryptoError.unknownSuite("rot13").description.contains("aes-256-gcm, chacha20-poly1305, blowfish-cbc-hmac-sha256"))
    }

    @Test("round trip at every size", arguments: CipherSuites.names)
    func roundTrip(name: String) throws {
        let type = try CipherSuites.named(name)
        let suite = try type.init(keyMaterial: Self.key(type, 1))
        for (index, size) in Self.sizes.enumerated() {
            let plaintext = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let nonce = Nonce(sender: 9, counter: UInt64(index))
            let sealed = try seal(suite, plaintext, nonce: nonce, associatedData: [1, 2, 3])
            #expect(sealed.count >= plaintext.count)
            #expect(sealed.count <= plaintext.count + type.overheadBytesMax)
            if size >= 16 { #expect(sealed.prefix(16) != plaintext.prefix(16), "ciphertext is not the plaintext") }
            #expect(try open(suite, sealed, nonce: nonce, associatedData: [1, 2, 3]) == plaintext)
        }
    }

    @Test("a wrong key length is refused", arguments: CipherSuites.names)
    func keyLength(name: String) throws {
        let type = try CipherSuites.named(name)
        #expect(throws: CryptoError.invalidKeyLength(expected: type.keyMaterialBytes, got: 5)) { try type.init(keyMaterial: [1, 2, 3, 4, 5]) }
    }

    @Test("every modified byte, a wrong key, nonce or associated data, and truncation are refused", arguments: CipherSuites.names)
    func tampering(name: String) throws {
        let type = try CipherSuites.named(name)
        let suite = try type.init(keyMaterial: Self.key(type, 1))
        let plaintext = Array("attack at dawn, bring the keys".utf8)
        let nonce = Nonce(sender: 1, counter: 2)
        let sealed = try seal(suite, plaintext, nonce: nonce, associatedData: [7])
        for index in sealed.indices {
            var modified = sealed
            modified[index] ^= 0x01
            #expect(throws: CryptoError.self) { try open(suite, modified, nonce: nonce, associatedData: [7]) }
        }
        for cut in [0, 1, sealed.count / 2, sealed.count - 1] {
            #expect(throws: CryptoError.self) { try open(suite, Array(sealed.prefix(cut)), nonce: nonce, associatedData: [7]) }
        }
        let other = try type.init(keyMaterial: Self.key(type, 2))
        #expect(throws: CryptoError.authenticationFailed) { try open(other, sealed, nonce: nonce, associatedData: [7]) }
        #expect(throws: CryptoError.authenticationFailed) { try open(suite, sealed, nonce: Nonce(sender: 1, counter: 3), associatedData: [7]) }
        #expect(throws: CryptoError.authenticationFailed) { try open(suite, sealed, nonce: nonce, associatedData: [8]) }
        #expect(throws: CryptoError.authenticationFailed) { try open(suite, sealed, nonce: nonce, associatedData: []) }
    }

    @Test("two nonces give unrelated ciphertexts of one plaintext", arguments: CipherSuites.names)
    func nonceMatters(name: String) throws {
        let type = try CipherSuites.named(name)
        let suite = try type.init(keyMaterial: Self.key(type, 1))
        let plaintext = [UInt8](repeating: 0x41, count: 64)
        let first = try seal(suite, plaintext, nonce: Nonce(sender: 1, counter: 0), associatedData: [])
        let second = try seal(suite, plaintext, nonce: Nonce(sender: 1, counter: 1), associatedData: [])
        #expect(first.prefix(16) != second.prefix(16))
    }
}

@Suite("Group cipher envelope")
struct GroupCipherTests {
    static func pair(_ suite: any CipherSuite.Type) throws -> (GroupCipher, GroupCipher) {
        let key = try HKDF.keyMaterial(for: suite, secret: Array("group secret".utf8), context: [1])
        return (try GroupCipher(suite: suite, keyMaterial: key, keyID: 0xABCD, sender: 1),
                try GroupCipher(suite: suite, keyMaterial: key, keyID: 0xABCD, sender: 2))
    }

    @Test("members open each other's messages; the header is authenticated", arguments: CipherSuites.names)
    func roundTrip(name: String) throws {
        let (alice, bob) = try Self.pair(try CipherSuites.named(name))
        let envelope = try alice.seal(Array("hello".utf8), header: Array("chat".utf8))
        #expect(envelope.count >= GroupCipher.headerBytes)
        #expect(Array(envelope.prefix(4)) == [0, 0, 0xAB, 0xCD], "the key id travels in the clear")
        let (sender, plaintext) = try bob.open(envelope, header: Array("chat".utf8))
        #expect(sender == 1 && plaintext == Array("hello".utf8))
        #expect(throws: CryptoError.self) { try alice.open(envelope, header: Array("other".utf8)) }
    }

    @Test("a replayed envelope is refused; reordering inside the window is not", arguments: CipherSuites.names)
    func replay(name: String) throws {
        let (alice, bob) = try Self.pair(try CipherSuites.named(name))
        let envelopes = try (0..<5).map { try alice.seal([UInt8($0)]) }
        _ = try bob.open(envelopes[3])
        _ = try bob.open(envelopes[0])
        _ = try bob.open(envelopes[4])
        #expect(throws: CryptoError.replayed(sender: 1, counter: 3)) { try bob.open(envelopes[3]) }
        #expect(throws: CryptoError.replayed(sender: 1, counter: 0)) { try bob.open(envelopes[0]) }
        #expect(try bob.open(envelopes[1]).plaintext == [1])
    }

    @Test("a forged envelope does not advance the replay window")
    func forgeryDoesNotPoisonWindow() throws {
        let (alice, bob) = try Self.pair(AES256GCM.self)
        let genuine = try alice.seal([1])
        var forged = genuine
        forged[forged.count - 1] ^= 0xFF
        #expect(throws: CryptoError.authenticationFailed) { try bob.open(forged) }
        #expect(try bob.open(genuine).plaintext == [1])
    }

    @Test("an envelope of another sender than expected is refused before the replay window sees it")
    func expectedSender() throws {
        let (alice, bob) = try Self.pair(AES256GCM.self)
        let genuine = try alice.seal([1])
        #expect(throws: CryptoError.wrongSender(expected: alice.sender + 1, got: alice.sender)) {
            try bob.open(genuine, expectedSender: alice.sender + 1)
        }
        #expect(try bob.open(genuine, expectedSender: alice.sender).plaintext == [1])
        #expect(GroupCipher.keyID(of: genuine) == alice.keyID)
        #expect(GroupCipher.keyID(of: Array(genuine.prefix(15))) == nil)
    }

    @Test("a wrong key id and a truncated envelope are typed errors")
    func keyIDAndTruncation() throws {
        let suite = AES256GCM.self
        let (alice, _) = try Self.pair(suite)
        let stranger = try GroupCipher(suite: suite, keyMaterial: try HKDF.keyMaterial(for: suite, secret: [9]), keyID: 7, sender: 3)
        let envelope = try alice.seal([1, 2, 3])
        #expect(throws: CryptoError.wrongKeyID(expected: 7, got: 0xABCD)) { try stranger.open(envelope) }
        #expect(throws: CryptoError.truncated(neededBytes: 16, gotBytes: 10)) { try stranger.open(Array(envelope.prefix(10))) }
    }

    @Test("senders never reuse a nonce: counters advance")
    func counters() throws {
        let (alice, _) = try Self.pair(AES256GCM.self)
        let first = try alice.seal([0])
        let second = try alice.seal([0])
        #expect(first[8..<16] != second[8..<16])
        #expect(first[16...] != second[16...])
    }
}

@Suite("Replay window")
struct ReplayWindowTests {
    @Test("accepts each counter once and nothing older than its width")
    func window() {
        var window = ReplayWindow()
        #expect(window.admits(5))
        window.record(5)
        #expect(!window.admits(5))
        #expect(window.admits(4))
        window.record(100)
        #expect(!window.admits(100 - ReplayWindow.width))
        #expect(window.admits(100 - ReplayWindow.width + 1))
        window.record(37)
        #expect(!window.admits(37))
        window.record(1000)
        #expect(window.admits(999) && !window.admits(1000) && !window.admits(100))
    }
}

@Suite("Key derivation")
struct KeyDerivationTests {
    let configuration = ConfigurationID(epoch: 3, representative: "d1")

    @Test("K_g,i is HMAC(K_s, g ‖ view id): the same at every daemon, different per view and group")
    func groupKeys() throws {
        let serverKey = [UInt8](repeating: 0x42, count: 32)
        let daemonA = try GroupKeyDerivation(serverKey: serverKey)
        let daemonB = try GroupKeyDerivation(serverKey: serverKey)
        let chat = try GroupName("chat")
        let view = GroupViewID(configuration: configuration, sequence: 7)
        let key = daemonA.groupKey(group: chat, viewID: view)
        #expect(key.count == 32)
        #expect(key == daemonB.groupKey(group: chat, viewID: view))
        #expect(key != daemonA.groupKey(group: chat, viewID: GroupViewID(configuration: configuration, sequence: 8)))
        #expect(key != daemonA.groupKey(group: try GroupName("chat2"), viewID: view))
        #expect(key != (try GroupKeyDerivation(serverKey: [UInt8](repeating: 0x43, count: 32))).groupKey(group: chat, viewID: view))
        // The encoding is the one documented: str8 group, u64 epoch, str8 representative, u64 sequence.
        let expected = try HMACSHA256(key: serverKey).code(
            [4] + Array("chat".utf8), [0, 0, 0, 0, 0, 0, 0, 3], [2] + Array("d1".utf8), [0, 0, 0, 0, 0, 0, 0, 7])
        #expect(key == expected)
    }

    @Test("suites and contexts never share key material")
    func keyMaterialSeparation() throws {
        let secret = Array("agreed".utf8)
        let aes = try HKDF.keyMaterial(for: AES256GCM.self, secret: secret)
        let chacha = try HKDF.keyMaterial(for: ChaCha20Poly1305.self, secret: secret)
        #expect(aes != chacha)
        #expect(try HKDF.keyMaterial(for: AES256GCM.self, secret: secret, context: [1]) != aes)
        #expect(try HKDF.keyMaterial(for: BlowfishCBCHMACSHA256.self, secret: secret).count == 48)
    }
}
