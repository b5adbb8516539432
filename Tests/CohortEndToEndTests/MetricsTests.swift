import Cohort
import CohortCluster
import CohortCore
import Foundation
import Testing

/// The metrics vocabulary of `docs/metrics.md`, read from real daemons' Prometheus endpoints.
@Suite("Metrics of real daemons", .serialized, .timeLimit(.minutes(2)))
struct MetricsTests {
    @Test("messages per service, membership and view change durations, queue depths")
    func vocabulary() async throws {
        let cluster = try await LocalCluster.start(
            daemons: 2, basePort: try LocalCluster.freePorts(4), daemonExecutable: ProcessTests.cohortd,
            metricsBasePort: try LocalCluster.freePorts(2))
        defer { Task { await cluster.stop() } }
        try await CohortClient.withConnection(to: cluster.members[1].address, options: ConnectionOptions(name: "listener")) { listener in
            var events = listener.events.makeAsyncIterator()
            try await listener.join("metrics")
            try await CohortClient.withConnection(to: cluster.members[0].address, options: ConnectionOptions(name: "sender")) { sender in
                // The listener's join is ordered before these, so it receives all of them.
                while let event = try await events.next() {
                    if case .view(let view) = event, view.members.contains(listener.member) { break }
                }
                for index in 0..<10 { try await sender.multicast(Array(repeating: UInt8(index), count: 100), to: ["metrics"], service: .agreed) }
                for index in 0..<4 { try await sender.multicast(Array(repeating: UInt8(index), count: 50), to: ["metrics"], service: .fifo) }
                var received = 0
                while received < 14, let event = try await events.next() {
                    if case .message = event { received += 1 }
                }
                #expect(received == 14)
            }
        }
        // Counters are published at each flush to clients and at least once a second, gauges once a second.
        try await Task.sleep(for: .milliseconds(1200))
        let d1 = try await cluster.metrics(of: "d1")
        let d2 = try await cluster.metrics(of: "d2")
        #expect(d1.value("cohort_messages_received_total", #"service="agreed""#) == 10, "\(d1)")
        #expect(d1.value("cohort_message_bytes_received_total", #"service="agreed""#) == 1000)
        #expect(d1.value("cohort_messages_received_total", #"service="fifo""#) == 4)
        #expect(d2.value("cohort_messages_delivered_total", #"service="agreed""#) == 10, "\(d2)")
        #expect(d2.value("cohort_message_bytes_delivered_total", #"service="fifo""#) == 200)
        #expect(d2.value("cohort_messages_received_total", #"service="agreed""#) == 0)
        for page in [d1, d2] {
            // Forming the first configuration is a membership change; the listener's join a
            // view change on d2.
            #expect((page.value("cohort_membership_change_duration_seconds_count") ?? 0) >= 1)
            #expect((page.value("cohort_membership_changes_total", #"kind="regular""#) ?? 0) >= 1)
            #expect(page.value("cohort_ring_pending_items") == 0)
            #expect(page.value("cohort_peer_links_backlogged") == 0)
            #expect(page.value("cohort_clients_backlogged") != nil)
        }
        #expect(d2.value("cohort_group_view_change_duration_seconds_count") == 1, "\(d2)")
        #expect(d1.value("cohort_group_view_change_duration_seconds_count") == 0)
    }
}
