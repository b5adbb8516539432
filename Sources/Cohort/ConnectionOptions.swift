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
    /// Inbound frames buffered in the library before it stops reading from the socket (the
    /// daemon then queues, and disconnects a client that falls too far behind).
    public var inboundBufferFramesMax: Int = 8192

    /// Options with defaults for everything but the name.
    public init(name: String) { self.name = name }
}
