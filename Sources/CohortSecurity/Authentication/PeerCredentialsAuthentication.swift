public import CohortCore

/// Method `peer-credentials`: a client on the daemon's Unix socket is the local user the kernel
/// says it runs as (SO_PEERCRED, read by the daemon shell when the connection is accepted). The
/// principal is that user's login name — as PostgreSQL's `peer` method maps it — or `uid:N` for
/// a uid without one. Nothing travels: a local process cannot lie about its uid. Over TCP the
/// method refuses (there are no peer credentials).
public struct PeerCredentialsAuthentication: AuthenticationMethod {
    /// The method's name.
    public static let name = "peer-credentials"
    public var name: String { Self.name }

    /// Creates the method.
    public init() {}

    public func start(_ firstMessage: [UInt8], origin: ClientOrigin) -> AuthenticationStep {
        guard firstMessage.isEmpty else {
            return .refused(AuthenticationRefusal(
                .authMalformed, reason: "method peer-credentials takes no authentication data", label: "malformed"))
        }
        guard let credentials = origin.peerCredentials else {
            return .refused(AuthenticationRefusal(
                .authFailed, reason: "method peer-credentials works only over the daemon's Unix socket",
                label: "no_peer_credentials", detail: "client at \(origin.address) has no peer credentials"))
        }
        return .accepted(Principal(credentials.userName ?? "uid:\(credentials.uid)"), finalData: [])
    }
}
