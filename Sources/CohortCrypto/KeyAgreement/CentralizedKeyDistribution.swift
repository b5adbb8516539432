public import CohortCore

/// Centralized key distribution (CKD), as measured by Amir, Kim, Nita-Rotaru and Tsudik ("On the
/// performance of group key agreement protocols", ACM TISSEC 2004): the controller — the oldest
/// member, first in view order — establishes a pairwise Diffie-Hellman key with every other
/// member and sends each a fresh group secret sealed under that key.
///
/// 1. the controller C broadcasts g^r_C;
/// 2. every other member Mᵢ validates it, picks rᵢ and sends g^rᵢ to C; its pairwise key is
///    HKDF((g^r_C)^rᵢ);
/// 3. once C has every g^rᵢ, it picks a random 32-byte secret S and broadcasts, for each member in
///    view order, S sealed with AES-256-GCM under HKDF((g^rᵢ)^r_C) — nonce (0, i), associated
///    data the run and the member; each member opens its own share.
///
/// Three rounds, n + 1 messages (n − 1 of them unicasts to C), two exponentiations per member
/// and 2 + (n − 1) at the controller, which is the critical path. Every membership change is a
/// fresh run with fresh exponents and a fresh secret, so a member that left holds nothing that
/// opens the next one; when the controller leaves, the next oldest member simply becomes
/// controller of the next run. Only exponentiation is needed: X25519 works.
public struct CentralizedKeyDistribution<Random: RandomNumberGenerator>: KeyAgreement {
    public static var name: String { "ckd" }

    private static var stepOffer: UInt8 { 1 }
    private static var stepReply: UInt8 { 2 }
    private static var stepShares: UInt8 { 3 }

    private let identity: KeyAgreementIdentity
    private let group: any DHGroup
    private var random: Random
    private var current: Run?

    private struct Run {
        var admission: RunAdmission
        let members: [MemberID]
        let secret: Exponent
        /// Controller: each member's reply g^rᵢ, by position in the view.
        var replies: [Int: GroupElement] = [:]
        /// Member: the pairwise key with the controller.
        var pairwiseKey: [UInt8]?
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
        current = Run(admission: RunAdmission(protocolName: Self.name, run: run, members: members), members: members,
                      secret: group.randomExponent(using: &random))
        guard members[0] == identity.member else { return [] }  // members wait for the controller's offer
        if members.count == 1 {
            current?.done = true
            return [.established(run: run, groupSecret: try groupSecret(from: randomBytes(32), run: run))]
        }
        let offer = try group.raise(group.generator, to: current!.secret)
        let message = try current!.admission.sign(step: Self.stepOffer, elements: [offer], as: identity)
        return [.broadcast(message)]
    }

    public mutating func receive(_ bytes: [UInt8]) throws(KeyAgreementError) -> [KeyAgreementAction] {
        guard var state = current else { throw .unexpected("no run started") }
        let message = try state.admission.admit(bytes, directory: identity.directory)
        if message.sender == identity.member {  // a broadcast of its own, delivered back: nothing to do
            current = state
            return []
        }
        let isController = state.controller == identity.member
        switch (message.step, isController) {
        case (Self.stepOffer, false):
            guard message.sender == state.controller, message.elements.count == 1, state.pairwiseKey == nil else {
                throw .unexpected("offer from \(message.sender)")
            }
            let offer = message.elements[0]
            try group.check(offer)
            let pairwise = try group.raise(offer, to: state.secret)
            state.pairwiseKey = try pairwiseKey(pairwise, run: state.admission.run)
            let reply = try group.raise(group.generator, to: state.secret)
            let signedReply = try state.admission.sign(step: Self.stepReply, elements: [reply], as: identity)
            current = state
            return [.send(signedReply, to: state.controller)]

        case (Self.stepReply, true):
            guard message.elements.count == 1, let index = state.members.firstIndex(of: message.sender),
                  state.replies[index] == nil else { throw .unexpected("reply from \(message.sender)") }
            try group.check(message.elements[0])
            state.replies[index] = message.elements[0]
            guard state.replies.count == state.members.count - 1 else {
                current = state
                return []
            }
            // Every member replied: seal a fresh secret for each.
            let secret = randomBytes(32)
            var shares: [[UInt8]] = []
            for index in 1..<state.members.count {
                let key = try pairwiseKey(try group.raise(state.replies[index]!, to: state.secret), run: state.admission.run)
                shares.append(try seal(secret, key: key, index: index, member: state.members[index], run: state.admission.run))
            }
            let signedShares = try state.admission.sign(step: Self.stepShares, elements: [], payload: shares, as: identity)
            let established = try groupSecret(from: secret, run: state.admission.run)
            state.done = true
            current = state
            return [.broadcast(signedShares), .established(run: state.admission.run, groupSecret: established)]

        case (Self.stepShares, false):
            guard message.sender == state.controller, let key = state.pairwiseKey, !state.done,
                  message.payload.count == state.members.count - 1,
                  let index = state.members.firstIndex(of: identity.member)
            else { throw .unexpected("shares from \(message.sender)") }
            let secret = try open(message.payload[index - 1], key: key, index: index, member: identity.member, run: state.admission.run)
            state.done = true
            current = state
            return [.established(run: state.admission.run, groupSecret: try groupSecret(from: secret, run: state.admission.run))]

        default:
            throw .unexpected("step \(message.step) from \(message.sender)")
        }
    }

    // MARK: - Helpers

    private func pairwiseKey(_ element: GroupElement, run: GroupViewID) throws(KeyAgreementError) -> [UInt8] {
        try protocolStep { () throws(CryptoError) in
            try HKDF.keyMaterial(for: AES256GCM.self, secret: element.bytes, context: Array("ckd-pairwise/".utf8) + run.encoded)
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
