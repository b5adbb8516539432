// The cost of group key agreement, per protocol × operation × group size × DH group.
//
//   swift run -c release cohort-key-agreement-bench [--quick] [--sizes 2,4,8] [--groups modp-1024,modp-2048]
//       [--protocols tgdh,str] [--changes join,leave,merge,partition,refresh] [--output Results/key-agreement]
//
// Each row forms the groups a change starts from (`MembershipChange.views`), then measures the
// change itself in the in-memory simulation with synchronous rounds (`KeyAgreementSimulation`,
// delivery `.byRound`), and reports rounds, messages, bytes, exponentiations (on the critical path and
// in total) and time on the critical path (every member handled in one thread, so CPU time;
// includes Ed25519 signing and verification of every message). Writes a CSV and meta.json.
//
// Protocols: all five registered in CohortCrypto. BD and GDH rerun in full for every change, so
// their operations cost the same for the same final size; CKD keeps its pairwise secrets, TGDH
// and STR their trees, and pay only for what changed. BD and GDH need a MODP group; the others run on X25519
// too.
import CohortCore
import CohortCrypto
import CohortSimulation
import Foundation

struct Options {
    var sizes = [2, 4, 8, 16, 32, 64, 100, 128]
    var groups = ["modp-1024", "modp-2048"]
    var output = "Results/key-agreement"
    var protocols = KeyAgreements.names
    var changes: [MembershipChange] = [.join, .leave, .merge, .partition]
    init(arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--quick":
                sizes = [2, 4, 8]
                groups = ["modp-1024"]
            case "--sizes": sizes = (iterator.next() ?? "").split(separator: ",").compactMap { Int($0) }
            case "--groups": groups = (iterator.next() ?? "").split(separator: ",").map(String.init)
            case "--output": output = iterator.next() ?? output
            case "--protocols": protocols = (iterator.next() ?? "").split(separator: ",").map(String.init)
            case "--changes": changes = (iterator.next() ?? "").split(separator: ",").compactMap { MembershipChange(rawValue: String($0)) }
            default: fatalError("unknown argument \(argument); use --quick, --sizes, --groups, --protocols, --changes, --output")
            }
        }
    }
}

func memberID(_ index: Int) -> MemberID { try! MemberID(name: "m\(index)", daemon: "d\(index % 13)") }
func viewID(_ sequence: UInt64) -> GroupViewID { GroupViewID(configuration: ConfigurationID(epoch: 1, representative: "d0"), sequence: sequence) }

/// Members 0..<count with their own exponentiation counters.
func network(protocolName: String, count: Int, groupName: String) throws -> KeyAgreementSimulation<AnyKeyAgreement, SeededRandom> {
    let base = try DHGroups.make(groupName)
    var keys: [MemberID: SigningKey] = [:]
    var directory = MemberKeyDirectory()
    for index in 0..<count {
        let key = try SigningKey(privateKeyBytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index &+ 1) })
        keys[memberID(index)] = key
        directory.set(key.publicKeyBytes, for: memberID(index))
    }
    var members: [MemberID: AnyKeyAgreement] = [:]
    var counts: [MemberID: () -> Int] = [:]
    for index in 0..<count {
        let id = memberID(index)
        let identity = KeyAgreementIdentity(member: id, signingKey: keys[id]!, directory: directory)
        let group = countingExponentiations(of: base)
        counts[id] = { group.exponentiations }
        members[id] = AnyKeyAgreement(try KeyAgreements.make(protocolName, identity: identity, group: group, random: SeededRandom(seed: UInt64(index) &+ 1)))
    }
    var simulation = KeyAgreementSimulation(members: members, random: SeededRandom(seed: 99), delivery: .byRound)
    simulation.costProbe = { counts[$0]!() }
    return simulation
}

/// The commit checked out (HEAD, resolved through its ref).
func gitHead() -> String {
    guard let head = try? String(contentsOfFile: ".git/HEAD", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) else { return "unknown" }
    guard head.hasPrefix("ref: ") else { return head }
    let ref = String(head.dropFirst(5))
    if let commit = try? String(contentsOfFile: ".git/" + ref, encoding: .utf8) { return commit.trimmingCharacters(in: .whitespacesAndNewlines) }
    let packed = (try? String(contentsOfFile: ".git/packed-refs", encoding: .utf8)) ?? ""
    return packed.split(separator: "\n").first { $0.hasSuffix(" " + ref) }.map { String($0.prefix(40)) } ?? head
}

let options = Options(arguments: CommandLine.arguments)
var rows = ["protocol,group,operation,size,rounds,messages,bytes,exponentiations_critical_path,exponentiations_total,critical_path_ms,total_ms"]
func padded(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
func right(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
print(padded("protocol", 9) + padded("group", 11) + padded("operation", 10) + right("size", 5) + right("rounds", 7) + right("messages", 9)
      + right("bytes", 10) + right("exp(crit)", 10) + right("exp(total)", 11) + right("crit ms", 9) + right("total ms", 10))
for protocolName in options.protocols {
let groups = KeyAgreements.needsArithmetic(protocolName) ? options.groups.filter { $0 != "x25519" }
    : options.groups + (options.groups.isEmpty || options.groups.contains("x25519") ? [] : ["x25519"])
for groupName in groups {
    for change in options.changes {
        for size in options.sizes {
            let (before, after) = change.views(size: size)
            var simulation = try network(protocolName: protocolName, count: (before.flatMap { $0 } + after).max()! + 1, groupName: groupName)
            for (number, view) in before.enumerated() {
                try simulation.start(run: viewID(UInt64(number + 1)), view: view.map(memberID))
                try simulation.runToCompletion()
            }
            try simulation.start(run: viewID(UInt64(before.count + 1)), view: after.map(memberID))
            try simulation.runToCompletion()
            precondition(Set(simulation.established.values.map(\.secret)).count == 1 && simulation.established.count == size,
                         "members disagree: \(protocolName) \(groupName) \(change) \(size)")
            let f = simulation.figures
            let operation = change.rawValue
            rows.append("\(protocolName),\(groupName),\(operation),\(size),\(f.rounds),\(f.messages),\(f.bytes),\(f.criticalPathExponentiations),\(f.totalExponentiations),\(String(format: "%.3f", f.criticalPathSeconds * 1000)),\(String(format: "%.3f", f.totalSeconds * 1000))")
            print(padded(protocolName, 9) + padded(groupName, 11) + padded(operation, 10) + right("\(size)", 5) + right("\(f.rounds)", 7)
                  + right("\(f.messages)", 9) + right("\(f.bytes)", 10) + right("\(f.criticalPathExponentiations)", 10)
                  + right("\(f.totalExponentiations)", 11) + right(String(format: "%.2f", f.criticalPathSeconds * 1000), 9)
                  + right(String(format: "%.1f", f.totalSeconds * 1000), 10))
        }
    }
}
}
try FileManager.default.createDirectory(atPath: options.output, withIntermediateDirectories: true)
try (rows.joined(separator: "\n") + "\n").write(toFile: options.output + "/key-agreement.csv", atomically: true, encoding: .utf8)
let meta: [String: Any] = [
    "experiment": "key-agreement", "date": ISO8601DateFormatter().string(from: Date()),
    "cores": ProcessInfo.processInfo.activeProcessorCount, "sizes": options.sizes, "groups": options.groups,
    "protocols": options.protocols, "changes": options.changes.map(\.rawValue), "delivery": "synchronous rounds (byRound)",
    "git_head": gitHead(), "elliptic_curve_group": "x25519, for the protocols that only exponentiate (ckd, str, tgdh)",
    "loadavg": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "",
]
try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: options.output + "/meta.json"))
print("wrote \(options.output)/key-agreement.csv and meta.json")
