/// A sliding window over a sender's message counters (after the anti-replay window of IPsec,
/// RFC 4303 §3.4.3): accepts each counter once, and none older than `width` below the highest
/// accepted one.
public struct ReplayWindow: Hashable, Sendable {
    /// How far below the highest accepted counter a late message is still accepted.
    public static let width: UInt64 = 64
    private var highest: UInt64?
    /// Bit i set: counter `highest - i` was accepted.
    private var accepted: UInt64 = 0

    /// An empty window.
    public init() {}

    /// Whether `counter` would be accepted (neither seen nor too old). Does not record it.
    public func admits(_ counter: UInt64) -> Bool {
        guard let highest else { return true }
        if counter > highest { return true }
        let age = highest - counter
        guard age < Self.width else { return false }
        return accepted & (1 << age) == 0
    }

    /// Records `counter` as accepted; call only once its message authenticated.
    public mutating func record(_ counter: UInt64) {
        guard let highest else {
            self.highest = counter
            accepted = 1
            return
        }
        if counter > highest {
            let shift = counter - highest
            accepted = shift >= Self.width ? 1 : (accepted << shift) | 1
            self.highest = counter
        } else {
            accepted |= 1 << (highest - counter)
        }
    }
}

/// One key of a group, in the sealed-message format every architecture shares:
///
/// ```
/// u32 keyID | u32 sender | u64 counter | suite output (ciphertext, tag)
/// ```
///
/// big-endian; the nonce is (sender, counter) and the associated data is the caller's header
/// followed by those 16 bytes, so the key id, the sender and the counter are authenticated with
/// the message. A member seals with its own sender id and a counter that never repeats under
/// the key; opening rejects a wrong key id, any modified byte, truncation, and replays (one
/// ``ReplayWindow`` per sender). Not safe for concurrent use; see ``CipherSuite``.
public final class GroupCipher {
    /// Bytes of the envelope header.
    public static let headerBytes = 16
    /// The key's id, carried in the clear (Optimized EVS's 32-bit key id).
    public let keyID: UInt32
    /// This member's sender id under the key.
    public let sender: UInt32
    /// The suite's registered name.
    public var suiteName: String { type(of: suite).name }

    private let suite: any CipherSuite
    private var nextCounter: UInt64 = 0
    private var windows: [UInt32: ReplayWindow] = [:]

    /// A cipher for the key `keyMaterial` under `suite`, sealing as `sender`.
    public init(suite: any CipherSuite.Type, keyMaterial: [UInt8], keyID: UInt32, sender: UInt32) throws(CryptoError) {
        self.suite = try suite.init(keyMaterial: keyMaterial)
        self.keyID = keyID
        self.sender = sender
    }

    /// Seals `plaintext`, authenticating `header` with it.
    public func seal(_ plaintext: [UInt8], header: [UInt8] = []) throws(CryptoError) -> [UInt8] {
        guard nextCounter < UInt64.max else { throw .nonceSpaceExhausted }
        let nonce = Nonce(sender: sender, counter: nextCounter)
        nextCounter += 1
        var envelope: [UInt8] = []
        envelope.reserveCapacity(Self.headerBytes + plaintext.count + type(of: suite).overheadBytesMax)
        withUnsafeBytes(of: keyID.bigEndian) { envelope.append(contentsOf: $0) }
        envelope.append(contentsOf: nonce.bytes)
        let associatedData = header + envelope
        var sealed = envelope
        try withBytes(plaintext) { (plaintext) throws(CryptoError) in
            try withBytes(associatedData) { (associatedData) throws(CryptoError) in
                try suite.seal(plaintext, nonce: nonce, associatedData: associatedData, into: &sealed)
            }
        }
        return sealed
    }

    /// The key id an envelope names (its first 4 bytes), to pick the cipher that opens it;
    /// `nil` for bytes too short to be an envelope.
    public static func keyID(of envelope: [UInt8]) -> UInt32? {
        envelope.count >= headerBytes ? readUInt32(envelope, at: 0) : nil
    }

    /// Opens an envelope sealed under this key with `header`; returns the sender and the
    /// plaintext, or throws without returning any plaintext. With `expectedSender`, an envelope
    /// of another sender is refused before the replay window sees it (a misattributed message
    /// must not use up its real sender's counter).
    public func open(_ envelope: [UInt8], header: [UInt8] = [], expectedSender: UInt32? = nil) throws(CryptoError) -> (sender: UInt32, plaintext: [UInt8]) {
        guard envelope.count >= Self.headerBytes else { throw .truncated(neededBytes: Self.headerBytes, gotBytes: envelope.count) }
        let keyID = Self.readUInt32(envelope, at: 0)
        guard keyID == self.keyID else { throw .wrongKeyID(expected: self.keyID, got: keyID) }
        let nonce = Nonce(sender: Self.readUInt32(envelope, at: 4), counter: Self.readUInt64(envelope, at: 8))
        if let expectedSender, nonce.sender != expectedSender { throw .wrongSender(expected: expectedSender, got: nonce.sender) }
        guard windows[nonce.sender, default: ReplayWindow()].admits(nonce.counter) else {
            throw .replayed(sender: nonce.sender, counter: nonce.counter)
        }
        let associatedData = header + envelope[0..<Self.headerBytes]
        let plaintext = try withBytes(envelope) { (envelope) throws(CryptoError) -> [UInt8] in
            try withBytes(associatedData) { (associatedData) throws(CryptoError) -> [UInt8] in
                try suite.open(UnsafeRawBufferPointer(rebasing: envelope[Self.headerBytes...]), nonce: nonce, associatedData: associatedData)
            }
        }
        windows[nonce.sender, default: ReplayWindow()].record(nonce.counter)
        return (nonce.sender, plaintext)
    }

    private static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }

    private static func readUInt64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
