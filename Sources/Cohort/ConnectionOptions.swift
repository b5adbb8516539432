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
    /// Bounds checked before sending (should equal the daemon's).
    public var limits = Limits()
    /// The authentication method to use.
    public var authMethod: String = "none"
    /// How long to wait for the TCP connection and the handshake.
    public var connectTimeout: Duration = .seconds(10)
    /// Socket reads (each up to a read buffer of frames) held in the library for the
    /// application before it stops reading from the socket. The daemon then queues for this
    /// client and, once its queue is over the limit, holds every sender back; a client that
    /// stays behind for the daemon's `slowClientTimeout` is disconnected.
    public var inboundReadsBufferedMax: Int = 64

    /// Options with defaults for everything but the name.
    public init(name: String) { self.name = name }
}
