public import CohortCore
public import CohortCrypto

/// Daemon-to-daemon authentication (`docs/daemon-authentication.md`): only the daemons of the
/// configured set, proving possession of their configured Ed25519 key, may open a link to this
/// daemon, so a rogue process cannot join the daemon group (the integrated architectures trust
/// daemons with group keys).
///
/// Links are one-way (the dialer writes, the acceptor reads), so the proof is a signed hello
/// rather than a challenge-response: the dialer signs its name and incarnation, the acceptor's
/// name, its wall-clock time and 16 random bytes. The acceptor checks the signature against the
/// dialer's configured public key, that the hello is addressed to it, that the time is within
/// ``Settings/freshness`` of its own clock, and that it has not seen the nonce within that window
/// (a captured hello cannot be replayed). Pure: times and nonces come from the caller.
///
/// What it does not do: protect the link after the hello (an attacker on the path could inject
/// into an established TCP stream); mutual TLS on daemon links would. Recorded in the issue note.
public struct DaemonAuthentication: Sendable {
    /// Bounds of the checks.
    public struct Settings: Sendable, Hashable {
        /// Largest difference between the dialer's clock and the acceptor's.
        public var freshness: Duration = .seconds(60)
        /// Most nonces remembered; beyond it the oldest are forgotten first.
        public var noncesRememberedMax: Int = 100_000
        /// The defaults.
        public init() {}
    }

    /// Why a hello was refused: a short label for the metrics and a reason for the log.
    public struct Refusal: Error, Hashable, Sendable, CustomStringConvertible {
        /// `unsigned`, `no_key`, `bad_signature`, `malformed`, `wrong_acceptor`, `stale`, `replayed`.
        public var label: String
        /// What was wrong.
        public var reason: String
        public var description: String { reason }
    }

    /// The settings it runs with.
    public let settings: Settings
    private let me: String
    /// This daemon's signing key; `nil` when authentication is off.
    public let signingKey: SigningKey?
    private let publicKeys: [String: [UInt8]]
    /// Nonces seen, with the time (ms) after which they can no longer be fresh.
    private var seen: [[UInt8]: UInt64] = [:]

    /// Authentication for daemon `me` with its `signingKey` and the public keys of every daemon
    /// of the configuration; with no keys at all, daemons are not authenticated (hellos are
    /// unsigned and only names are checked).
    public init(me: String, signingKey: SigningKey?, publicKeys: [String: [UInt8]], settings: Settings = Settings()) {
        self.me = me
        self.signingKey = signingKey
        self.publicKeys = publicKeys
        self.settings = settings
    }

    /// Whether hellos are signed and checked.
    public var isEnabled: Bool { !publicKeys.isEmpty }

    /// The hello this daemon, as `daemon`, sends when it dials `acceptor`: signed when
    /// authentication is on. `nonce` must be 16 fresh random bytes.
    public func hello(from daemon: DaemonID, to acceptor: String, timeMilliseconds: UInt64, nonce: [UInt8]) -> PeerLinkFrame.Hello {
        var hello = PeerLinkFrame.Hello(daemon: daemon, acceptor: acceptor, timeMilliseconds: timeMilliseconds, nonce: nonce)
        if let signingKey, let signature = try? signingKey.signature(for: hello.signedBytes) { hello.signature = signature }
        return hello
    }

    /// Checks a hello received at `nowMilliseconds` (this daemon's wall clock); remembers its
    /// nonce when it passes.
    public mutating func check(_ hello: PeerLinkFrame.Hello, nowMilliseconds: UInt64) throws(Refusal) {
        guard isEnabled else { return }
        forgetExpired(nowMilliseconds: nowMilliseconds)
        guard !hello.signature.isEmpty else {
            throw Refusal(label: "unsigned", reason: "unsigned hello from \(hello.daemon.name): daemons here must prove their key")
        }
        guard let key = publicKeys[hello.daemon.name] else {
            throw Refusal(label: "no_key", reason: "no public key configured for \(hello.daemon.name)")
        }
        guard SigningKey.isValid(signature: hello.signature, for: hello.signedBytes, publicKey: key) else {
            throw Refusal(label: "bad_signature", reason: "the hello of \(hello.daemon.name) is not signed by its configured key")
        }
        guard hello.nonce.count >= 16 else {
            throw Refusal(label: "malformed", reason: "the hello of \(hello.daemon.name) has a nonce of \(hello.nonce.count) bytes, fewer than 16")
        }
        guard hello.acceptor == me else {
            throw Refusal(label: "wrong_acceptor", reason: "hello addressed to \(hello.acceptor.debugDescription), not to \(me)")
        }
        let window = UInt64(settings.freshness.components.seconds) * 1000
        let skew = hello.timeMilliseconds > nowMilliseconds
            ? hello.timeMilliseconds - nowMilliseconds : nowMilliseconds - hello.timeMilliseconds
        guard skew <= window else {
            throw Refusal(label: "stale", reason: "hello time differs from this daemon's clock by \(skew) ms (at most \(window) ms; clocks in sync?)")
        }
        guard seen[hello.nonce] == nil else {
            throw Refusal(label: "replayed", reason: "a hello of \(hello.daemon.name) with this nonce was seen already (replay)")
        }
        if seen.count >= settings.noncesRememberedMax, let oldest = seen.min(by: { $0.value < $1.value })?.key {
            seen[oldest] = nil
        }
        seen[hello.nonce] = hello.timeMilliseconds + window
    }

    /// Number of nonces remembered.
    public var rememberedNonceCount: Int { seen.count }

    private mutating func forgetExpired(nowMilliseconds: UInt64) {
        // A nonce older than the window can no longer pass the freshness check: forget it.
        seen = seen.filter { $0.value >= nowMilliseconds }
    }
}
