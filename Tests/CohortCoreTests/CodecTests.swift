import Testing
@testable import CohortCore

@Suite("Wire codec")
struct CodecTests {
    static let viewID = GroupViewID(configuration: ConfigurationID(epoch: 7, representative: "d1"), sequence: 42)

    static let clientFrames: [ClientFrame] = [
        .connect(ConnectRequest(privateName: "alice", wantsMembership: true, authMethod: "none", authData: [1, 2, 3])),
        .connect(ConnectRequest(privateName: "b", wantsMembership: false)),
        .authResponse([9, 8, 7]),
        .join(group("chat")),
        .leave(group("chat")),
        .multicast(OutgoingMessage(service: ServiceType(.safe, selfDiscard: true), messageType: 65535,
                                   groups: [group("a"), group("#bob#d2")], payload: Array(0...255))),
        .multicast(OutgoingMessage(service: .agreed, groups: [group("g")], payload: [])),
        .statusRequest,
        .disconnect,
    ]

    static let daemonFrames: [DaemonFrame] = [
        .accept(ConnectAccept(version: 1, member: member("alice"), architecture: "plain")),
        .accept(ConnectAccept(version: 1, member: member("bob"), architecture: "plain", principal: Principal("bob"), authData: Array("v=abc".utf8))),
        .authChallenge(method: "password", data: Array("r=abc,s=c2FsdA==,i=4096".utf8)),
        .reject(.duplicatePrivateName, reason: "in use ✓"),
        .authChallenge(method: "password", data: [1, 2]),
        .message(DeliveredMessage(service: ServiceType(.fifo), messageType: 3, sender: member("alice"),
                                  groups: [group("x"), group("y")], payload: Array("hello".utf8))),
        .view(GroupView(group: group("chat"), viewID: viewID, members: [member("a"), member("b", "d2")], cause: .join,
                        changed: [member("b", "d2")], transitional: true, continuing: [member("a")])),
        .view(GroupView(group: group("chat"), viewID: viewID, members: [member("a")], cause: .join, changed: [member("a")],
                        continuing: [], key: ViewKey(keyID: 0xDEAD_BEEF, secret: Array(repeating: 7, count: 32)))),
        .view(GroupView(group: group("chat"), viewID: viewID, members: [member("a")], cause: .join, changed: [member("a")],
                        continuing: [], key: ViewKey(keyID: 1, secret: []))),
        .error(.tooManyGroupsJoined, fatal: true, reason: "limit"),
        .status(DaemonStatus(daemonName: "d1", version: "0.1.0", architecture: "integrated-vs",
                             configuration: ConfigurationID(epoch: 1, representative: "d1"), configurationMembers: ["d1"],
                             clients: [], groups: [], daemonKeyEpoch: "1.d1 00ff00ff00ff00ff")),
        .status(DaemonStatus(daemonName: "d1", version: "0.1.0", architecture: "plain",
                             configuration: ConfigurationID(epoch: 1, representative: "d1"), configurationMembers: ["d1"],
                             clients: [member("a")], groups: [.init(group: group("g"), viewID: viewID, members: [member("a")])])),
    ]

    @Test("client frames round-trip", arguments: clientFrames)
    func clientRoundTrip(frame: ClientFrame) throws {
        #expect(try frame.roundTripped() == frame)
    }

    @Test("daemon frames round-trip", arguments: daemonFrames)
    func daemonRoundTrip(frame: DaemonFrame) throws {
        #expect(try frame.roundTripped() == frame)
    }

    @Test("encoding with the payload left out, then appended, gives the same bytes", arguments: daemonFrames)
    func encodeLeavingPayload(frame: DaemonFrame) {
        var writer = WireWriter()
        let payload = frame.encodeLeavingPayload(into: &writer)
        #expect(writer.bytes + (payload ?? []) == frame.encoded())
        if case .message = frame { #expect(payload != nil) } else { #expect(payload == nil) }
    }

    @Test("length prefix counts the body")
    func lengthPrefix() throws {
        let encoded = ClientFrame.join(group("chat")).encoded()
        let length = try encoded.withUnsafeBytes { raw in
            Result { () throws(WireError) in try WireProtocol.bodyLength(prefix: raw, frameBytesMax: 1000) }
        }.get()
        #expect(length == encoded.count - 4)
    }

    @Test("an incomplete prefix asks for more bytes")
    func incompletePrefix() throws {
        let length = try ([0, 0, 1] as [UInt8]).withUnsafeBytes { raw in
            Result { () throws(WireError) in try WireProtocol.bodyLength(prefix: raw, frameBytesMax: 1000) }
        }.get()
        #expect(length == nil)
    }

    @Test("an oversized frame is refused before it is buffered")
    func oversizedFrame() {
        let prefix: [UInt8] = [0x7F, 0xFF, 0xFF, 0xFF]
        #expect(throws: WireError.frameTooLarge(length: 0x7FFF_FFFF, max: 1 << 20)) {
            _ = try prefix.withUnsafeBytes { raw in
                Result { () throws(WireError) in try WireProtocol.bodyLength(prefix: raw, frameBytesMax: 1 << 20) }
            }.get()
        }
    }

    @Test("a zero-length frame is malformed")
    func zeroLength() {
        #expect(throws: WireError.truncated) {
            _ = try ([0, 0, 0, 0] as [UInt8]).withUnsafeBytes { raw in
                Result { () throws(WireError) in try WireProtocol.bodyLength(prefix: raw, frameBytesMax: 100) }
            }.get()
        }
    }

    // MARK: - Rejections, each with its typed error

    @Test("unknown frame kind")
    func unknownKind() {
        #expect(throws: WireError.unknownFrameKind(0x7E)) { try ClientFrame.decode(body: [0x7E], limits: Limits()) }
    }

    @Test("empty body")
    func emptyBody() {
        #expect(throws: WireError.truncated) { try ClientFrame.decode(body: [], limits: Limits()) }
    }

    @Test("every strict prefix of a valid frame is truncated")
    func truncatedPrefixes() {
        for frame in Self.clientFrames {
            let full = body(of: frame.encoded())
            for cut in 1..<full.count {
                #expect(throws: WireError.self) { try ClientFrame.decode(body: Array(full.prefix(cut)), limits: Limits()) }
            }
        }
    }

    @Test("trailing bytes are refused")
    func trailingBytes() {
        let full = body(of: ClientFrame.join(group("chat")).encoded()) + [0]
        #expect(throws: WireError.trailingBytes(count: 1)) { try ClientFrame.decode(body: full, limits: Limits()) }
    }

    @Test("bad magic")
    func badMagic() {
        var full = body(of: ClientFrame.connect(ConnectRequest(privateName: "a")).encoded())
        full[1] ^= 0xFF
        #expect(throws: WireError.badMagic) { try ClientFrame.decode(body: full, limits: Limits()) }
    }

    @Test("oversize payload")
    func oversizePayload() {
        let message = OutgoingMessage(service: .agreed, groups: [group("g")], payload: [UInt8](repeating: 0, count: 101))
        #expect(throws: WireError.payloadTooLarge(bytes: 101, max: 100)) {
            try ClientFrame.decode(body: body(of: ClientFrame.multicast(message).encoded()), limits: Limits(payloadBytesMax: 100))
        }
    }

    @Test("too many groups in one message")
    func tooManyGroups() {
        let groups = (0..<5).map { group("g\($0)") }
        let message = OutgoingMessage(service: .agreed, groups: groups, payload: [])
        #expect(throws: WireError.badGroupCount(5)) {
            try ClientFrame.decode(body: body(of: ClientFrame.multicast(message).encoded()), limits: Limits(groupsPerMessageMax: 4))
        }
    }

    @Test("a message to no group")
    func noGroups() {
        let message = OutgoingMessage(service: .agreed, groups: [], payload: [])
        #expect(throws: WireError.badGroupCount(0)) {
            try ClientFrame.decode(body: body(of: ClientFrame.multicast(message).encoded()), limits: Limits())
        }
    }

    @Test("invalid group names", arguments: ["", "has space", "a#b", String(repeating: "x", count: 33), "tab\t", "ünï", "#notprivate", "##d1"])
    func invalidGroupName(name: String) {
        #expect(throws: WireError.self) { try GroupName(name) }
        // And on the wire: a join frame carrying it is refused.
        var writer = WireWriter()
        writer.write(UInt8(0x03))
        writer.writeShortString(name)
        #expect(throws: WireError.self) { try ClientFrame.decode(body: writer.bytes, limits: Limits()) }
    }

    @Test("valid group names", arguments: ["a", "chat", "x-y_z.1", String(repeating: "x", count: 32), "#alice#d1", "!~"])
    func validGroupName(name: String) throws {
        #expect(try GroupName(name).rawValue == name)
    }

    @Test("a member identity keeps its parts: made or parsed, named, compared by daemon then name")
    func memberIdentity() throws {
        let parts = [("a", "d1"), ("alice", "d1"), ("bob", "d0"), ("alice", "d10"), ("x-y_z.1-longer-than-15", "daemon-name-longer-than-15"), ("z", "d1")]
        var members: [MemberID] = []
        for (name, daemon) in parts {
            let made = try MemberID(name: name, daemon: daemon)
            let parsed = try #require(MemberID(privateGroup: "#\(name)#\(daemon)"))
            #expect(made == parsed && made.hashValue == parsed.hashValue)
            for member in [made, parsed] {
                #expect(member.name == name && member.daemon == daemon && member.description == "#\(name)#\(daemon)")
                #expect(member.isOn(daemon: daemon) && !member.isOn(daemon: daemon + "x") && !member.isOn(daemon: name + "#" + daemon))
            }
            members.append(made)
        }
        // The order of (daemon, name) pairs.
        #expect(members.sorted().map { "\($0.daemon)/\($0.name)" } == parts.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.map { "\($0.1)/\($0.0)" })
        #expect(MemberID(privateGroup: "#a#") == nil && MemberID(privateGroup: "##d1") == nil && MemberID(privateGroup: "a#d1") == nil)
    }

    @Test("invalid UTF-8 in a string field")
    func invalidUTF8() {
        #expect(throws: WireError.invalidUTF8) { try ClientFrame.decode(body: [0x03, 2, 0xC3, 0x28], limits: Limits()) }
    }

    @Test("unknown service level and flags")
    func badService() {
        var full = body(of: ClientFrame.multicast(OutgoingMessage(service: .agreed, groups: [group("g")], payload: [])).encoded())
        full[1] = 9
        #expect(throws: WireError.invalidValue("service level 9")) { try ClientFrame.decode(body: full, limits: Limits()) }
        full[1] = 5
        full[2] = 0x80
        #expect(throws: WireError.invalidValue("service flags 128")) { try ClientFrame.decode(body: full, limits: Limits()) }
    }

    @Test("a member count larger than the frame is refused without allocating")
    func hugeCount() {
        var writer = WireWriter()
        writer.write(UInt8(0x85))
        writer.writeShortString("g")
        writer.write(UInt64(1)); writer.writeShortString("d1"); writer.write(UInt64(1))
        writer.write(UInt8(1)); writer.write(false)
        writer.write(UInt32.max)
        #expect(throws: WireError.truncated) { try DaemonFrame.decode(body: writer.bytes, limits: Limits()) }
    }

    @Test("wire errors map to stable error codes")
    func errorCodes() {
        #expect(WireError.payloadTooLarge(bytes: 2, max: 1).errorCode == .payloadTooLarge)
        #expect(WireError.badGroupCount(0).errorCode == .tooManyGroupsInMessage)
        #expect(WireError.invalidGroupName("x y").errorCode == .invalidGroupName)
        #expect(WireError.truncated.errorCode == .malformedFrame)
        #expect(ErrorCode.malformedFrame.rawValue == 1 && ErrorCode.architectureRefused.rawValue == 20)
    }
}

@Suite("Decoder fuzzing")
struct DecoderFuzzTests {
    /// Mutated valid frames and random bytes: the decoders must throw or decode, never trap,
    /// and whatever decodes must encode back to an equal frame.
    @Test("mutations never crash and decoded frames re-encode", arguments: [1, 2, 3, 4] as [UInt64])
    func mutations(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        let seeds = CodecTests.clientFrames.map { body(of: $0.encoded()) }
        let daemonSeeds = CodecTests.daemonFrames.map { body(of: $0.encoded()) }
        for iteration in 0..<5000 {
            var bytes = (iteration % 2 == 0 ? seeds : daemonSeeds).randomElement(using: &random)!
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                switch Int.random(in: 0..<4, using: &random) {
                case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes.insert(UInt8.random(in: 0...255, using: &random), at: Int.random(in: 0...bytes.count, using: &random))
                case 2 where !bytes.isEmpty: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &random))
                default: bytes = (0..<Int.random(in: 0...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                }
            }
            if let frame = try? ClientFrame.decode(body: bytes, limits: Limits()) {
                #expect(try frame.roundTripped() == frame, "seed \(seed) iteration \(iteration)")
            }
            if let frame = try? DaemonFrame.decode(body: bytes, limits: Limits()) {
                #expect(try frame.roundTripped() == frame, "seed \(seed) iteration \(iteration)")
            }
        }
    }

    /// A decoder that remembers names between frames must decode exactly what a fresh decoder
    /// decodes: same frame or same error, for valid streams and for mutated ones.
    @Test("decoding with a memo agrees with decoding without", arguments: [11, 12, 13] as [UInt64])
    func memoAgrees(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        let senders = [member("alice"), member("bob", "d2"), member("carol-with-a-long-name", "daemon-7")]
        let groupSets = [[group("g")], [group("g"), group("h")], [group("a-rather-long-group-name")], [member("bob").privateGroup]]
        var clientMemo = DecodeMemo()
        var daemonMemo = DecodeMemo()
        for iteration in 0..<4000 {
            let groups = groupSets.randomElement(using: &random)!
            let daemonFrame = DaemonFrame.message(DeliveredMessage(
                service: .agreed, messageType: 1, sender: senders.randomElement(using: &random)!, groups: groups,
                payload: [UInt8](repeating: 1, count: Int.random(in: 0...8, using: &random))))
            let clientFrame = ClientFrame.multicast(OutgoingMessage(service: .fifo, groups: groups, payload: [2]))
            var daemonBytes = body(of: daemonFrame.encoded())
            var clientBytes = body(of: clientFrame.encoded())
            if iteration % 3 == 0 {
                daemonBytes[Int.random(in: 0..<daemonBytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                clientBytes[Int.random(in: 0..<clientBytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            let daemonWithMemo = daemonBytes.withUnsafeBytes { raw in
                Result { () throws(WireError) in try DaemonFrame.decode(body: raw, limits: Limits(), memo: &daemonMemo) }
            }
            let daemonFresh = Result { () throws(WireError) in try DaemonFrame.decode(body: daemonBytes, limits: Limits()) }
            #expect(daemonWithMemo == daemonFresh, "seed \(seed) iteration \(iteration)")
            let clientWithMemo = clientBytes.withUnsafeBytes { raw in
                Result { () throws(WireError) in try ClientFrame.decode(body: raw, limits: Limits(), memo: &clientMemo) }
            }
            let clientFresh = Result { () throws(WireError) in try ClientFrame.decode(body: clientBytes, limits: Limits()) }
            #expect(clientWithMemo == clientFresh, "seed \(seed) iteration \(iteration)")
        }
    }
}
