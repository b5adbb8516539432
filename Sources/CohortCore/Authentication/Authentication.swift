/// Client authentication in the connect handshake (`docs/authentication.md`).
///
/// The daemon offers a list of methods; the client picks one in its ``ConnectRequest``
/// (`authMethod`, with the method's first message in `authData`). The method answers with a
/// challenge (an ``DaemonFrame/authChallenge(method:data:)``, which the client answers with an
/// ``ClientFrame/authResponse(_:)``) as often as it needs, then accepts — naming the
/// ``Principal`` the client proved to be — or refuses with a typed reason. Nothing about the
/// session exists in the group table until the method accepts.
///
/// Methods are strategies (DESIGN.md §2): value types registered with the core, pure like it.
/// A method that needs randomness (a nonce) or a table (users) is given them when it is made;
/// the daemon shell replaces the methods when their files are reloaded
/// (``DaemonCore/Event/authenticationMethodsChanged(_:)``), and exchanges already under way
/// finish with the method they started with.
public protocol AuthenticationMethod: Sendable {
    /// The name the client picks, e.g. `password`.
    var name: String { get }
    /// Starts an exchange for a client that picked this method, with the method's first
    /// message from the connect request.
    mutating func start(_ firstMessage: [UInt8], origin: ClientOrigin) -> AuthenticationStep
}

/// The state of one exchange between two of its messages.
public protocol AuthenticationExchange: Sendable {
    /// Takes the client's next message (an ``ClientFrame/authResponse(_:)``).
    func next(_ response: [UInt8]) -> AuthenticationStep
}

/// What a method answers a client's message with.
public enum AuthenticationStep: Sendable {
    /// Send `data` to the client as a challenge and continue with `then` on its response.
    case challenge([UInt8], then: any AuthenticationExchange)
    /// The client is `principal`; `finalData` goes to it in the accept frame (e.g. the server's
    /// proof of its own knowledge, for mutual authentication).
    case accepted(Principal, finalData: [UInt8])
    /// The client failed to authenticate.
    case refused(AuthenticationRefusal)
}

/// Who a client proved to be: the name access control decides on.
public struct Principal: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The name: a user name (`password`), a certificate subject, a mapped uid, or
    /// ``anonymous`` (method `none`).
    public var name: String
    /// Creates a principal.
    public init(_ name: String) { self.name = name }
    /// The principal of every client that used method `none`.
    public static let anonymous = Principal("anonymous")
    public var description: String { name }
    public static func < (lhs: Principal, rhs: Principal) -> Bool { lhs.name < rhs.name }
}

/// Why an authentication failed: what the client is told, and what the log and the metrics
/// are told. The two differ on purpose: the client learns "wrong user name or password", the
/// daemon's log learns whether the user was unknown (so a stranger cannot enumerate users).
public struct AuthenticationRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    /// The reject code the client gets.
    public var code: ErrorCode
    /// The reason the client gets.
    public var reason: String
    /// A short label for the metrics and the audit log (`wrong_password`, `unknown_user`,
    /// `malformed`, ...).
    public var label: String
    /// Details for the daemon's log only.
    public var detail: String

    /// Creates a refusal.
    public init(_ code: ErrorCode, reason: String, label: String, detail: String? = nil) {
        self.code = code
        self.reason = reason
        self.label = label
        self.detail = detail ?? reason
    }

    public var description: String { "\(code) (\(label)): \(detail)" }
}

/// What the transport knows about a client before its first frame: where it connected from,
/// and what the kernel or TLS proved about it.
public struct ClientOrigin: Hashable, Sendable, CustomStringConvertible {
    /// The source that authentication failures are counted against for throttling: the peer's
    /// IP address (without port) for TCP, `unix:UID` for a local socket client (or `unix` when
    /// the uid is unknown).
    public var source: String
    /// The peer's address as the log shows it (`127.0.0.1:50122`, `unix`).
    public var address: String
    /// The uid and gid of a Unix-socket client, from the kernel (SO_PEERCRED).
    public var peerCredentials: PeerCredentials?
    /// The principal named by the client certificate that TLS verified (method `certificate`).
    public var certificatePrincipal: String?
    /// The kind of link the client came over: what it protects decides which architectures may
    /// hand it keys (docs/architectures.md).
    public var link: ClientLink

    /// Creates an origin.
    public init(
        source: String, address: String, peerCredentials: PeerCredentials? = nil, certificatePrincipal: String? = nil,
        link: ClientLink = .tcp(loopback: false)
    ) {
        self.source = source
        self.address = address
        self.peerCredentials = peerCredentials
        self.certificatePrincipal = certificatePrincipal
        self.link = link
    }

    /// An origin for tests and simulations.
    public static func test(_ source: String = "test") -> ClientOrigin { ClientOrigin(source: source, address: source) }

    public var description: String { address }
}

/// The kind of connection a client uses.
public enum ClientLink: Hashable, Sendable, CustomStringConvertible {
    /// Plain TCP: neither confidential nor authenticated; `loopback` when the peer address is
    /// on this host (127.0.0.0/8 or ::1).
    case tcp(loopback: Bool)
    /// TCP under TLS: confidential and authenticated.
    case tls
    /// The local Unix domain socket: never leaves this host.
    case unix

    /// Whether what travels on the link is hidden from others (TLS or the local socket).
    public var isConfidential: Bool {
        switch self {
        case .tls, .unix: true
        case .tcp: false
        }
    }

    public var description: String {
        switch self {
        case .tcp(let loopback): loopback ? "tcp (loopback)" : "tcp"
        case .tls: "tls"
        case .unix: "unix"
        }
    }
}

/// A local client's process credentials, as the kernel reports them for a Unix socket.
public struct PeerCredentials: Hashable, Sendable {
    /// User id.
    public var uid: UInt32
    /// Group id.
    public var gid: UInt32
    /// Process id.
    public var pid: Int32
    /// The login name of `uid` on the daemon's machine, if it has one.
    public var userName: String?
    /// Creates credentials.
    public init(uid: UInt32, gid: UInt32, pid: Int32, userName: String? = nil) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.userName = userName
    }
}

/// Method `none`: every client is ``Principal/anonymous``. For local development only; the
/// daemon logs a warning when it offers it.
public struct NoAuthentication: AuthenticationMethod {
    /// Creates the method.
    public init() {}
    public var name: String { "none" }
    public func start(_ firstMessage: [UInt8], origin: ClientOrigin) -> AuthenticationStep {
        guard firstMessage.isEmpty else {
            return .refused(AuthenticationRefusal(
                .authMalformed, reason: "method none takes no authentication data", label: "malformed"))
        }
        return .accepted(.anonymous, finalData: [])
    }
}
