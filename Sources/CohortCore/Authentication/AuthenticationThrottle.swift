/// Slows down repeated authentication failures from one source (a token bucket per source), so
/// that a password cannot be guessed at line speed.
///
/// Each source (``ClientOrigin/source``: an IP address, or a local uid) holds up to
/// ``Settings/failuresBurst`` tokens; every failed authentication takes one, and one comes back
/// every ``Settings/refillInterval``. A source without tokens is refused before its method runs
/// (``ErrorCode/authThrottled``, with the time to wait), so a guess costs the attacker the
/// refill interval. Successes do not refill the bucket: one valid account must not buy
/// unlimited guesses at another. Pure: time comes with every call.
public struct AuthenticationThrottle: Sendable {
    /// Bounds of the throttle.
    public struct Settings: Sendable, Hashable {
        /// Failures a source may have in a burst before it is throttled.
        public var failuresBurst: Int = 5
        /// Time for one token to come back.
        public var refillInterval: Duration = .seconds(2)
        /// Most sources remembered; beyond it, the one that failed longest ago is forgotten.
        public var sourcesMax: Int = 10_000

        /// The defaults: 5 failures, then one attempt every 2 s.
        public init() {}
    }

    private struct Bucket: Sendable {
        var tokens: Int
        /// When the tokens were last brought up to date.
        var updated: Instant
    }

    /// The settings it runs with.
    public let settings: Settings
    private var buckets: [String: Bucket] = [:]

    /// A throttle that remembers no source yet.
    public init(settings: Settings = Settings()) {
        precondition(settings.failuresBurst > 0 && settings.refillInterval > .zero && settings.sourcesMax > 0,
                     "throttle settings must be positive")
        self.settings = settings
    }

    /// Number of sources with fewer than a full bucket.
    public var trackedSourceCount: Int { buckets.count }

    /// `nil` when `source` may try to authenticate now; otherwise how long until it may.
    public mutating func wait(for source: String, now: Instant) -> Duration? {
        guard let bucket = refilled(source, now: now) else { return nil }
        buckets[source] = bucket.tokens >= settings.failuresBurst ? nil : bucket
        guard bucket.tokens == 0 else { return nil }
        let elapsed = now - bucket.updated
        return settings.refillInterval - elapsed
    }

    /// Takes a token from `source` for a failed authentication.
    public mutating func recordFailure(of source: String, now: Instant) {
        var bucket = refilled(source, now: now) ?? Bucket(tokens: settings.failuresBurst, updated: now)
        bucket.tokens = max(0, bucket.tokens - 1)
        if buckets[source] == nil && buckets.count >= settings.sourcesMax { forgetOldest() }
        buckets[source] = bucket
    }

    /// The bucket of `source` with the tokens earned since its last update; `nil` for a source
    /// with a full bucket (nothing remembered).
    private func refilled(_ source: String, now: Instant) -> Bucket? {
        guard var bucket = buckets[source] else { return nil }
        guard now > bucket.updated else { return bucket }
        let interval = UInt64(settings.refillInterval.components.seconds) * 1_000_000_000
            + UInt64(settings.refillInterval.components.attoseconds / 1_000_000_000)
        let earned = (now.nanoseconds - bucket.updated.nanoseconds) / max(1, interval)
        if earned >= UInt64(settings.failuresBurst - bucket.tokens) {
            return Bucket(tokens: settings.failuresBurst, updated: now)
        }
        bucket.tokens += Int(earned)
        // Keep the part of an interval already waited for.
        bucket.updated = Instant(nanoseconds: bucket.updated.nanoseconds + earned * interval)
        return bucket
    }

    private mutating func forgetOldest() {
        guard let oldest = buckets.min(by: { $0.value.updated < $1.value.updated })?.key else { return }
        buckets[oldest] = nil
    }
}
