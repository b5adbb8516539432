public import CohortCore
import Crypto
import Foundation

/// Why a key agreement message was refused. Nothing about the run changes when one is thrown.
public enum KeyAgreementError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The bytes do not decode.
    case malformed(String)
    /// The signature does not verify under the sender's key (modified or forged).
    case badSignature(sender: MemberID)
    /// The sender has no key in the directory (not a configured member).
    case unknownSender(MemberID)
    /// The message belongs to another run than the current one (stale, or not started here).
    case wrongRun(expected: GroupViewID?, got: GroupViewID)
    /// The message is for another protocol.
    case wrongProtocol(expected: String, got: String)
    /// The sender is not a member of the run.
    case notAMember(MemberID)
    /// A sequence number not above the last one accepted from this sender in this run: a
    /// replay, or a message overtaken by a later one (reordered).
    case replayed(sender: MemberID, sequence: UInt32)
    /// Well-formed and signed, but not what the protocol expects at this step.
    case unexpected(String)
    /// A group element failed validation, or the group arithmetic failed.
    case crypto(CryptoError)

    public var description: String {
        switch self {
        case .malformed(let reason): "malformed key agreement message: \(reason)"
        case .badSignature(let sender): "bad signature on a message from \(sender)"
        case .unknownSender(let sender): "no public key for \(sender)"
        case .wrongRun(let expected, let got): "message of run \(got); current run is \(expected.map { "\($0)" } ?? "none")"
        case .wrongProtocol(let expected, let got): "message of protocol \(got), running \(expected)"
        case .notAMember(let sender): "\(sender) is not a member of this run"
        case .replayed(let sender, let sequence): "replayed message \(sequence) from \(sender)"
        case .unexpected(let reason): "unexpected message: \(reason)"
        case .crypto(let error): "\(error)"
        }
    }
}

/// One signed message of a key agreement run (DESIGN.md §1: signed by its sender, carrying the
/// protocol-run id and a sequence number, so injected, replayed, reordered or modified messages
/// are rejected).
///
/// Wire form: `str8 protocol | run (u64 epoch, str8 representative, u64 sequence) | str8 sender
/// | u32 sequence | u8 step | u32 count, count × (u32 length, element bytes) | u32 count, count ×
/// (u32 length, payload bytes) | 64-byte Ed25519 signature over everything before it`.
public struct KeyAgreementMessage: Hashable, Sendable {
    /// The protocol's registered name.
    public var protocolName: String
    /// The run: the view whose key is being agreed.
    public var run: GroupViewID
    /// The signer.
    public var sender: MemberID
    /// The sender's message counter in this run, from 0.
    public var sequence: UInt32
    /// The protocol step the message belongs to.
    public var step: UInt8
    /// The group elements it carries.
    public var elements: [GroupElement]
    /// Opaque byte strings it carries besides group elements (e.g. CKD's encrypted shares).
    public var payload: [[UInt8]]

    /// Creates an unsigned message.
    public init(
        protocolName: String, run: GroupViewID, sender: MemberID, sequence: UInt32, step: UInt8, elements: [GroupElement],
        payload: [[UInt8]] = []
    ) {
        self.protocolName = protocolName
        self.run = run
        self.sender = sender
        self.sequence = sequence
        self.step = step
        self.elements = elements
        self.payload = payload
    }

    /// The bytes the signature covers.
    func signedBytes() -> [UInt8] {
        var writer = WireWriter(capacity: 128 + elements.reduce(0) { $0 + $1.bytes.count + 4 } + payload.reduce(0) { $0 + $1.count + 4 })
        writer.writeShortString(protocolName)
        writer.write(run.configuration.epoch)
        writer.writeShortString(run.configuration.representative)
        writer.write(run.sequence)
        writer.writeShortString(sender.description)
        writer.write(sequence)
        writer.write(step)
        writer.write(UInt32(elements.count))
        for element in elements { writer.writeBlob(element.bytes) }
        writer.write(UInt32(payload.count))
        for bytes in payload { writer.writeBlob(bytes) }
        return writer.bytes
    }

    /// The message signed by `key`, ready to send.
    public func signed(with key: SigningKey) throws(KeyAgreementError) -> [UInt8] {
        let bytes = signedBytes()
        return bytes + (try key.signature(for: bytes))
    }

    /// Decodes and verifies a signed message against the sender's key in `directory`.
    public static func verified(_ bytes: [UInt8], directory: MemberKeyDirectory) throws(KeyAgreementError) -> KeyAgreementMessage {
        let (message, body, signature) = try decodedUnverified(bytes)
        guard let key = directory.publicKey(of: message.sender) else { throw .unknownSender(message.sender) }
        guard SigningKey.isValid(signature: signature, for: body, publicKey: key) else {
            throw .badSignature(sender: message.sender)
        }
        return message
    }

    /// Decodes a signed message without checking its signature: only for bytes known to be
    /// this member's own (a broadcast delivered back to its sender).
    static func decodedUnverified(_ bytes: [UInt8]) throws(KeyAgreementError) -> (message: KeyAgreementMessage, body: [UInt8], signature: [UInt8]) {
        let signatureBytes = 64
        guard bytes.count > signatureBytes else { throw .malformed("\(bytes.count) bytes") }
        let body = Array(bytes.dropLast(signatureBytes))
        do {
            let message = try body.withUnsafeBytes { raw in
                Result { () throws(WireError) in try decode(raw) }
            }.get()
            return (message, body, Array(bytes.suffix(signatureBytes)))
        } catch {
            throw .malformed("\(error)")
        }
    }

    private static func decode(_ raw: UnsafeRawBufferPointer) throws(WireError) -> KeyAgreementMessage {
        var reader = WireReader(raw)
        let protocolName = try reader.readShortString()
        let epoch = try reader.readUInt64()
        let representative = try reader.readShortString()
        let runSequence = try reader.readUInt64()
        let senderText = try reader.readShortString()
        guard let sender = MemberID(privateGroup: senderText) else { throw .invalidPrivateName(senderText) }
        let sequence = try reader.readUInt32()
        let step = try reader.readUInt8()
        let count = Int(try reader.readUInt32())
        guard count <= reader.remaining / 4 else { throw .truncated }
        var elements: [GroupElement] = []
        for _ in 0..<count { elements.append(GroupElement(bytes: try reader.readBlob(bytesMax: 1024))) }
        let payloadCount = Int(try reader.readUInt32())
        guard payloadCount <= reader.remaining / 4 else { throw .truncated }
        var payload: [[UInt8]] = []
        for _ in 0..<payloadCount { payload.append(try reader.readBlob(bytesMax: 1 << 16)) }
        try reader.expectEnd()
        return KeyAgreementMessage(
            protocolName: protocolName, run: GroupViewID(configuration: ConfigurationID(epoch: epoch, representative: representative), sequence: runSequence),
            sender: sender, sequence: sequence, step: step, elements: elements, payload: payload)
    }
}

/// The members' Ed25519 public keys, as configured (the daemons' or clients' key files).
public struct MemberKeyDirectory: Sendable {
    private var keys: [MemberID: [UInt8]]

    /// A directory of raw 32-byte public keys.
    public init(_ keys: [MemberID: [UInt8]] = [:]) { self.keys = keys }

    /// The raw public key of `member`, if configured.
    public func publicKey(of member: MemberID) -> [UInt8]? { keys[member] }

    /// Adds or replaces a member's key.
    public mutating func set(_ key: [UInt8], for member: MemberID) { keys[member] = key }
}

/// An Ed25519 signing key (RFC 8032) on swift-crypto, held as its 32-byte seed.
public struct SigningKey: Sendable {
    /// The private seed.
    public let privateKeyBytes: [UInt8]
    /// The public key.
    public let publicKeyBytes: [UInt8]

    /// A fresh key from the system's cryptographic generator.
    public static func generate() -> SigningKey {
        let key = Curve25519.Signing.PrivateKey()
        return SigningKey(privateKeyBytes: Array(key.rawRepresentation), publicKeyBytes: Array(key.publicKey.rawRepresentation))
    }

    /// The key with seed `privateKeyBytes`.
    public init(privateKeyBytes: [UInt8]) throws(CryptoError) {
        do {
            let key = try Curve25519.Signing.PrivateKey(rawRepresentation: privateKeyBytes)
            self.init(privateKeyBytes: privateKeyBytes, publicKeyBytes: Array(key.publicKey.rawRepresentation))
        } catch {
            throw .invalidKeyLength(expected: 32, got: privateKeyBytes.count)
        }
    }

    private init(privateKeyBytes: [UInt8], publicKeyBytes: [UInt8]) {
        self.privateKeyBytes = privateKeyBytes
        self.publicKeyBytes = publicKeyBytes
    }

    /// The 64-byte signature of `message`.
    public func signature(for message: [UInt8]) throws(KeyAgreementError) -> [UInt8] {
        do {
            return Array(try Curve25519.Signing.PrivateKey(rawRepresentation: privateKeyBytes).signature(for: message))
        } catch {
            throw .crypto(.backendFailure("Ed25519 signing: \(error)"))
        }
    }

    /// Whether `signature` is `publicKey`'s signature of `message`.
    public static func isValid(signature: [UInt8], for message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}
