public import CohortCore

/// What a key agreement asks its driver to do.
public enum KeyAgreementAction: Hashable, Sendable {
    /// Send these signed bytes to every member of the run, the sender included, in the group's
    /// FIFO order (a group communication system delivers a member's own messages back to it;
    /// the tree protocols commit their public state only on delivery, so a message that a view
    /// change cut off is forgotten by its sender too).
    case broadcast([UInt8])
    /// Send these signed bytes to one member.
    case send([UInt8], to: MemberID)
    /// The run finished: the 32-byte group secret for `run` (to be turned into cipher keys with
    /// ``HKDF/keyMaterial(for:secret:context:)``).
    case established(run: GroupViewID, groupSecret: [UInt8])
}

/// One member's side of a contributory group key agreement protocol, as a sans-IO state machine
/// (DESIGN.md §2, `KeyAgreement`). The driver starts a run for each new view (join, leave,
/// merge, partition, refresh — the protocol decides what it can reuse) and feeds it every
/// message of the run, in FIFO order per sender. Starting a run abandons the one in progress:
/// a cascaded membership change restarts cleanly on the new membership, and messages of the
/// abandoned run are refused as ``KeyAgreementError/wrongRun(expected:got:)``.
///
/// The driver is a Virtual Synchrony layer (DESIGN.md §1): the members that move together from
/// one view to the next have delivered the same messages in the first. The protocols that keep
/// state across views (TGDH, STR) rely on it; the others start afresh in every run.
public protocol KeyAgreement {
    /// The registered name.
    static var name: String { get }
    /// Starts the agreement for `run` among `members` (the new view's members, in the order
    /// every member sees); `continuing` are the members of the new view that come with this one
    /// from its previous view (VS's transitional set, this member included).
    mutating func start(run: GroupViewID, members: [MemberID], continuing: Set<MemberID>) throws(KeyAgreementError) -> [KeyAgreementAction]
    /// Handles one received, signed message. A refused message changes nothing.
    mutating func receive(_ bytes: [UInt8]) throws(KeyAgreementError) -> [KeyAgreementAction]
}

/// Identity and trust of one member: its signing key and everyone's public keys.
public struct KeyAgreementIdentity: Sendable {
    /// This member.
    public var member: MemberID
    /// Its Ed25519 signing key.
    public var signingKey: SigningKey
    /// The public keys of every member it may agree keys with.
    public var directory: MemberKeyDirectory

    /// Creates an identity.
    public init(member: MemberID, signingKey: SigningKey, directory: MemberKeyDirectory) {
        self.member = member
        self.signingKey = signingKey
        self.directory = directory
    }
}

/// One run's message bookkeeping, shared by every protocol: the checks made before a protocol
/// looks at a message (signature, protocol, run, membership, a per-sender sequence that only
/// increases, so replayed and reordered messages are refused; ``admit(_:directory:)``
/// has no effect on failure), and the signing of outgoing messages with this member's next
/// sequence number.
struct RunAdmission: Sendable {
    let protocolName: String
    let run: GroupViewID
    let members: Set<MemberID>
    private var nextSequence: [MemberID: UInt32] = [:]
    private var nextOwnSequence: UInt32 = 0
    /// This member's own messages not yet delivered back: recognised by their bytes, so their
    /// signatures need no second check.
    private var ownUndelivered: Set<[UInt8]> = []

    init(protocolName: String, run: GroupViewID, members: [MemberID]) {
        self.protocolName = protocolName
        self.run = run
        self.members = Set(members)
    }

    /// Verifies and admits a message of this run (this member's own included: broadcasts come
    /// back to their sender).
    mutating func admit(_ bytes: [UInt8], directory: MemberKeyDirectory) throws(KeyAgreementError) -> KeyAgreementMessage {
        // The cheap checks first, the signature last (it costs the most).
        let isOwn = ownUndelivered.contains(bytes)
        let (message, body, signature) = try KeyAgreementMessage.decodedUnverified(bytes)
        guard message.protocolName == protocolName else { throw .wrongProtocol(expected: protocolName, got: message.protocolName) }
        guard message.run == run else { throw .wrongRun(expected: run, got: message.run) }
        guard members.contains(message.sender) else { throw .notAMember(message.sender) }
        let expected = nextSequence[message.sender, default: 0]
        // Strictly increasing per sender; gaps are the sender's unicasts to other members.
        guard message.sequence >= expected else { throw .replayed(sender: message.sender, sequence: message.sequence) }
        if !isOwn {
            guard let key = directory.publicKey(of: message.sender) else { throw .unknownSender(message.sender) }
            guard SigningKey.isValid(signature: signature, for: body, publicKey: key) else { throw .badSignature(sender: message.sender) }
        }
        nextSequence[message.sender] = message.sequence + 1
        if isOwn { ownUndelivered.remove(bytes) }
        return message
    }

    /// ``admit(_:directory:)`` for the protocols that have nothing to do with their own
    /// broadcasts: `nil` when the message is `me`'s own, delivered back (it is still consumed).
    mutating func admitFromPeer(_ bytes: [UInt8], directory: MemberKeyDirectory, me: MemberID) throws(KeyAgreementError) -> KeyAgreementMessage? {
        let message = try admit(bytes, directory: directory)
        return message.sender == me ? nil : message
    }

    /// A message of this run from `identity`, signed, with the next sequence number.
    mutating func sign(step: UInt8, elements: [GroupElement], payload: [[UInt8]] = [], as identity: KeyAgreementIdentity) throws(KeyAgreementError) -> [UInt8] {
        let message = KeyAgreementMessage(
            protocolName: protocolName, run: run, sender: identity.member, sequence: nextOwnSequence,
            step: step, elements: elements, payload: payload)
        nextOwnSequence += 1
        let bytes = try message.signed(with: identity.signingKey)
        ownUndelivered.insert(bytes)
        return bytes
    }
}

/// A crypto kit operation inside a protocol: its ``CryptoError`` becomes a ``KeyAgreementError``.
func protocolStep<T>(_ body: () throws(CryptoError) -> T) throws(KeyAgreementError) -> T {
    do { return try body() } catch { throw .crypto(error) }
}

extension DHGroup {
    /// `base` raised to `exponent`, failing as a key agreement error.
    func raise(_ base: GroupElement, to exponent: Exponent) throws(KeyAgreementError) -> GroupElement {
        try protocolStep { () throws(CryptoError) in try power(base, exponent) }
    }

    /// Validates a peer's element, failing as a key agreement error.
    func check(_ element: GroupElement) throws(KeyAgreementError) {
        try protocolStep { () throws(CryptoError) in try validate(element) }
    }
}

/// The registered key agreement protocols.
public enum KeyAgreements {
    /// Registered names.
    public static let names = ["ckd", "bd", "str", "gdh", "tgdh"]

    /// Whether the protocol named `name` needs an ``ArithmeticDHGroup`` (a MODP group) rather
    /// than only exponentiation.
    public static func needsArithmetic(_ name: String) -> Bool { name == "bd" || name == "gdh" }

    /// A member `identity` running the protocol named `name` in `group`, drawing its secrets
    /// from `random` (a cryptographic generator outside tests).
    public static func make<Random: RandomNumberGenerator>(
        _ name: String, identity: KeyAgreementIdentity, group: any DHGroup, random: Random
    ) throws(KeyAgreementError) -> any KeyAgreement {
        if needsArithmetic(name) {
            guard let arithmetic = group as? any ArithmeticDHGroup else {
                throw .unexpected("\(name) needs a MODP group; \(group.name) only exponentiates")
            }
            if name == "bd" { return BurmesterDesmedt(identity: identity, group: arithmetic, random: random) }
            return GroupDiffieHellman(identity: identity, group: arithmetic, random: random)
        }
        switch name {
        case "ckd": return CentralizedKeyDistribution(identity: identity, group: group, random: random)
        case "str": return SkinnyTreeDiffieHellman(identity: identity, group: group, random: random)
        case "tgdh": return TreeGroupDiffieHellman(identity: identity, group: group, random: random)
        default: throw .unexpected("unknown key agreement '\(name)'; available: \(names.joined(separator: ", "))")
        }
    }
}

extension GroupViewID {
    /// An unambiguous encoding, for key derivation contexts.
    public var encoded: [UInt8] {
        var writer = WireWriter(capacity: 48)
        writer.write(configuration.epoch)
        writer.writeShortString(configuration.representative)
        writer.write(sequence)
        return writer.bytes
    }
}
