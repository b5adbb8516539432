import Testing
@testable import CohortCore

@Suite("Group table")
struct GroupTableTests {
    let configuration = ConfigurationID(epoch: 1, representative: "d1")

    @Test("joins install views in join order, with the previous members continuing")
    func joins() {
        var table = GroupTable(configuration: configuration)
        let first = table.apply(.join(member("a"), group("g")), sequence: 1)
        #expect(first.count == 1)
        #expect(first[0].view.members == [member("a")])
        #expect(first[0].view.continuing == [])
        #expect(first[0].view.viewID == GroupViewID(configuration: configuration, sequence: 1))
        let second = table.apply(.join(member("b"), group("g")), sequence: 2)
        #expect(second[0].view.members == [member("a"), member("b")])
        #expect(second[0].view.changed == [member("b")])
        #expect(second[0].view.continuing == [member("a")])
        #expect(second[0].view.cause == .join)
        #expect(second[0].recipients == [member("a"), member("b")])
    }

    @Test("a second join of a member changes nothing")
    func duplicateJoin() {
        var table = GroupTable(configuration: configuration)
        _ = table.apply(.join(member("a"), group("g")), sequence: 1)
        #expect(table.apply(.join(member("a"), group("g")), sequence: 2).isEmpty)
        #expect(table.groups[group("g")]?.viewID.sequence == 1)
    }

    @Test("a leave tells the leaver and the rest")
    func leave() {
        var table = GroupTable(configuration: configuration)
        _ = table.apply(.join(member("a"), group("g")), sequence: 1)
        _ = table.apply(.join(member("b"), group("g")), sequence: 2)
        let changes = table.apply(.leave(member("a"), group("g")), sequence: 3)
        #expect(changes.count == 2)
        #expect(changes[0].recipients == [member("a")])
        #expect(changes[0].view.members.isEmpty)
        #expect(changes[1].view.members == [member("b")])
        #expect(changes[1].view.cause == .leave)
        #expect(changes[1].view.continuing == [member("b")])
        #expect(table.groupCount(of: member("a")) == 0)
    }

    @Test("leaving a group one is not in changes nothing")
    func leaveNotMember() {
        var table = GroupTable(configuration: configuration)
        _ = table.apply(.join(member("a"), group("g")), sequence: 1)
        #expect(table.apply(.leave(member("b"), group("g")), sequence: 2).isEmpty)
        #expect(table.apply(.leave(member("a"), group("other")), sequence: 3).isEmpty)
    }

    @Test("a disconnect removes the member from every group; empty groups vanish")
    func disconnect() {
        var table = GroupTable(configuration: configuration)
        _ = table.apply(.join(member("a"), group("g1")), sequence: 1)
        _ = table.apply(.join(member("a"), group("g2")), sequence: 2)
        _ = table.apply(.join(member("b"), group("g2")), sequence: 3)
        let changes = table.apply(.disconnect(member("a")), sequence: 4)
        #expect(changes.count == 1)
        #expect(changes[0].view.group == group("g2"))
        #expect(changes[0].view.cause == .disconnect)
        #expect(changes[0].view.members == [member("b")])
        #expect(table.groups[group("g1")] == nil)
        #expect(table.memberships[member("a")] == nil)
    }

    @Test("two tables fed the same operations agree (the basis of multi-daemon groups)")
    func determinism() {
        var random = SeededGenerator(seed: 99)
        var left = GroupTable(configuration: configuration)
        var right = GroupTable(configuration: configuration)
        let members = (0..<6).map { member("m\($0)", $0 % 2 == 0 ? "d1" : "d2") }
        let groups = (0..<3).map { group("g\($0)") }
        for sequence in 1...500 as ClosedRange<UInt64> {
            let operation: OrderedOperation
            switch Int.random(in: 0..<3, using: &random) {
            case 0: operation = .join(members.randomElement(using: &random)!, groups.randomElement(using: &random)!)
            case 1: operation = .leave(members.randomElement(using: &random)!, groups.randomElement(using: &random)!)
            default: operation = .disconnect(members.randomElement(using: &random)!)
            }
            #expect(left.apply(operation, sequence: sequence) == right.apply(operation, sequence: sequence))
        }
        #expect(left.groups == right.groups)
        // Every membership recorded per member matches the groups' member lists.
        for (name, entry) in left.groups {
            for m in entry.members { #expect(left.memberships[m]?.contains(name) == true) }
        }
    }
}
