public import CohortCore

/// Group Diffie-Hellman GDH.3 (Steiner, Tsudik, Waidner, "Diffie-Hellman key distribution
/// extended to group communication", ACM CCS 1996; the IKA.2 of their later Cliques work), with
/// the members in view order M₁ … Mₙ and the newest, Mₙ, as controller:
///
/// 1. upflow: M₁ sends g^r₁ to M₂; each Mᵢ (i < n − 1) raises what it got to rᵢ and passes it
///    on; Mₙ₋₁ raises it and broadcasts V = g^(r₁⋯rₙ₋₁);
/// 2. every Mᵢ (i < n) factors its share out, V^(1/rᵢ), and sends it to Mₙ;
/// 3. Mₙ raises each to rₙ and broadcasts the list; Mᵢ's key is its entry raised to rᵢ, Mₙ's
///    is V^rₙ — every member gets g^(r₁⋯rₙ).
///
/// n + 1 rounds and 2n − 1 messages (n − 1 unicasts upflow and to the controller are
/// included), about 3 exponentiations per member and n at the controller, which is the critical
/// path with the upflow chain. Every membership change is a fresh run; the factor-out needs
/// exponent inverses modulo the group order, so it needs an ``ArithmeticDHGroup``.
public struct GroupDiffieHellman<Random: RandomNumberGenerator>: KeyAgreement {
    public static var name: String { "gdh" }

    private static var stepUpflow: UInt8 { 1 }
    private static var stepBroadcast: UInt8 { 2 }
    private static var stepFactorOut: UInt8 { 3 }
    private static var stepKeys: UInt8 { 4 }

    private let identity: KeyAgreementIdentity
    private let group: any ArithmeticDHGroup
    private var random: Random
    private var current: Run?

    private struct Run {
        var admission: RunAdmission
        let members: [MemberID]
        let index: Int
        let secret: Exponent
        var sentFactorOut = false
        /// Controller: the factored-out values, by member position.
        var factoredOut: [Int: GroupElement] = [:]
        var done = false

        var controller: Int { members.count - 1 }
    }

    /// A member `identity` agreeing keys in `group`, drawing its secrets from `random` (a
    /// cryptographic generator outside tests).
    public init(identity: KeyAgreementIdentity, group: any ArithmeticDHGroup, random: Random) {
        self.identity = identity
        self.group = group
        self.random = random
    }

    public mutating func start(run: GroupViewID, members: [MemberID], continuing: Set<MemberID>) throws(KeyAgreementError) -> [KeyAgreementAction] {
        guard let index = members.firstIndex(of: identity.member) else { throw .notAMember(identity.member) }
        guard Set(members).count == members.count else { throw .unexpected("duplicate members") }
        var state = Run(admission: RunAdmission(protocolName: Self.name, run: run, members: members), members: members, index: index,
                        secret: group.randomExponent(using: &random))
        var actions: [KeyAgreementAction] = []
        if members.count == 1 {
            state.done = true
            actions.append(.established(run: run, groupSecret: try groupSecret(try group.raise(group.generator, to: state.secret), run: run)))
        } else if index == 0 {
            // M₁ opens the upflow (or, with two members, is Mₙ₋₁ and broadcasts at once).
            let value = try group.raise(group.generator, to: state.secret)
            actions += try upflowReceived(value, previous: group.generator, state: &state)
        }
        current = state
        return actions
    }

    public mutating func receive(_ bytes: [UInt8]) throws(KeyAgreementError) -> [KeyAgreementAction] {
        guard var state = current else { throw .unexpected("no run started") }
        guard let message = try state.admission.admitFromPeer(bytes, directory: identity.directory, me: identity.member) else {
            current = state  // its own broadcast, delivered back: nothing to do
            return []
        }
        let sender = state.members.firstIndex(of: message.sender)!
        var actions: [KeyAgreementAction] = []
        switch message.step {
        case Self.stepUpflow:
            guard sender == state.index - 1, state.index < state.controller, message.elements.count == 1 else {
                throw .unexpected("upflow from \(message.sender)")
            }
            try group.check(message.elements[0])
            let value = try group.raise(message.elements[0], to: state.secret)
            actions = try upflowReceived(value, previous: message.elements[0], state: &state)

        case Self.stepBroadcast:
            guard sender == state.controller - 1, !state.sentFactorOut, !state.done, message.elements.count == 1 else {
                throw .unexpected("broadcast from \(message.sender)")
            }
            try group.check(message.elements[0])
            if state.index == state.controller {
                state.done = true
                let key = try group.raise(message.elements[0], to: state.secret)
                actions.append(.established(run: state.admission.run, groupSecret: try groupSecret(key, run: state.admission.run)))
                break
            }
            let inverse = try protocolStep { () throws(CryptoError) in try group.invertExponent(state.secret) }
            let factored = try group.raise(message.elements[0], to: inverse)
            state.sentFactorOut = true
            actions.append(.send(try state.admission.sign(step: Self.stepFactorOut, elements: [factored], as: identity),
                                 to: state.members[state.controller]))

        case Self.stepFactorOut:
            guard state.index == state.controller, sender < state.controller, state.factoredOut[sender] == nil,
                  message.elements.count == 1 else { throw .unexpected("factor-out from \(message.sender)") }
            try group.check(message.elements[0])
            state.factoredOut[sender] = message.elements[0]
            guard state.factoredOut.count == state.controller else { break }
            var keys: [GroupElement] = []
            for position in 0..<state.controller { keys.append(try group.raise(state.factoredOut[position]!, to: state.secret)) }
            actions.append(.broadcast(try state.admission.sign(step: Self.stepKeys, elements: keys, as: identity)))

        case Self.stepKeys:
            guard sender == state.controller, state.index < state.controller, !state.done,
                  message.elements.count == state.controller else { throw .unexpected("keys from \(message.sender)") }
            let mine = message.elements[state.index]
            try group.check(mine)
            state.done = true
            actions.append(.established(run: state.admission.run, groupSecret: try groupSecret(try group.raise(mine, to: state.secret), run: state.admission.run)))

        default:
            throw .unexpected("step \(message.step) from \(message.sender)")
        }
        current = state
        return actions
    }

    /// Mᵢ holds `value` = g^(r₁⋯rᵢ), computed from `previous` = g^(r₁⋯rᵢ₋₁): it passes the upflow
    /// on, or — as Mₙ₋₁ — broadcasts it, factors itself out (that is `previous`) for Mₙ and, once
    /// Mₙ answers, keys; the controller Mₙ keys from the broadcast value directly.
    private func upflowReceived(_ value: GroupElement, previous: GroupElement, state: inout Run) throws(KeyAgreementError) -> [KeyAgreementAction] {
        if state.index < state.controller - 1 {
            return [.send(try state.admission.sign(step: Self.stepUpflow, elements: [value], as: identity), to: state.members[state.index + 1])]
        }
        state.sentFactorOut = true
        return [
            .broadcast(try state.admission.sign(step: Self.stepBroadcast, elements: [value], as: identity)),
            .send(try state.admission.sign(step: Self.stepFactorOut, elements: [previous], as: identity), to: state.members[state.controller]),
        ]
    }

    private func groupSecret(_ element: GroupElement, run: GroupViewID) throws(KeyAgreementError) -> [UInt8] {
        try protocolStep { () throws(CryptoError) in
            try HKDF.sha256(inputKeyMaterial: element.bytes, info: Array("cohort/gdh/".utf8) + run.encoded, outputBytes: 32)
        }
    }
}
