// The cost of group key agreement, per protocol × operation × group size × DH group.
//
//   swift run -c release cohort-key-agreement-bench [--quick] [--sizes 2,4,8] [--groups modp-1024,modp-2048]
//                                                    [--output Results/key-agreement]
//
// Each row runs the operation's final membership change in the in-memory simulation with
// synchronous rounds (`KeyAgreementSimulation`, delivery `.byRound`) after forming the group it
// starts from, and reports rounds, messages, bytes, exponentiations (on the critical path and
// in total) and time on the critical path (every member handled in one thread, so CPU time;
// includes Ed25519 signing and verification of every message). Writes a CSV and meta.json.
//
// Protocols: those registered in CohortCrypto (today Burmester-Desmedt and CKD; both rerun in
// full for every membership change, so their four operations cost the same for the same final
// size). BD needs a MODP group; CKD runs on X25519 too.
import CohortCore
import CohortCrypto
import CohortSimulation
import Foundation

struct Options {
    var sizes = [2, 4, 8, 16, 32, 64, 128]
    var groups = ["modp-1024", "modp-2048"]
    var output = "Results/key-agreement"
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
            default: fatalError("unknown argument \(argument); use --quick, --sizes, --groups, --output")
            }
        }
    }
}

/// Counts exponentiations of a group without products (X25519).
final class CountingPlainGroup: DHGroup {
    let base: any DHGroup
    private(set) var exponentiations = 0
    init(_ base: any DHGroup) { self.base = base }
    var name: String { base.name }
    var elementBytes: Int { base.elementBytes }
    var generator: GroupElement { base.generator }
    func power(_ element: GroupElement, _ exponent: Exponent) throws(CryptoError) -> GroupElement {
        exponentiations += 1
        return try base.power(element, exponent)
    }
    func randomExponent(using random: inout some RandomNumberGenerator) -> Exponent { base.randomExponent(using: &random) }
    func validate(_ element: GroupElement) throws(CryptoError) { try base.validate(element) }
    func exponent(from element: GroupElement) throws(CryptoError) -> Exponent { try base.exponent(from: element) }
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
        let random = SeededRandom(seed: UInt64(index) &+ 1)
        if protocolName == BurmesterDesmedt<SeededRandom>.name {
            let counter = CountingDHGroup(base as! any ArithmeticDHGroup)
            counts[id] = { counter.exponentiations }
            members[id] = AnyKeyAgreement(BurmesterDesmedt(identity: identity, group: counter, random: random))
        } else {
            let counter = CountingPlainGroup(base)
            counts[id] = { counter.exponentiations }
            members[id] = AnyKeyAgreement(CentralizedKeyDistribution(identity: identity, group: counter, random: random))
        }
    }
    var simulation = KeyAgreementSimulation(members: members, random: SeededRandom(seed: 99), delivery: .byRound)
    simulation.costProbe = { counts[$0]!() }
    return simulation
}

let options = Options(arguments: CommandLine.arguments)
var rows = ["protocol,group,operation,size,rounds,messages,bytes,exponentiations_critical_path,exponentiations_total,critical_path_ms,total_ms"]
func padded(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
func right(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
print(padded("protocol", 9) + padded("group", 11) + padded("operation", 10) + right("size", 5) + right("rounds", 7) + right("messages", 9)
      + right("bytes", 10) + right("exp(crit)", 10) + right("exp(total)", 11) + right("crit ms", 9) + right("total ms", 10))
for protocolName in KeyAgreements.names {
for groupName in options.groups + (protocolName == "ckd" && !options.groups.isEmpty ? ["x25519"] : []) {
    for operation in ["join", "leave", "merge", "partition"] {
        for size in options.sizes {
            // Members before and after the change; the change is the run measured.
            let (before, after): ([Int], [Int])
            switch operation {
            case "join": (before, after) = (Array(0..<(size - 1)), Array(0..<size))
            case "leave": (before, after) = (Array(0...size), Array(0..<size))
            case "merge": (before, after) = (Array(0..<(size / 2)), Array(0..<size))  // the other half formed alike
            default: (before, after) = (Array(0..<(size * 2)), Array(0..<size))        // partition: half stay
            }
            var simulation = try network(protocolName: protocolName, count: max(before.count, after.count), groupName: groupName)
            if !before.isEmpty {
                try simulation.start(run: viewID(1), view: before.map(memberID))
                try simulation.runToCompletion()
            }
            try simulation.start(run: viewID(2), view: after.map(memberID))
            try simulation.runToCompletion()
            precondition(Set(simulation.established.values.map(\.secret)).count == 1 && simulation.established.count == size,
                         "members disagree: \(protocolName) \(groupName) \(operation) \(size)")
            let f = simulation.figures
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
    "protocols": KeyAgreements.names, "delivery": "synchronous rounds (byRound)",
    "git_head": (try? String(contentsOfFile: ".git/HEAD", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown",
    "loadavg": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "",
]
try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: options.output + "/meta.json"))
print("wrote \(options.output)/key-agreement.csv and meta.json")
