import CohortCore

/// The public part of a binary key tree (TGDH, STR): its shape, the member at each leaf, and
/// each node's blinded key g^K where it is known (`nil` while a sponsor still has to compute
/// it). Every member of a run holds the same public tree; the secret keys on its own path are
/// its own.
indirect enum KeyTreeShape: Hashable, Sendable {
    case leaf(MemberID, blinded: GroupElement?)
    case node(KeyTreeShape, KeyTreeShape, blinded: GroupElement?)

    var blinded: GroupElement? {
        switch self {
        case .leaf(_, let blinded), .node(_, _, let blinded): blinded
        }
    }

    /// The leaves, left to right.
    var members: [MemberID] {
        var members: [MemberID] = []
        collectMembers(into: &members)
        return members
    }

    private func collectMembers(into members: inout [MemberID]) {
        switch self {
        case .leaf(let member, _): members.append(member)
        case .node(let left, let right, _):
            left.collectMembers(into: &members)
            right.collectMembers(into: &members)
        }
    }

    var rightmost: MemberID {
        switch self {
        case .leaf(let member, _): member
        case .node(_, let right, _): right.rightmost
        }
    }

    var leafCount: Int {
        switch self {
        case .leaf: 1
        case .node(let left, let right, _): left.leafCount + right.leafCount
        }
    }

    var height: Int {
        switch self {
        case .leaf: 0
        case .node(let left, let right, _): 1 + max(left.height, right.height)
        }
    }

    /// A subtree whose sibling left the tree took its parent's place: TGDH and STR choose
    /// their sponsors among these.
    struct MovedUp: Hashable, Sendable {
        /// Its rightmost member, the TGDH sponsor for the change.
        var rightmost: MemberID
        /// Its size (STR's sponsor is the one of the lowest change).
        var leafCount: Int
    }

    /// The tree restricted to `keeping`: a node that loses one child is replaced by the other,
    /// and every node above a change loses its blinded key. `nil` if no member is kept.
    func pruned(keeping: Set<MemberID>, movedUp: inout [MovedUp]) -> KeyTreeShape? {
        pruned(keeping: keeping, movedUp: &movedUp).shape
    }

    private func pruned(keeping: Set<MemberID>, movedUp: inout [MovedUp]) -> (shape: KeyTreeShape?, changed: Bool) {
        switch self {
        case .leaf(let member, _):
            return keeping.contains(member) ? (self, false) : (nil, true)
        case .node(let left, let right, let blinded):
            let (keptLeft, leftChanged) = left.pruned(keeping: keeping, movedUp: &movedUp)
            let (keptRight, rightChanged) = right.pruned(keeping: keeping, movedUp: &movedUp)
            switch (keptLeft, keptRight) {
            case (nil, nil):
                return (nil, true)
            case (let survivor?, nil), (nil, let survivor?):
                movedUp.append(MovedUp(rightmost: survivor.rightmost, leafCount: survivor.leafCount))
                return (survivor, true)
            case (let keptLeft?, let keptRight?):
                let changed = leftChanged || rightChanged
                return (.node(keptLeft, keptRight, blinded: changed ? nil : blinded), changed)
            }
        }
    }

    /// TGDH's merge (Kim, Perrig, Tsudik): `other` joins at the shallowest rightmost node where
    /// it does not increase the height, or above the root if there is none; the sponsor is the
    /// rightmost member under the insertion point.
    func insertingTGDH(_ other: KeyTreeShape) -> (tree: KeyTreeShape, sponsor: MemberID) {
        let height = self.height
        var best: (depth: Int, order: Int)?
        var order = 0
        func visit(_ node: KeyTreeShape, depth: Int) {
            order += 1
            if depth + 1 + max(node.height, other.height) <= height, best == nil || depth < best!.depth || (depth == best!.depth && order > best!.order) {
                best = (depth, order)
            }
            if case .node(let left, let right, _) = node {
                visit(left, depth: depth + 1)
                visit(right, depth: depth + 1)
            }
        }
        visit(self, depth: 0)
        guard let target = best?.order else { return (.node(self, other, blinded: nil), rightmost) }
        var counter = 0
        var sponsor = rightmost
        let tree = replacing(order: target, counter: &counter) { node in
            sponsor = node.rightmost
            return .node(node, other, blinded: nil)
        }.shape
        return (tree, sponsor)
    }

    /// The tree with the node at preorder position `order` (from 1) replaced by `body(node)`,
    /// and the blinded keys above it cleared.
    private func replacing(order: Int, counter: inout Int, _ body: (KeyTreeShape) -> KeyTreeShape) -> (shape: KeyTreeShape, changed: Bool) {
        counter += 1
        if counter == order { return (body(self), true) }
        guard case .node(let left, let right, let blinded) = self else { return (self, false) }
        let (newLeft, leftChanged) = left.replacing(order: order, counter: &counter, body)
        let (newRight, rightChanged) = right.replacing(order: order, counter: &counter, body)
        let changed = leftChanged || rightChanged
        return (.node(newLeft, newRight, blinded: changed ? nil : blinded), changed)
    }

    /// STR's merge (Kim, Perrig, Tsudik, "Group key agreement efficient in communication"): the
    /// members of `other`, in order, each become a new leaf on top of the tree; the sponsor is
    /// the topmost member of the tree.
    func insertingSTR(_ other: KeyTreeShape) -> (tree: KeyTreeShape, sponsor: MemberID) {
        var tree = self
        var leaves: [KeyTreeShape] = []
        other.collectLeaves(into: &leaves)
        for leaf in leaves { tree = .node(tree, leaf, blinded: nil) }
        return (tree, rightmost)
    }

    private func collectLeaves(into leaves: inout [KeyTreeShape]) {
        switch self {
        case .leaf: leaves.append(self)
        case .node(let left, let right, _):
            left.collectLeaves(into: &leaves)
            right.collectLeaves(into: &leaves)
        }
    }

    // MARK: - Wire form

    /// Preorder: per node a tag byte (bit 0 leaf, bit 1 blinded key present), a leaf's member
    /// as a short string; the blinded keys go into `elements` in the same order.
    func encode(into writer: inout WireWriter, elements: inout [GroupElement]) {
        switch self {
        case .leaf(let member, let blinded):
            writer.write(UInt8(1 | (blinded == nil ? 0 : 2)))
            writer.writeShortString(member.description)
            if let blinded { elements.append(blinded) }
        case .node(let left, let right, let blinded):
            writer.write(UInt8(blinded == nil ? 0 : 2))
            if let blinded { elements.append(blinded) }
            left.encode(into: &writer, elements: &elements)
            right.encode(into: &writer, elements: &elements)
        }
    }

    /// Decodes a shape of at most `leavesMax` leaves, taking blinded keys from `elements`.
    static func decode(_ reader: inout WireReader, elements: inout ArraySlice<GroupElement>, leavesMax: Int, depth: Int = 0) throws(KeyAgreementError) -> KeyTreeShape {
        guard depth <= leavesMax else { throw .malformed("key tree deeper than its members") }
        let tag: UInt8
        do { tag = try reader.readUInt8() } catch { throw .malformed("key tree: \(error)") }
        guard tag & ~3 == 0 else { throw .malformed("key tree tag \(tag)") }
        var blinded: GroupElement?
        if tag & 2 != 0 {
            guard let element = elements.popFirst() else { throw .malformed("key tree: missing blinded key") }
            blinded = element
        }
        if tag & 1 != 0 {
            let text: String
            do { text = try reader.readShortString() } catch { throw .malformed("key tree: \(error)") }
            guard let member = MemberID(privateGroup: text) else { throw .malformed("key tree: bad member '\(text)'") }
            return .leaf(member, blinded: blinded)
        }
        let left = try decode(&reader, elements: &elements, leavesMax: leavesMax, depth: depth + 1)
        let right = try decode(&reader, elements: &elements, leavesMax: leavesMax, depth: depth + 1)
        return .node(left, right, blinded: blinded)
    }

    /// The same shape and members, ignoring blinded keys.
    func hasSameShape(as other: KeyTreeShape) -> Bool {
        switch (self, other) {
        case (.leaf(let a, _), .leaf(let b, _)): a == b
        case (.node(let a, let b, _), .node(let c, let d, _)): a.hasSameShape(as: c) && b.hasSameShape(as: d)
        default: false
        }
    }
}

/// A key tree flattened in preorder, for the index-based work of a run: paths, siblings,
/// sponsors, blinded key updates by index.
struct KeyTree: Sendable {
    struct Node: Sendable {
        var member: MemberID?
        var left = -1
        var right = -1
        var parent = -1
        var blinded: GroupElement?
    }

    private(set) var nodes: [Node] = []
    private(set) var leafIndex: [MemberID: Int] = [:]

    init(_ shape: KeyTreeShape) {
        _ = append(shape, parent: -1)
    }

    private mutating func append(_ shape: KeyTreeShape, parent: Int) -> Int {
        let index = nodes.count
        switch shape {
        case .leaf(let member, let blinded):
            nodes.append(Node(member: member, parent: parent, blinded: blinded))
            leafIndex[member] = index
        case .node(let left, let right, let blinded):
            nodes.append(Node(parent: parent, blinded: blinded))
            let leftIndex = append(left, parent: index)
            let rightIndex = append(right, parent: index)
            nodes[index].left = leftIndex
            nodes[index].right = rightIndex
        }
        return index
    }

    var shape: KeyTreeShape { shape(at: 0) }

    private func shape(at index: Int) -> KeyTreeShape {
        let node = nodes[index]
        if let member = node.member { return .leaf(member, blinded: node.blinded) }
        return .node(shape(at: node.left), shape(at: node.right), blinded: node.blinded)
    }

    func sibling(of index: Int) -> Int {
        let parent = nodes[nodes[index].parent]
        return parent.left == index ? parent.right : parent.left
    }

    /// Clears the blinded keys of the leaf of `member` and of every node above it.
    mutating func invalidatePath(of member: MemberID) {
        var index = leafIndex[member] ?? -1
        while index >= 0 {
            nodes[index].blinded = nil
            index = nodes[index].parent
        }
    }

    mutating func setBlinded(_ element: GroupElement, at index: Int) {
        nodes[index].blinded = element
    }

    /// The member that computes and broadcasts node `index`'s blinded key: the node's own member
    /// for a leaf; otherwise the rightmost member under it that refreshed its share in this run,
    /// or the rightmost member under it if none did (Kim, Perrig, Tsudik: the sponsor is the
    /// rightmost leaf of the subtree where the change happened).
    func sponsor(of index: Int, refreshers: Set<MemberID>) -> MemberID {
        var fallback: MemberID?
        // Walk the subtree right to left: the first refresher found is the rightmost one.
        var stack = [index]
        while let index = stack.popLast() {
            if let member = nodes[index].member {
                if fallback == nil { fallback = member }
                if refreshers.contains(member) { return member }
            } else {
                stack.append(nodes[index].left)
                stack.append(nodes[index].right)
            }
        }
        return fallback!
    }
}
