/// Why a cryptographic operation failed. Opening never returns plaintext on any failure.
public enum CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Key material of the wrong length for the suite.
    case invalidKeyLength(expected: Int, got: Int)
    /// The tag did not verify: wrong key, or a modified or forged byte.
    case authenticationFailed
    /// Input shorter than the format's fixed part.
    case truncated(neededBytes: Int, gotBytes: Int)
    /// An envelope sealed under a key this cipher does not hold.
    case wrongKeyID(expected: UInt32, got: UInt32)
    /// An envelope already opened, or too old for the replay window.
    case replayed(sender: UInt32, counter: UInt64)
    /// An envelope sealed by another sender than the one the caller expected.
    case wrongSender(expected: UInt32, got: UInt32)
    /// This sender used up its nonce space under this key; the group must rekey.
    case nonceSpaceExhausted
    /// No cipher suite is registered under that name.
    case unknownSuite(String)
    /// OpenSSL reported an error (the library's own message).
    case backendFailure(String)

    public var description: String {
        switch self {
        case .invalidKeyLength(let expected, let got): "key material of \(got) bytes; the suite needs \(expected)"
        case .authenticationFailed: "authentication failed: wrong key or modified message"
        case .truncated(let needed, let got): "sealed message of \(got) bytes is shorter than the \(needed) the format needs"
        case .wrongKeyID(let expected, let got): "sealed under key \(got), this cipher holds key \(expected)"
        case .replayed(let sender, let counter): "replayed or too old: sender \(sender), counter \(counter)"
        case .wrongSender(let expected, let got): "sealed by sender \(got), expected sender \(expected)"
        case .nonceSpaceExhausted: "nonce space exhausted under this key; rekey"
        case .unknownSuite(let name): "unknown cipher suite '\(name)'; available: \(CipherSuites.registered.map { $0.name }.joined(separator: ", "))"
        case .backendFailure(let reason): "OpenSSL: \(reason)"
        }
    }
}
