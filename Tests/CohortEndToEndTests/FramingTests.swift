import CohortCore
import CohortTransport
import NIOCore
import NIOEmbedded
import Testing

@Suite("Framing: the batch decoder of every link")
struct FramingTests {
    static let limits = Limits()

    static func frames(_ count: Int) -> [ClientFrame] {
        (0..<count).map { index in
            .multicast(OutgoingMessage(service: .agreed, groups: [try! GroupName("g")], payload: [UInt8](repeating: UInt8(index), count: index * 7)))
        }
    }

    /// Feeds `bytes` in pieces of `chunk` bytes and returns the frames decoded, in order.
    static func decode(_ bytes: [UInt8], chunk: Int) throws -> [ClientFrame] {
        let channel = EmbeddedChannel(handler: FrameBatchHandler<ClientFrame>(limits: limits))
        var decoded: [ClientFrame] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<end]))
            while let batch = try channel.readInbound(as: [ClientFrame].self) { decoded += batch }
            offset = end
        }
        _ = try channel.finish()
        return decoded
    }

    @Test("frames split across reads, or many in one read, come out whole and in order", arguments: [1, 3, 17, 100, 4096, 1 << 20])
    func pieces(chunk: Int) throws {
        let frames = Self.frames(40)
        let bytes = frames.flatMap { $0.encoded() }
        #expect(try Self.decode(bytes, chunk: chunk) == frames)
    }

    @Test("the frames before a bad one are passed on, then the error; nothing after it")
    func errorAfterGoodFrames() throws {
        let good = Self.frames(3)
        var bytes = good.flatMap { $0.encoded() }
        bytes += [0, 0, 0, 2, 0xEE, 0]  // a frame of an unknown kind
        bytes += Self.frames(2).flatMap { $0.encoded() }
        let channel = EmbeddedChannel(handler: FrameBatchHandler<ClientFrame>(limits: Self.limits))
        #expect(throws: WireError.unknownFrameKind(0xEE)) { try channel.writeInbound(ByteBuffer(bytes: bytes)) }
        var decoded: [ClientFrame] = []
        while let batch = try channel.readInbound(as: [ClientFrame].self) { decoded += batch }
        #expect(decoded == good)
    }

    @Test("an oversized length prefix is refused before its body arrives, also when it comes in pieces", arguments: [0, 1, 2, 3])
    func oversized(split: Int) throws {
        let channel = EmbeddedChannel(handler: FrameBatchHandler<ClientFrame>(limits: Self.limits))
        let length = UInt32(Self.limits.frameBytesMax + 1)
        let prefix: [UInt8] = [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
        // A good frame first, so that the prefix starts mid-read and ends in the next one.
        let good = Self.frames(2)[1].encoded()
        try channel.writeInbound(ByteBuffer(bytes: good + prefix[..<split]))
        #expect(throws: WireError.frameTooLarge(length: Int(length), max: Self.limits.frameBytesMax)) {
            try channel.writeInbound(ByteBuffer(bytes: prefix[split...]))
        }
        var decoded: [ClientFrame] = []
        while let batch = try channel.readInbound(as: [ClientFrame].self) { decoded += batch }
        #expect(decoded == [Self.frames(2)[1]])
        // What follows the error is dropped, without another error.
        try channel.writeInbound(ByteBuffer(bytes: Self.frames(3).flatMap { $0.encoded() }))
        #expect(try channel.readInbound(as: [ClientFrame].self) == nil)
    }
}
