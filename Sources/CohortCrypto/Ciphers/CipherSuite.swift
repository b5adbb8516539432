/// A 96-bit nonce: the sender's 32-bit id and its 64-bit message counter. A sender never uses a
/// counter twice under one key, so nonces never repeat (`GroupCipher` enforces it).
public struct Nonce: Hashable, Sendable {
    /// The sending member's id under the current key.
    public var sender: UInt32
    /// The sender's message counter.
    public var counter: UInt64

    /// Creates a nonce.
    public init(sender: UInt32, counter: UInt64) {
        self.sender = sender
        self.counter = counter
    }

    /// The 12 bytes: sender, then counter, big-endian.
    public var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(12)
        withUnsafeBytes(of: sender.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: counter.bigEndian) { bytes.append(contentsOf: $0) }
        return bytes
    }
}

/// An authenticated cipher bound to one key (DESIGN.md §2, `CipherSuite`). Implementations keep
/// their OpenSSL contexts for the life of the key, so a seal or open costs no key setup.
///
/// An instance is not safe for concurrent use: its owner (a group cipher, itself owned by one
/// connection or one daemon event loop) uses it from one thread at a time. It may move between
/// threads with its owner.
public protocol CipherSuite: AnyObject, SendableMetatype {
    /// The registered name (`--cipher` and configuration files use it).
    static var name: String { get }
    /// Bytes of key material the suite takes (derived from a group secret with HKDF).
    static var keyMaterialBytes: Int { get }
    /// Most bytes a sealed message is longer than its plaintext (tag, padding).
    static var overheadBytesMax: Int { get }

    /// The suite keyed with `keyMaterial`; throws ``CryptoError/invalidKeyLength(expected:got:)``.
    init(keyMaterial: [UInt8]) throws(CryptoError)

    /// Encrypts `plaintext` under `nonce`, authenticating it and `associatedData`; appends the
    /// ciphertext and tag to `output`.
    func seal(
        _ plaintext: UnsafeRawBufferPointer, nonce: Nonce, associatedData: UnsafeRawBufferPointer,
        into output: inout [UInt8]) throws(CryptoError)

    /// Verifies and decrypts what ``seal(_:nonce:associatedData:into:)`` produced. Any
    /// difference in key, nonce, associated data or a single byte throws
    /// ``CryptoError/authenticationFailed``; no plaintext is returned then.
    func open(
        _ sealed: UnsafeRawBufferPointer, nonce: Nonce, associatedData: UnsafeRawBufferPointer
    ) throws(CryptoError) -> [UInt8]
}

/// The registry of cipher suites. Adding a suite is one file in `Ciphers/` and one line here.
public enum CipherSuites {
    /// Every registered suite, the default first.
    public static let registered: [any CipherSuite.Type] = [
        AES256GCM.self, ChaCha20Poly1305.self, BlowfishCBCHMACSHA256.self,
    ]

    /// The registered names, in order.
    public static var names: [String] { registered.map { $0.name } }

    /// The default suite.
    public static let defaultSuite: any CipherSuite.Type = AES256GCM.self

    /// The suite registered under `name`.
    public static func named(_ name: String) throws(CryptoError) -> any CipherSuite.Type {
        guard let suite = registered.first(where: { $0.name == name }) else { throw .unknownSuite(name) }
        return suite
    }
}
