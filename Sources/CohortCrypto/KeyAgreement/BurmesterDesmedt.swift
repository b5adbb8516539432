public import CohortCore

/// Burmester-Desmedt group key agreement (Burmester and Desmedt, "A secure and efficient
/// conference key distribution system", EUROCRYPT 1994), with the members on a ring in view
/// order M₀ … Mₙ₋₁:
///
/// 1. every Mᵢ picks a fresh rᵢ and broadcasts zᵢ = g^rᵢ;
/// 2. once it has every z, Mᵢ broadcasts Xᵢ = (zᵢ₊₁ / zᵢ₋₁)^rᵢ;
/// 3. once it has every X, Mᵢ computes K = zᵢ₋₁^(n·rᵢ) · Xᵢ^(n−1) · Xᵢ₊₁^(n−2) ⋯ Xᵢ₋₂
///    = g^(r₀r₁ + r₁r₂ + … + rₙ₋₁r₀).
///
/// Two rounds, 2n broadcasts, per member 3 full exponentiations plus n − 1 with small
/// exponents; every membership change is a fresh run (no state carries over, so a member that
/// left learns nothing from the next run's messages). With two members, step 2 is skipped
/// (X = 1, K = z^(2r)); a lone member's secret is z₀^r₀. Needs an ``ArithmeticDHGroup``.
public struct BurmesterDesmedt<Random: RandomNumberGenerator>: KeyAgreement {
    public static var name: String { "bd" }

    private static var stepZ: UInt8 { 1 }
    private static var stepX: UInt8 { 2 }

    private let identity: KeyAgreementIdentity
    private let group: any ArithmeticDHGroup
    private var random: Random
    private var current: Run?

    private struct Run {
        var admission: RunAdmission
        let members: [MemberID]
        let index: Int
        let secret: Exponent
        var z: [Int: GroupElement] = [:]
        var x: [Int: GroupElement] = [:]
        var sentX = false
        var done = false
    }

    /// A member `identity` agreeing keys in `group`, drawing its secrets from `random` (a
    /// cryptographic generator outside tests).
    public init(identity: KeyAgreementIdentity, group: any ArithmeticDHGroup, random: Random) {
        self.identity = identity
        self.group = group
        self.random = random
    }

    // MARK: - Start

    public mutating func start(run: GroupViewID, members: [MemberID], continuing: Set<MemberID>) throws(KeyAgreementError) -> [KeyAgreementAction] {
        guard let index = members.firstIndex(of: identity.member) else { throw .notAMember(identity.member) }
        guard Set(members).count == members.count else { throw .unexpected("duplicate members") }
        let exponent = group.randomExponent(using: &random)
        var state = Run(admission: RunAdmission(protocolName: Self.name, run: run, members: members), members: members, index: index, secret: exponent)
        let z = try group.raise(group.generator, to: exponent)
        state.z[index] = z
        current = state
        if members.count == 1 {
            current?.done = true
            return [.established(run: run, groupSecret: try secret(from: try group.raise(z, to: exponent), run: run))]
        }
        let message = try current!.admission.sign(step: Self.stepZ, elements: [z], as: identity)
        return [.broadcast(message)]
    }

    // MARK: - Messages

    public mutating func receive(_ bytes: [UInt8]) throws(KeyAgreementError) -> [KeyAgreementAction] {
        guard var state = current else { throw .unexpected("no run started") }
        // 1. Everything that can be refused is checked on a copy: a refused message changes nothing.
        guard let message = try state.admission.admitFromPeer(bytes, directory: identity.directory, me: identity.member) else {
            current = state  // its own broadcast, delivered back: nothing to do
            return []
        }
        guard message.elements.count == 1 else { throw .malformed("expected one element, got \(message.elements.count)") }
        let sender = state.members.firstIndex(of: message.sender)!
        let element = message.elements[0]
        switch message.step {
        case Self.stepZ:
            guard state.z[sender] == nil else { throw .unexpected("second z from \(message.sender)") }
            try group.check(element)
            state.z[sender] = element
        case Self.stepX where state.members.count > 2:
            guard state.x[sender] == nil else { throw .unexpected("second X from \(message.sender)") }
            try group.check(element)
            state.x[sender] = element
        default:
            throw .unexpected("step \(message.step) from \(message.sender)")
        }
        // 2. Progress.
        var actions: [KeyAgreementAction] = []
        let n = state.members.count
        if !state.sentX, state.z.count == n, n > 2 {
            let next = state.z[(state.index + 1) % n]!
            let previous = state.z[(state.index + n - 1) % n]!
            let ratio = try protocolStep { () throws(CryptoError) in try group.multiply(next, try group.inverse(previous)) }
            let x = try group.raise(ratio, to: state.secret)
            state.x[state.index] = x
            state.sentX = true
            actions.append(.broadcast(try state.admission.sign(step: Self.stepX, elements: [x], as: identity)))
        }
        if !state.done, state.z.count == n, n == 2 || state.x.count == n {
            state.done = true
            let secret = try secret(from: try key(state), run: state.admission.run)
            actions.append(.established(run: state.admission.run, groupSecret: secret))
        }
        current = state
        return actions
    }

    // MARK: - Computation

    /// K = zᵢ₋₁^(n·rᵢ) · Π_{j=0}^{n−2} Xᵢ₊ⱼ^(n−1−j).
    private func key(_ state: Run) throws(KeyAgreementError) -> GroupElement {
        let n = state.members.count
        let previous = state.z[(state.index + n - 1) % n]!
        var key = try group.raise(try group.raise(previous, to: state.secret), to: small(n))
        if n > 2 {
            for j in 0..<(n - 1) {
                let x = state.x[(state.index + j) % n]!
                key = try protocolStep { () throws(CryptoError) in try group.multiply(key, try group.power(x, small(n - 1 - j))) }
            }
        }
        return key
    }

    private func small(_ value: Int) -> Exponent {
        withUnsafeBytes(of: UInt64(value).bigEndian) { Exponent(bytes: Array($0)) }
    }

    private func secret(from element: GroupElement, run: GroupViewID) throws(KeyAgreementError) -> [UInt8] {
        try protocolStep { () throws(CryptoError) in
            try HKDF.sha256(inputKeyMaterial: element.bytes, info: Array("cohort/bd/".utf8) + run.encoded, outputBytes: 32)
        }
    }
}
