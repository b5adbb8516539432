import CohortCore
import Metrics

/// The daemon's metrics, through swift-metrics (names documented in `docs/metrics.md`).
/// With no metrics backend bootstrapped they cost nothing but a no-op call.
struct DaemonMetrics {
    let messagesReceived = Counter(label: "cohort_messages_received_total")
    let messageBytesReceived = Counter(label: "cohort_message_bytes_received_total")
    let messagesDelivered = Counter(label: "cohort_messages_delivered_total")
    let messageBytesDelivered = Counter(label: "cohort_message_bytes_delivered_total")
    let viewsDelivered = Counter(label: "cohort_views_delivered_total")
    let sessionsOpened = Counter(label: "cohort_sessions_opened_total")
    let sessions = Gauge(label: "cohort_sessions")
    let framesWritten = Counter(label: "cohort_frames_written_total")
    let flushes = Counter(label: "cohort_flushes_total")
    let intakePauses = Counter(label: "cohort_intake_pauses_total")

    func configurationInstalled(transitional: Bool) {
        Counter(label: "cohort_membership_changes_total", dimensions: [("kind", transitional ? "transitional" : "regular")]).increment()
    }

    func rejected(_ code: ErrorCode) {
        Counter(label: "cohort_rejected_total", dimensions: [("reason", code.metricLabel)]).increment()
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
