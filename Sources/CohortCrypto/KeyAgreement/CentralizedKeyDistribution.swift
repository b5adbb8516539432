public import CohortCore

/// Centralized key distribution (CKD), as measured by Amir, Kim, Nita-Rotaru and Tsudik ("On the
/// performance of group key agreement protocols", ACM TISSEC 2004): the controller — the oldest
/// member, first in view order — holds a pairwise Diffie-Hellman key with every other member and
/// sends each a fresh group secret sealed under it.
///
/// 1. the controller C broadcasts g^r_C and the members it already holds a pairwise key with;
/// 2. every other member Mᵢ validates it, picks rᵢ and sends g^rᵢ to C; its pairwise secret is
///    (g^r_C)^rᵢ;
/// 3. once C has every g^rᵢ, it picks a random 32-byte secret S and broadcasts, for each member in
///    view order, S sealed with AES-256-GCM under HKDF(pairwise secret, run) — a key per run, so
///    nonce (0, i) never repeats under one key; associated data the run and the member.
///
/// Pairwise secrets are kept across views, as the paper's CKD does: when C holds one with every
/// member (a leave, a partition, a refresh), the run is step 3 alone — one round, one message.
/// A member keeps its secret from the moment it answers; C from the moment the answer is
/// delivered, so C never lists a member that lacks it. A member that left holds only its own
/// pairwise secret, which no share of a later run is sealed under; C drops the secrets of
/// members outside the view, and when C leaves, the next oldest member starts afresh. A fresh
/// run: three rounds, n + 1 messages, critical path n + 1 exponentiations at C. Only
/// exponentiation is needed: X25519 works.
public struct CentralizedKeyDistribution<Random: RandomNumberGenerator>: KeyAgreement {
    public static var name: String { "ckd" }

    private static var stepOffer: UInt8 { 1 }
    private static var stepReply: UInt8 { 2 }
    private static var stepShares: UInt8 { 3 }

    private let identity: KeyAgreementIdentity
    private let group: any DHGroup
    private var random: Random
    private var current: Run?
    /// As controller: the pairwise secret with each member whose answer was delivered.
    private var memberSecrets: [MemberID: [UInt8]] = [:]
    /// As member: the pairwise secrets with each controller, newest last (at most two: the one
    /// the controller holds may be older than an answer a view change cut off).
    private var controllerSecrets: [MemberID: [[UInt8]]] = [:]

    private struct Run {
        var admission: RunAdmission
        let members: [MemberID]
        let secret: Exponent
        /// Controller: the members whose answers are still missing.
        var awaiting: Set<MemberID> = []
        var done = false

        var controller: MemberID { members[0] }
    }

    /// A member `identity` agreeing keys in `group`, drawing its secrets from `random` (a
    /// cryptographic generator outside tests).
    public init(identity: KeyAgreementIdentity, group: any DHGroup, random: Random) {
        self.identity = identity
        self.group = group
        self.random = random
    }

    public mutating func start(run: GroupViewID, members: [MemberID], continuing: Set<MemberID>) throws(KeyAgreementError) -> [KeyAgreementAction] {
        guard members.contains(identity.member) else { throw .notAMember(identity.member) }
        guard Set(members).count == members.count else { throw .unexpected("duplicate members") }
        var state = Run(admission: RunAdmission(protocolName: Self.name, run: run, members: members), members: members,
                        secret: group.randomExponent(using: &random))
        current = state
        // Pairwise secrets last only while both sides stay together (VS's transitional set):
        // whoever left may have answered another controller meanwhile.
        memberSecrets = memberSecrets.filter { continuing.contains($0.key) }
        controllerSecrets = controllerSecrets.filter { continuing.contains($0.key) }
        guard members[0] == identity.member else { return [] }  // members wait for the controller
        if members.count == 1 {
            current?.done = true
            return [.established(run: run, groupSecret: try groupSecret(from: randomBytes(32), run: run))]
        }
        let missing = members.dropFirst().filter { memberSecrets[$0] == nil }
        guard !missing.isEmpty else {
            // A pairwise secret with everyone: the shares at once.
            let actions = try shares(&state)
            current = state
            return actions
        }
        state.awaiting = Set(missing)
        let offer = try group.raise(group.generator, to: state.secret)
        var keyed = WireWriter(capacity: 32 * members.count)
        for member in members.dropFirst() where memberSecrets[member] != nil { keyed.writeShortString(member.description) }
        let message = try state.admission.sign(step: Self.stepOffer, elements: [offer], payload: [keyed.bytes], as: identity)
        current = state
        return [.broadcast(message)]
    }

    public mutating func receive(_ bytes: [UInt8]) throws(KeyAgreementError) -> [KeyAgreementAction] {
        guard var state = current else { throw .unexpected("no run started") }
        guard let message = try state.admission.admitFromPeer(bytes, directory: identity.directory, me: identity.member) else {
            current = state  // its own broadcast, delivered back: nothing to do
            return []
        }
        let isController = state.controller == identity.member
        switch (message.step, isController) {
        case (Self.stepOffer, false):
            guard message.sender == state.controller, message.elements.count == 1, message.payload.count == 1 else {
                throw .unexpected("offer from \(message.sender)")
            }
            if try Self.members(in: message.payload[0]).contains(identity.member) {
                // The controller holds a pairwise secret with this member already.
                guard controllerSecrets[state.controller] != nil else { throw .unexpected("listed without a pairwise secret") }
                current = state
                return []
            }
            let offer = message.elements[0]
            try group.check(offer)
            let pairwise = try group.raise(offer, to: state.secret).bytes
            let reply = try group.raise(group.generator, to: state.secret)
            let signedReply = try state.admission.sign(step: Self.stepReply, elements: [reply], as: identity)
            controllerSecrets[state.controller] = (controllerSecrets[state.controller] ?? []).suffix(1) + [pairwise]
            current = state
            return [.send(signedReply, to: state.controller)]

        case (Self.stepReply, true):
            guard message.elements.count == 1, state.awaiting.contains(message.sender) else { throw .unexpected("reply from \(message.sender)") }
            try group.check(message.elements[0])
            memberSecrets[message.sender] = try group.raise(message.elements[0], to: state.secret).bytes
            state.awaiting.remove(message.sender)
            let actions = state.awaiting.isEmpty ? try shares(&state) : []
            current = state
            return actions

        case (Self.stepShares, false):
            guard message.sender == state.controller, !state.done, message.payload.count == state.members.count - 1,
                  let index = state.members.firstIndex(of: identity.member), let held = controllerSecrets[state.controller]
            else { throw .unexpected("shares from \(message.sender)") }
            // The newest secret first; the one before it if an answer was cut off.
            var opened: [UInt8]?
            var failure = KeyAgreementError.unexpected("no pairwise secret")
            for secret in held.reversed() where opened == nil {
                do {
                    opened = try open(message.payload[index - 1], key: try pairwiseKey(secret, run: state.admission.run), index: index,
                                      member: identity.member, run: state.admission.run)
                } catch { failure = error }
            }
            guard let secret = opened else { throw failure }
            state.done = true
            current = state
            return [.established(run: state.admission.run, groupSecret: try groupSecret(from: secret, run: state.admission.run))]

        default:
            throw .unexpected("step \(message.step) from \(message.sender)")
        }
    }

    /// The controller's last step: a fresh secret sealed for every member, and its own key.
    private mutating func shares(_ state: inout Run) throws(KeyAgreementError) -> [KeyAgreementAction] {
        let secret = randomBytes(32)
        var shares: [[UInt8]] = []
        for index in 1..<state.members.count {
            let key = try pairwiseKey(memberSecrets[state.members[index]]!, run: state.admission.run)
            shares.append(try seal(secret, key: key, index: index, member: state.members[index], run: state.admission.run))
        }
        let signedShares = try state.admission.sign(step: Self.stepShares, elements: [], payload: shares, as: identity)
        state.done = true
        return [.broadcast(signedShares), .established(run: state.admission.run, groupSecret: try groupSecret(from: secret, run: state.admission.run))]
    }

    private static func members(in bytes: [UInt8]) throws(KeyAgreementError) -> Set<MemberID> {
        let result: Result<Set<MemberID>, KeyAgreementError> = bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            var members: Set<MemberID> = []
            while reader.remaining > 0 {
                guard let text = try? reader.readShortString(), let member = MemberID(privateGroup: text) else { return .failure(.malformed("member list")) }
                members.insert(member)
            }
            return .success(members)
        }
        return try result.get()
    }

    // MARK: - Helpers

    /// The key sealing this run's share under a pairwise secret: one key per run, so the share
    /// nonces never repeat under a key.
    private func pairwiseKey(_ secret: [UInt8], run: GroupViewID) throws(KeyAgreementError) -> [UInt8] {
        try protocolStep { () throws(CryptoError) in
            try HKDF.keyMaterial(for: AES256GCM.self, secret: secret, context: Array("ckd-pairwise/".utf8) + run.encoded)
        }
    }

    private func associatedData(member: MemberID, run: GroupViewID) -> [UInt8] {
        Array("cohort/ckd/share/".utf8) + run.encoded + Array(member.description.utf8)
    }

    private func seal(_ secret: [UInt8], key: [UInt8], index: Int, member: MemberID, run: GroupViewID) throws(KeyAgreementError) -> [UInt8] {
        let ad = associatedData(member: member, run: run)
        return try protocolStep { () throws(CryptoError) in
            let suite = try AES256GCM(keyMaterial: key)
            var output: [UInt8] = []
            try withBytes(secret) { (plaintext) throws(CryptoError) in
                try withBytes(ad) { (ad) throws(CryptoError) in
                    try suite.seal(plaintext, nonce: Nonce(sender: 0, counter: UInt64(index)), associatedData: ad, into: &output)
                }
            }
            return output
        }
    }

    private func open(_ share: [UInt8], key: [UInt8], index: Int, member: MemberID, run: GroupViewID) throws(KeyAgreementError) -> [UInt8] {
        let ad = associatedData(member: member, run: run)
        return try protocolStep { () throws(CryptoError) in
            let suite = try AES256GCM(keyMaterial: key)
            return try withBytes(share) { (share) throws(CryptoError) in
                try withBytes(ad) { (ad) throws(CryptoError) in
                    try suite.open(share, nonce: Nonce(sender: 0, counter: UInt64(index)), associatedData: ad)
                }
            }
        }
    }

    private func groupSecret(from secret: [UInt8], run: GroupViewID) throws(KeyAgreementError) -> [UInt8] {
        try protocolStep { () throws(CryptoError) in
            try HKDF.sha256(inputKeyMaterial: secret, info: Array("cohort/ckd/".utf8) + run.encoded, outputBytes: 32)
        }
    }

    private mutating func randomBytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }




}
