import CohortCore
import Metrics

/// The daemon's metrics, through swift-metrics (the vocabulary is `docs/metrics.md`). With no
/// metrics backend bootstrapped they cost nothing but a no-op call.
struct DaemonMetrics {
    /// Per service level (index: `ServiceLevel.rawValue - 1`).
    let messagesReceived = Self.perService("cohort_messages_received_total")
    let messageBytesReceived = Self.perService("cohort_message_bytes_received_total")
    let messagesDelivered = Self.perService("cohort_messages_delivered_total")
    let messageBytesDelivered = Self.perService("cohort_message_bytes_delivered_total")
    let viewsDelivered = Counter(label: "cohort_views_delivered_total")
    /// Per view (one per group at every configuration change): made once, not per report.
    let groupRekeys = Counter(label: "cohort_group_rekeys_total")
    let viewsWithoutKey = Counter(label: "cohort_views_without_key_total")
    let sessionsOpened = Counter(label: "cohort_sessions_opened_total")
    let sessions = Gauge(label: "cohort_sessions")
    let framesWritten = Counter(label: "cohort_frames_written_total")
    let flushes = Counter(label: "cohort_flushes_total")
    let intakePauses = Counter(label: "cohort_intake_pauses_total")
    /// From leaving the operational state (or starting) to installing the next regular
    /// configuration.
    let membershipChangeDuration = Timer(label: "cohort_membership_change_duration_seconds", preferredDisplayUnit: .seconds)
    /// From a local client's join or leave to the view that shows it, delivered to that client.
    let groupViewChangeDuration = Timer(label: "cohort_group_view_change_duration_seconds", preferredDisplayUnit: .seconds)
    /// Client operations waiting for the token.
    let ringPendingItems = Gauge(label: "cohort_ring_pending_items")
    /// Links to other daemons that are not writable (the peer reads too slowly; messages to it
    /// are dropped meanwhile and recovered by the ring's retransmissions).
    let peerLinksBacklogged = Gauge(label: "cohort_peer_links_backlogged")
    /// Clients whose connection is not writable (their socket buffers are full).
    let clientsBacklogged = Gauge(label: "cohort_clients_backlogged")

    func configurationInstalled(transitional: Bool) {
        Counter(label: "cohort_membership_changes_total", dimensions: [("kind", transitional ? "transitional" : "regular")]).increment()
    }

    func rejected(_ code: ErrorCode) {
        Counter(label: "cohort_rejected_total", dimensions: [("reason", code.metricLabel)]).increment()
    }

    /// A failed client authentication, by method and reason (`docs/metrics.md`).
    func authenticationFailed(method: String, reason: String) {
        Counter(label: "cohort_auth_failures_total", dimensions: [("method", method), ("reason", reason)]).increment()
    }

    /// An operation access control denied, by operation and what decided (`docs/metrics.md`).
    func accessDenied(operation: String, reason: String) {
        Counter(label: "cohort_denied_total", dimensions: [("operation", operation), ("reason", reason)]).increment()
    }

    /// What the security architecture reports, in the vocabulary every architecture shares
    /// (`docs/metrics.md`, "Security").
    func security(_ report: DaemonSecurityReport) {
        switch report {
        case .agreementStarted(let run, _):
            Counter(label: "cohort_daemon_key_agreements_total", dimensions: [("event", "started"), Self.cause(of: run)]).increment()
        case .agreementFinished(let run, _, let duration):
            Counter(label: "cohort_daemon_key_agreements_total", dimensions: [("event", "finished"), Self.cause(of: run)]).increment()
            let (seconds, attoseconds) = duration.components
            Timer(label: "cohort_daemon_key_agreement_duration_seconds", dimensions: [Self.cause(of: run)], preferredDisplayUnit: .seconds)
                .recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        case .agreementAbandoned(let run):
            Counter(label: "cohort_daemon_key_agreements_total", dimensions: [("event", "abandoned"), Self.cause(of: run)]).increment()
        case .messageRefused:
            Counter(label: "cohort_security_refused_total", dimensions: [("source", "daemon")]).increment()
        case .groupRekeyed:
            groupRekeys.increment()
        case .viewWithoutKey:
            viewsWithoutKey.increment()
        }
    }

    /// Why the daemons agree: a configuration install (run 0) or a refresh by policy.
    private static func cause(of run: GroupViewID) -> (String, String) {
        ("cause", run.sequence == 0 ? "configuration" : "refresh")
    }

    private static func perService(_ label: String) -> [Counter] {
        ServiceLevel.allCases.map { Counter(label: label, dimensions: [("service", $0.description)]) }
    }
}

extension ErrorCode {
    /// The code as a metric label value (snake case).
    var metricLabel: String { description.replacingOccurrences(of: " ", with: "_") }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
