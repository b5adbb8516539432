@testable import CohortCore

/// SplitMix64: a small deterministic generator so every randomized test replays from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func group(_ name: String) -> GroupName { try! GroupName(name) }
func member(_ name: String, _ daemon: String = "d1") -> MemberID { try! MemberID(name: name, daemon: daemon) }

/// The body of an encoded frame (without its length prefix).
func body(of encoded: [UInt8]) -> [UInt8] { Array(encoded.dropFirst(WireProtocol.lengthPrefixBytes)) }

extension ClientFrame {
    /// Encodes and decodes again.
    func roundTripped(limits: Limits = Limits()) throws(WireError) -> ClientFrame {
        try ClientFrame.decode(body: body(of: encoded()), limits: limits)
    }
}

extension DaemonFrame {
    /// Encodes and decodes again.
    func roundTripped(limits: Limits = Limits()) throws(WireError) -> DaemonFrame {
        try DaemonFrame.decode(body: body(of: encoded()), limits: limits)
    }
}
