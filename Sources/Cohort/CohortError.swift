public import CohortCore

/// Errors of the client library, each with a readable description.
public enum CohortError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The daemon rejected the handshake.
    case rejected(ErrorCode, reason: String)
    /// The daemon ended the session with an error.
    case sessionEnded(ErrorCode, reason: String)
    /// The connection was lost or closed.
    case disconnected
    /// An operation was attempted on a connection that is not open.
    case notConnected
    /// A payload exceeds the limit.
    case tooLarge(bytes: Int, max: Int)
    /// A group or private name is not valid.
    case invalidName(String)
    /// The daemon could not be reached.
    case connectFailed(address: String, reason: String)
    /// The daemon broke the protocol.
    case protocolViolation(String)
    /// The security architecture refused a message.
    case refused(String)
    /// The daemon answered a request with a non-fatal error.
    case daemonError(ErrorCode, reason: String)
    /// This side of the authentication failed: the daemon's challenge made no sense, or the
    /// daemon did not prove what the method requires of it (e.g. that it holds the password's
    /// verifier). The connection is closed.
    case authenticationFailed(String)
    /// The TLS handshake failed: the daemon's certificate did not verify, or the daemon refused
    /// this client's certificate (expired, from another CA, missing); the reason names the alert.
    case tlsFailed(String)
    /// The flush layer refused a send in a VS group: not a member (VS groups are closed), a
    /// flush under way, or several groups in one message.
    case virtualSynchrony(VSError)

    public var description: String {
        switch self {
        case .rejected(let code, let reason): "daemon rejected the connection (\(code)): \(reason)"
        case .sessionEnded(let code, let reason): "daemon ended the session (\(code)): \(reason)"
        case .disconnected: "disconnected from the daemon"
        case .notConnected: "not connected"
        case .tooLarge(let bytes, let max): "payload of \(bytes) bytes exceeds the maximum of \(max)"
        case .invalidName(let reason): reason
        case .connectFailed(let address, let reason): "cannot connect to \(address): \(reason)"
        case .protocolViolation(let reason): "protocol violation by the daemon: \(reason)"
        case .refused(let reason): "refused by the security architecture: \(reason)"
        case .daemonError(let code, let reason): "daemon refused the request (\(code)): \(reason)"
        case .authenticationFailed(let reason): "authentication failed on the client side: \(reason)"
        case .tlsFailed(let reason): "TLS handshake failed: \(reason)"
        case .virtualSynchrony(let error): "virtual synchrony: \(error)"
        }
    }
}
