public import CohortCore

/// Tree-based group Diffie-Hellman, TGDH (Kim, Perrig, Tsudik, "Tree-based group key
/// agreement", ACM TISSEC 7(1), 2004), with the robustness of Amir, Kim, Nita-Rotaru, Schultz,
/// Stanton, Tsudik ("Secure group communication using robust contributory key agreement",
/// IEEE TPDS 15(5), 2004).
///
/// Members are the leaves of a binary tree; a node's key is K = (g^K_left)^K_right mapped to an
/// exponent, its blinded key g^K is public; the root's key is the group secret. Each membership
/// change keeps the tree and recomputes only the paths it touches: the sponsor of a change (the
/// rightmost leaf of the subtree where it happened) refreshes its share, computes the keys up
/// its path and broadcasts the new blinded keys. A join or merge first has each merging
/// component's sponsor broadcast its tree; the smaller tree joins the larger at its shallowest
/// rightmost node that keeps the height. See `docs/key-agreement.md` for rounds and costs.
public struct TreeGroupDiffieHellman<Random: RandomNumberGenerator>: KeyAgreement {
    public static var name: String { "tgdh" }
    private var engine: KeyTreeEngine<Random>

    /// A member `identity` agreeing keys in `group` (any group: only exponentiation is needed,
    /// X25519 included), drawing its secrets from `random` (cryptographic outside tests).
    public init(identity: KeyAgreementIdentity, group: any DHGroup, random: Random) {
        engine = KeyTreeEngine(variant: .tgdh, identity: identity, group: group, random: random)
    }

    public mutating func start(run: GroupViewID, members: [MemberID], continuing: Set<MemberID>) throws(KeyAgreementError) -> [KeyAgreementAction] {
        try engine.start(run: run, members: members, continuing: continuing)
    }

    public mutating func receive(_ bytes: [UInt8]) throws(KeyAgreementError) -> [KeyAgreementAction] {
        try engine.receive(bytes)
    }
}

/// STR, the skinny-tree group Diffie-Hellman of Steer, Strawczynski, Diffie and Wiener (CRYPTO
/// 1988) as made dynamic by Kim, Perrig and Tsudik ("Group key agreement efficient in
/// communication", IEEE Trans. Computers 53(7), 2004): TGDH's machinery on a tree of height
/// n − 1, each level adding one member. Joins and merges put the new members on top (one
/// round after the trees are exchanged); a leave or partition has one sponsor, the member just
/// below the lowest one that left, recompute every key above it (one round).
public struct SkinnyTreeDiffieHellman<Random: RandomNumberGenerator>: KeyAgreement {
    public static var name: String { "str" }
    private var engine: KeyTreeEngine<Random>

    /// A member `identity` agreeing keys in `group` (any group), drawing its secrets from
    /// `random` (cryptographic outside tests).
    public init(identity: KeyAgreementIdentity, group: any DHGroup, random: Random) {
        engine = KeyTreeEngine(variant: .str, identity: identity, group: group, random: random)
    }

    public mutating func start(run: GroupViewID, members: [MemberID], continuing: Set<MemberID>) throws(KeyAgreementError) -> [KeyAgreementAction] {
        try engine.start(run: run, members: members, continuing: continuing)
    }

    public mutating func receive(_ bytes: [UInt8]) throws(KeyAgreementError) -> [KeyAgreementAction] {
        try engine.receive(bytes)
    }
}

/// What differs between TGDH and STR: the tree shape a merge builds and who refreshes after a
/// leave.
enum KeyTreeVariant: Sendable {
    case tgdh, str

    var name: String {
        switch self {
        case .tgdh: "tgdh"
        case .str: "str"
        }
    }

    /// The members that refresh their share after members left (`movedUp`: the subtrees that
    /// took a departed sibling's parent's place).
    func refreshers(_ movedUp: [KeyTreeShape.MovedUp]) -> [MemberID] {
        switch self {
        case .tgdh: movedUp.map(\.rightmost)
        case .str: movedUp.min { $0.leafCount < $1.leafCount }.map { [$0.rightmost] } ?? []
        }
    }

    /// `other` merged into `tree`, and the sponsor of the merge (who refreshes its share).
    func merge(_ tree: KeyTreeShape, _ other: KeyTreeShape) -> (tree: KeyTreeShape, sponsor: MemberID) {
        switch self {
        case .tgdh: tree.insertingTGDH(other)
        case .str: tree.insertingSTR(other)
        }
    }
}

/// One member's side of TGDH or STR.
///
/// The public tree changes only when a run starts (every member of a component applies the same
/// deterministic changes) and when a message is delivered — this member's own broadcasts
/// included, which come back to it. Keys it computed and sent but that a view change cut off are
/// forgotten with the run, so members that move together (VS) always hold the same public tree,
/// and a cascaded change restarts from it without waiting for a blinded key nobody has.
struct KeyTreeEngine<Random: RandomNumberGenerator> {
    private static var stepTree: UInt8 { 1 }
    private static var stepKeys: UInt8 { 2 }

    let variant: KeyTreeVariant
    private let identity: KeyAgreementIdentity
    private let group: any DHGroup
    private var random: Random
    /// The public tree; `nil` before the first run.
    private var tree: KeyTree?
    /// This member's leaf secrets by the blinded key they give (the public one, and a refresh
    /// not yet delivered).
    private var leafSecrets: [GroupElement: Exponent] = [:]
    private var current: Run?
    /// The keys this member computed on its path, by what they were computed from (a node's key
    /// is a function of its child's key and the sibling's blinded key): an unchanged part of
    /// the tree costs nothing in the next run. This run's and the previous run's.
    private var steps: [PathStep: Exponent] = [:]
    private var previousSteps: [PathStep: Exponent] = [:]

    private struct PathStep: Hashable {
        let sibling: GroupElement
        let child: Exponent
    }

    private struct Run {
        var admission: RunAdmission
        let members: [MemberID]
        /// Members whose share is new in this run; sponsors are chosen among them.
        var refreshers: Set<MemberID>
        /// This member's component: the members of its previous tree that came with it.
        let component: Set<MemberID>
        /// Members whose component tree has not been announced yet (a merge); empty once the
        /// run's tree is formed.
        var awaiting: Set<MemberID>
        var announced: [KeyTreeShape] = []
        /// Blinded keys this member sent and has not had delivered back, by node.
        var pending: [Int: GroupElement] = [:]
        /// Blinded keys to send in the next message, by node.
        var outgoing: [Int] = []
        /// Key messages admitted before the tree formed, handled once it has.
        var early: [KeyAgreementMessage] = []
        var done = false

        var formed: Bool { awaiting.isEmpty }
    }

    init(variant: KeyTreeVariant, identity: KeyAgreementIdentity, group: any DHGroup, random: Random) {
        self.variant = variant
        self.identity = identity
        self.group = group
        self.random = random
    }

    // MARK: - Start

    mutating func start(run: GroupViewID, members: [MemberID], continuing: Set<MemberID>) throws(KeyAgreementError) -> [KeyAgreementAction] {
        let me = identity.member
        guard members.contains(me) else { throw .notAMember(me) }
        let memberSet = Set(members)
        guard memberSet.count == members.count else { throw .unexpected("duplicate members") }
        var keeping = continuing.intersection(memberSet)
        keeping.insert(me)

        // 1. This member's component: its public tree without the members that did not come along.
        var movedUp: [KeyTreeShape.MovedUp] = []
        var component: KeyTreeShape = .leaf(me, blinded: nil)
        var refreshers: Set<MemberID> = []
        var isNew = true
        if let base = tree?.shape, let pruned = base.pruned(keeping: keeping, movedUp: &movedUp), pruned.members.contains(me) {
            component = pruned
            refreshers = Set(variant.refreshers(movedUp))
            isNew = false
        }
        let componentMembers = Set(component.members)
        let merging = componentMembers != memberSet
        // 2. Who refreshes now: the sponsors of the departures; for a refresh of an unchanged
        //    membership, the rightmost member; and anyone whose share never became public. (A
        //    merge's sponsors refresh once the merged tree is known.) A new member's first share
        //    is public with its tree; it sponsors nothing for it.
        if !merging && refreshers.isEmpty { refreshers.insert(component.rightmost) }
        var flat = KeyTree(component)
        for node in flat.nodes where node.member != nil && node.blinded == nil && !isNew { refreshers.insert(node.member!) }
        for member in refreshers { flat.invalidatePath(of: member) }

        previousSteps = steps
        steps = [:]
        var state = Run(
            admission: RunAdmission(protocolName: variant.name, run: run, members: members),
            members: members, refreshers: refreshers, component: componentMembers, awaiting: merging ? memberSet : [])
        let publicLeaf = tree.flatMap { tree in tree.leafIndex[me].flatMap { tree.nodes[$0].blinded } }
        leafSecrets = leafSecrets.filter { $0.key == publicLeaf }
        if refreshers.contains(me) || isNew {
            try renewShare(&state, tree: &flat, alone: members.count == 1)
        }

        // 3. A merge starts with the component sponsors' trees; otherwise compute at once.
        var actions: [KeyAgreementAction] = []
        if merging, me == component.rightmost {
            actions += try progress(&state, tree: &flat)
            actions.append(.broadcast(try announcement(&state, tree: flat)))
        } else if !merging {
            actions += try progress(&state, tree: &flat)
        }
        tree = flat
        current = state
        return actions
    }

    /// A fresh share for this member's leaf: public at once when alone, else sent and pending.
    private mutating func renewShare(_ state: inout Run, tree: inout KeyTree, alone: Bool) throws(KeyAgreementError) {
        let secret = group.randomExponent(using: &random)
        let blinded = try group.raise(group.generator, to: secret)
        leafSecrets[blinded] = secret
        let leaf = tree.leafIndex[identity.member]!
        if alone {
            tree.setBlinded(blinded, at: leaf)
        } else {
            state.pending[leaf] = blinded
            state.outgoing.append(leaf)
        }
    }

    /// This member's component tree, with every blinded key it knows, and the component's
    /// refreshers.
    private func announcement(_ state: inout Run, tree: KeyTree) throws(KeyAgreementError) -> [UInt8] {
        var shown = tree
        for (index, blinded) in state.pending { shown.setBlinded(blinded, at: index) }
        state.outgoing = []
        var writer = WireWriter(capacity: 64 * state.component.count)
        var elements: [GroupElement] = []
        shown.shape.encode(into: &writer, elements: &elements)
        var refreshers = WireWriter(capacity: 32 * state.refreshers.count)
        for member in state.refreshers.sorted() { refreshers.writeShortString(member.description) }
        return try state.admission.sign(step: Self.stepTree, elements: elements, payload: [writer.bytes, refreshers.bytes], as: identity)
    }

    // MARK: - Messages

    mutating func receive(_ bytes: [UInt8]) throws(KeyAgreementError) -> [KeyAgreementAction] {
        guard var state = current, var tree = self.tree else { throw .unexpected("no run started") }
        let message = try state.admission.admit(bytes, directory: identity.directory)
        // A tree's blinded keys are validated when this member first raises one to a secret of
        // its own (most of a tree is other members' co-paths); a key message's, at once.
        if message.step == Self.stepKeys, message.sender != identity.member {
            for element in message.elements { try group.check(element) }
        }
        switch message.step {
        case Self.stepTree:
            guard !state.formed else { throw .unexpected("a tree from \(message.sender) after the tree formed") }
            let (shape, refreshers) = try decodeAnnouncement(message, state: state)
            if shape.members.contains(identity.member) {
                // This member's own component, as its sponsor shows it: the same tree, more keys.
                guard shape.hasSameShape(as: tree.shape) else { throw .unexpected("\(message.sender) shows another tree of this component") }
                tree = KeyTree(shape)
                for index in state.pending.keys where tree.nodes[index].blinded != nil { state.pending[index] = nil }
            }
            state.announced.append(shape)
            state.refreshers.formUnion(refreshers)
            state.awaiting.subtract(shape.members)
            guard state.formed else { break }
            try form(&state, tree: &tree)

        case Self.stepKeys:
            guard state.formed else {
                state.early.append(message)
                break
            }
            try applyKeys(message, state: &state, tree: &tree)

        default:
            throw .unexpected("step \(message.step) from \(message.sender)")
        }
        let actions = state.formed ? try progress(&state, tree: &tree) : []
        self.tree = tree
        current = state
        return actions
    }

    private func decodeAnnouncement(_ message: KeyAgreementMessage, state: Run) throws(KeyAgreementError) -> (KeyTreeShape, Set<MemberID>) {
        guard message.payload.count == 2 else { throw .malformed("a tree message carries a tree and its refreshers") }
        var elements = message.elements[...]
        let shape: KeyTreeShape = try message.payload[0].withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let result = Result { () throws(KeyAgreementError) in
                try KeyTreeShape.decode(&reader, elements: &elements, leavesMax: state.members.count)
            }
            if case .success = result, reader.remaining > 0 { return Result<KeyTreeShape, KeyAgreementError>.failure(.malformed("bytes after the tree")) }
            return result
        }.get()
        guard elements.isEmpty else { throw .malformed("blinded keys left over") }
        let members = shape.members
        guard Set(members).count == members.count, Set(members).isSubset(of: state.awaiting) else {
            throw .unexpected("tree from \(message.sender) holds members already placed or not in the run")
        }
        guard shape.rightmost == message.sender else { throw .unexpected("\(message.sender) is not the sponsor of the tree it sent") }
        var refreshers: Set<MemberID> = []
        try message.payload[1].withUnsafeBytes { raw in
            var reader = WireReader(raw)
            while reader.remaining > 0 {
                guard let text = try? reader.readShortString(), let member = MemberID(privateGroup: text), members.contains(member) else {
                    return Result<Void, KeyAgreementError>.failure(.malformed("refreshers"))
                }
                refreshers.insert(member)
            }
            return .success(())
        }.get()
        return (shape, refreshers)
    }

    /// Every component's tree is in: merge them (largest first, ties by sponsor) into the run's
    /// tree, have the merge sponsors refresh, then handle the key messages that arrived early.
    private mutating func form(_ state: inout Run, tree: inout KeyTree) throws(KeyAgreementError) {
        let me = identity.member
        let ordered = state.announced.sorted { ($0.leafCount, $1.rightmost) > ($1.leafCount, $0.rightmost) }
        var merged = ordered[0]
        var sponsors: [MemberID] = []
        for other in ordered.dropFirst() {
            let (tree, sponsor) = variant.merge(merged, other)
            merged = tree
            sponsors.append(sponsor)
        }
        let ownLeaf = tree.leafIndex[me].flatMap { state.pending[$0] }
        tree = KeyTree(merged)
        state.pending = [:]
        state.outgoing = []
        state.refreshers.formUnion(sponsors)
        for sponsor in sponsors { tree.invalidatePath(of: sponsor) }
        if sponsors.contains(me) {
            try renewShare(&state, tree: &tree, alone: false)
        } else if let ownLeaf, let leaf = tree.leafIndex[me], tree.nodes[leaf].blinded == nil {
            // A refresher that was not its component's sponsor still has to send its new share.
            state.pending[leaf] = ownLeaf
            state.outgoing.append(leaf)
        }
        let early = state.early
        state.early = []
        for message in early {
            // Signed by a member but wrong for the formed tree: dropped (it was admitted before
            // it could be checked).
            var attempt = state
            var attemptTree = tree
            if (try? applyKeys(message, state: &attempt, tree: &attemptTree)) != nil {
                state = attempt
                tree = attemptTree
            }
        }
    }

    /// Blinded keys from their sponsor: checked whole, then applied.
    private func applyKeys(_ message: KeyAgreementMessage, state: inout Run, tree: inout KeyTree) throws(KeyAgreementError) {
        guard message.payload.count == 1, message.payload[0].count == 2 * message.elements.count, !message.elements.isEmpty else {
            throw .malformed("a key message carries one node index per blinded key")
        }
        let isOwn = message.sender == identity.member
        var indexes: [Int] = []
        for offset in stride(from: 0, to: message.payload[0].count, by: 2) {
            let index = Int(message.payload[0][offset]) << 8 | Int(message.payload[0][offset + 1])
            guard index < tree.nodes.count, tree.nodes[index].blinded == nil, !indexes.contains(index),
                  tree.sponsor(of: index, refreshers: state.refreshers) == message.sender
            else { throw .unexpected("blinded key for node \(index) from \(message.sender)") }
            if isOwn, state.pending[index] != message.elements[indexes.count] { throw .unexpected("own key message altered") }
            indexes.append(index)
        }
        for (index, blinded) in zip(indexes, message.elements) {
            tree.setBlinded(blinded, at: index)
            if isOwn { state.pending[index] = nil }
        }
    }

    // MARK: - Computation

    /// Computes the keys up this member's path as far as the known blinded keys allow, the
    /// blinded keys it sponsors on the way, and the group secret at the root.
    private mutating func progress(_ state: inout Run, tree: inout KeyTree) throws(KeyAgreementError) -> [KeyAgreementAction] {
        let me = identity.member
        guard let leaf = tree.leafIndex[me] else { throw .unexpected("not in the tree") }
        func known(_ index: Int) -> GroupElement? { tree.nodes[index].blinded ?? state.pending[index] }
        guard let leafBlinded = known(leaf), var key = leafSecrets[leafBlinded] else { throw .unexpected("own share unknown") }
        var index = leaf
        while tree.nodes[index].parent >= 0 {
            let parent = tree.nodes[index].parent
            let sibling = tree.sibling(of: index)
            guard let siblingBlinded = known(sibling) else { break }
            let step = PathStep(sibling: siblingBlinded, child: key)
            if let cached = steps[step] ?? previousSteps[step] {
                key = cached
            } else {
                if tree.nodes[sibling].blinded != nil { try group.check(siblingBlinded) }
                let shared = try group.raise(siblingBlinded, to: key)
                key = try protocolStep { () throws(CryptoError) in try group.exponent(from: shared) }
            }
            steps[step] = key
            index = parent
            // The root's blinded key is needed only when the root will sit below a merge, and
            // never for the largest component (the others join it; its root is on its sponsor's
            // path or stays the root).
            let needed = parent != 0 || (!state.formed && 2 * state.component.count <= state.members.count)
            if needed, known(parent) == nil, tree.sponsor(of: parent, refreshers: state.refreshers) == me {
                state.pending[parent] = try group.raise(group.generator, to: key)
                state.outgoing.append(parent)
            }
        }
        guard state.formed else { return [] }
        var actions: [KeyAgreementAction] = []
        if !state.outgoing.isEmpty, state.members.count > 1 {
            var indexes: [UInt8] = []
            for node in state.outgoing { indexes += [UInt8(node >> 8), UInt8(node & 0xff)] }
            let elements = state.outgoing.map { state.pending[$0]! }
            state.outgoing = []
            actions.append(.broadcast(try state.admission.sign(step: Self.stepKeys, elements: elements, payload: [indexes], as: identity)))
        }
        if index == 0, !state.done {
            state.done = true
            let secret = try protocolStep { () throws(CryptoError) in
                try HKDF.sha256(inputKeyMaterial: key.bytes, info: Array("cohort/\(variant.name)/".utf8) + state.admission.run.encoded, outputBytes: 32)
            }
            actions.append(.established(run: state.admission.run, groupSecret: secret))
        }
        return actions
    }
}
