public import CohortCore
public import CohortSecurity

/// How a client connects: its private name, what it wants delivered, and its architecture.
public struct ConnectionOptions: Sendable {
    /// The private name, unique on the daemon (1-32 printable ASCII characters, no `#`).
    public var name: String
    /// Whether to receive membership views of joined groups.
    public var wantsMembership: Bool = true
    /// The security architecture; must match the daemon's.
    public var architecture: Architecture = .plain
    /// The architecture's options (the cipher clients seal with); the same as the daemons'.
    public var architectureOptions = ArchitectureOptions()
    /// Bounds checked before sending (should equal the daemon's).
    public var limits = Limits()
    /// Who the client is to the daemon: selects the authentication method (``Credentials``).
    public var credentials: Credentials = .none
    /// TLS for a TCP connection (to the daemon's `tlsClientPort`); `nil` connects in the clear.
    public var tls: TLSClientOptions?
    /// How long to wait for the TCP connection and the handshake.
    public var connectTimeout: Duration = .seconds(10)
    /// Socket reads (each up to a read buffer of frames) held in the library for the
    /// application before it stops reading from the socket. The daemon then queues for this
    /// client and, once its queue is over the limit, holds every sender back; a client that
    /// stays behind for the daemon's `slowClientTimeout` is disconnected.
    public var inboundReadsBufferedMax: Int = 64

    /// Options with defaults for everything but the name.
    /// Group semantics of the groups this connection joins: EVS as the daemons give it, or
    /// Virtual Synchrony through the library's flush layer (docs/virtual-synchrony.md).
    /// ``CohortConnection/join(_:semantics:)`` chooses per group.
    public var semantics: GroupSemantics = .extendedVirtualSynchrony
    /// How flush requests of VS groups are answered.
    public var flushPolicy: FlushPolicy = .automatic

    public init(name: String) { self.name = name }
}

/// How a client authenticates, which selects the method it picks in the handshake
/// (`docs/authentication.md`). The daemon must offer that method.
public enum Credentials: Sendable, Hashable, CustomStringConvertible {
    /// Method `none`: the client is the anonymous principal (daemons offer it for local
    /// development).
    case none
    /// Method `password`: SCRAM-SHA-256 with a user of the daemon's users file. The password
    /// never leaves the client, and the daemon must prove it holds the user's verifier.
    case password(user: String, password: String)
    /// Method `peer-credentials`: over the daemon's Unix socket, the client is the local user
    /// its process runs as (the kernel tells the daemon).
    case peerCredentials
    /// Method `certificate`: the client certificate of ``ConnectionOptions/tls``, which the
    /// daemon verified in the TLS handshake, names the principal.
    case certificate

    /// The name of the method these credentials use.
    public var method: String {
        switch self {
        case .none: NoAuthentication().name
        case .password: PasswordAuthentication.name
        case .peerCredentials: PeerCredentialsAuthentication.name
        case .certificate: CertificateAuthentication.name
        }
    }

    /// The client side of the method, with a fresh nonce.
    func makeAuthenticator() -> any ClientAuthenticator {
        switch self {
        case .none, .peerCredentials, .certificate:
            return NoDataClientAuthenticator(method: method)
        case .password(let user, let password):
            var generator = SystemRandomNumberGenerator()
            let nonce = (0..<18).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            return PasswordClientAuthenticator(user: user, password: password, nonce: nonce)
        }
    }

    /// The method and user, never the password.
    public var description: String {
        switch self {
        case .none: "none"
        case .password(let user, _): "password (user \(user))"
        case .peerCredentials: "peer-credentials"
        case .certificate: "certificate"
        }
    }
}

/// TLS toward a daemon: whom to trust, and the client certificate to present.
public struct TLSClientOptions: Sendable, Hashable {
    /// CA certificates (PEM) the daemon's certificate must chain to; it must also name the
    /// host connected to (DNS name or IP address).
    public var trustRootsFile: String
    /// The client certificate chain (PEM), for method `certificate` or a daemon that requires one.
    public var certificateFile: String?
    /// Its private key (PEM).
    public var privateKeyFile: String?

    /// Options that trust `trustRootsFile` and present no certificate.
    public init(trustRootsFile: String, certificateFile: String? = nil, privateKeyFile: String? = nil) {
        self.trustRootsFile = trustRootsFile
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
    }
}

/// How a VS group's flush requests are answered (docs/virtual-synchrony.md).
public enum FlushPolicy: String, Sendable, Hashable, CaseIterable {
    /// The library flushes as soon as the membership changes; the application sees no flush
    /// request, and a send during the flush throws ``CohortError/virtualSynchrony(_:)``.
    case automatic
    /// The application gets ``CohortEvent/flushRequest(_:)`` and answers with
    /// ``CohortConnection/flush(_:)`` once it has sent what belongs to the old view.
    case manual
}
