public import CohortCore
import CohortCrypto

/// The client side of Integrated VS (docs/architectures.md): every data message and flush-ok
/// is sealed under the key of the VS view it is tagged with, and opened by the receivers of
/// that view.
///
/// Key material: a view key K_{g,i} (from the daemons, over TLS or the local socket) becomes
/// cipher keys with HKDF-SHA256 (info: suite name, group, view id), so suites and views never
/// share key material. Nonces: every member of the view holds the same key, so the nonce is
/// (sender index, counter): the sender index is the member's position in the view's member
/// list, which every member sees the same and no two members share, and the counter counts the
/// member's own messages under the key from 0. No nonce repeats under a key by construction.
/// The envelope's key id, sender index and counter are authenticated with the group, the
/// message type and the service as associated data. A receiver checks that the sender index
/// names the member the daemons say sent the message.
///
/// `@unchecked Sendable`: ``GroupCipher`` holds OpenSSL contexts; the hooks of one connection
/// are used under that connection's lock only.
public struct IntegratedClientSecurity: ClientSecurityHooks, @unchecked Sendable {
    /// Views kept per group at most: the one the flush layer installed and those delivered
    /// after it, which it has yet to install (``viewInstalled(_:)`` drops the older ones). The
    /// bound only stops a daemon that never lets a flush finish from growing the table.
    public static let viewsPerGroupMax = 1024

    /// One view's key, ready to seal and open.
    struct ViewCipher {
        var group: GroupName
        var viewID: GroupViewID
        var members: [MemberID]
        var cipher: GroupCipher
    }

    public var architectureName: String { "integrated-vs" }
    public var requiresVirtualSynchrony: Bool { true }

    private let member: MemberID
    private let suite: any CipherSuite.Type
    /// Ciphers by key id.
    private var ciphers: [UInt32: ViewCipher] = [:]
    /// The regular views of each group in the order the daemon delivered them, with their key
    /// ids (`nil`: the view came without a key), from the one the flush layer installed on.
    private var viewKeys: [GroupName: [(viewID: GroupViewID, keyID: UInt32?)]] = [:]

    /// Hooks for `member`, sealing with `options.cipher`.
    public init(member: MemberID, options: ArchitectureOptions) throws(ArchitectureSetupError) {
        try options.validate()
        self.member = member
        do {
            suite = try CipherSuites.named(options.cipher)
        } catch {
            throw ArchitectureSetupError("cipher: \(error)")
        }
    }

    /// The key ids this member holds, for tests and tools.
    public var heldKeyIDs: Set<UInt32> { Set(ciphers.keys) }

    public mutating func install(_ view: inout GroupView) throws(ArchitectureError) {
        guard !view.transitional, !view.members.isEmpty else { return }
        guard let key = view.key, !key.secret.isEmpty else {
            remember(view.viewID, keyID: nil, in: view.group)
            return
        }
        defer { view.key = ViewKey(keyID: key.keyID, secret: []) }
        guard let index = view.members.firstIndex(of: member) else {
            throw ArchitectureError("the daemon sent the key of \(view.group) view \(view.viewID), which this member is not in")
        }
        if ciphers[key.keyID] != nil {
            remember(view.viewID, keyID: key.keyID, in: view.group)
            return
        }
        let cipher: GroupCipher
        do {
            let material = try HKDF.keyMaterial(for: suite, secret: key.secret, context: Self.context(group: view.group, viewID: view.viewID))
            cipher = try GroupCipher(suite: suite, keyMaterial: material, keyID: key.keyID, sender: UInt32(index))
        } catch {
            throw ArchitectureError("cannot set up the key of \(view.group) view \(view.viewID): \(error)")
        }
        ciphers[key.keyID] = ViewCipher(group: view.group, viewID: view.viewID, members: view.members, cipher: cipher)
        remember(view.viewID, keyID: key.keyID, in: view.group)
    }

    public mutating func viewInstalled(_ view: GroupView) {
        guard var list = viewKeys[view.group] else { return }
        guard view.members.contains(member) else {
            // This member left the group: none of its keys is needed again.
            forget(list, in: view.group)
            viewKeys[view.group] = nil
            return
        }
        guard let position = list.lastIndex(where: { $0.viewID == view.viewID }), position > 0 else { return }
        forget(list[..<position], in: view.group)
        list.removeFirst(position)
        viewKeys[view.group] = list
    }

    /// Records a view the daemon delivered, dropping the oldest beyond the bound.
    private mutating func remember(_ viewID: GroupViewID, keyID: UInt32?, in group: GroupName) {
        var list = viewKeys[group, default: []]
        list.append((viewID, keyID))
        if list.count > Self.viewsPerGroupMax {
            forget(list.prefix(list.count - Self.viewsPerGroupMax), in: group)
            list.removeFirst(list.count - Self.viewsPerGroupMax)
        }
        viewKeys[group] = list
    }

    /// Drops the ciphers of `views`.
    private mutating func forget(_ views: some Sequence<(viewID: GroupViewID, keyID: UInt32?)>, in group: GroupName) {
        for view in views {
            if let keyID = view.keyID, ciphers[keyID]?.group == group, ciphers[keyID]?.viewID == view.viewID { ciphers[keyID] = nil }
        }
    }

    public mutating func seal(_ message: inout OutgoingMessage) throws(ArchitectureError) {
        guard message.groups.count == 1, let group = message.groups.first else {
            throw ArchitectureError("integrated-vs seals a message for exactly one group")
        }
        guard let viewID = VirtualSynchrony.taggedViewID(of: message.payload) else {
            throw ArchitectureError("integrated-vs seals only messages of the flush layer (join \(group) with virtual synchrony)")
        }
        guard let keyID = viewKeys[group]?.last(where: { $0.viewID == viewID })?.keyID ?? nil, let entry = ciphers[keyID] else {
            throw ArchitectureError("no key for \(group) view \(viewID): its daemons' key agreement was cut short; wait for the next view")
        }
        do {
            message.payload = try entry.cipher.seal(message.payload, header: Self.header(group: group, messageType: message.messageType, service: message.service))
        } catch {
            throw ArchitectureError("sealing for \(group): \(error)")
        }
    }

    public mutating func open(_ message: inout DeliveredMessage) throws(ArchitectureError) {
        guard let keyID = GroupCipher.keyID(of: message.payload) else {
            throw ArchitectureError("a message from \(message.sender) is too short to be sealed")
        }
        guard let entry = ciphers[keyID] else {
            throw ArchitectureError("key \(ViewKey.hex(keyID)) is not held", kind: .notForThisMember)
        }
        guard message.groups == [entry.group] else {
            throw ArchitectureError("a message from \(message.sender) under the key of \(entry.group) was addressed to \(message.groups)")
        }
        guard let sender = entry.members.firstIndex(of: message.sender) else {
            throw ArchitectureError("a message from \(message.sender), not a member of \(entry.group) view \(entry.viewID), under its key")
        }
        do {
            // The sender the daemons name must be the one that sealed it.
            let (_, plaintext) = try entry.cipher.open(
                message.payload, header: Self.header(group: entry.group, messageType: message.messageType, service: message.service),
                expectedSender: UInt32(sender))
            message.payload = plaintext
        } catch {
            throw ArchitectureError("a message from \(message.sender) in \(entry.group) does not open: \(error)")
        }
    }

    // MARK: - Encodings

    /// HKDF's context for a view's cipher keys.
    static func context(group: GroupName, viewID: GroupViewID) -> [UInt8] {
        var writer = WireWriter(capacity: 80)
        writer.writeShortString(group.rawValue)
        writer.write(bytes: viewID.encoded)
        return writer.bytes
    }

    /// The associated data of a sealed message besides the envelope's own header.
    static func header(group: GroupName, messageType: UInt16, service: ServiceType) -> [UInt8] {
        var writer = WireWriter(capacity: 40)
        writer.writeShortString(group.rawValue)
        writer.write(messageType)
        writer.write(service.level.rawValue)
        return writer.bytes
    }
}
