@testable import CohortCore

typealias SeededGenerator = SeededRandom

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
