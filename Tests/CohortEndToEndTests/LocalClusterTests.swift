@testable import CohortCluster
import Foundation
import Testing

/// The harness every end-to-end test stands on: port ranges and a daemon that cannot start.
@Suite("Local cluster harness")
struct LocalClusterTests {
    @Test("port ranges handed out in one process never overlap, even before anything binds them")
    func portRangesAreDistinct() throws {
        // Nothing binds these ports, so only the allocator keeps them apart. Chosen at random,
        // 300 ranges of 1 to 6 ports among the ~22,000 below the ephemeral range would overlap
        // almost surely (a CI run of 2026-12-04 failed so: two clusters of one test run were
        // given port 10084, and one's daemons could not bind it).
        var taken = Set<Int>()
        for count in (0..<300).map({ 1 + $0 % 6 }) {
            let base = try LocalCluster.freePorts(count)
            let range = Set(base..<(base + count))
            let reused = taken.intersection(range).sorted()
            #expect(reused.isEmpty, "ports \(reused) handed out twice")
            taken.formUnion(range)
        }
    }

    @Test("a daemon that cannot bind its port makes start fail with the reason from its log")
    func portInUse() async throws {
        let port = try LocalCluster.freePorts(2)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        let bound = LocalCluster.withLoopbackAddress(port: port) { bind(fd, $0, $1) }
        // Bound, not listening: the daemon's bind fails all the same, and a client's connect is
        // refused at once instead of waiting in a backlog nobody accepts from.
        try #require(bound == 0)
        do {
            let cluster = try await LocalCluster.start(daemons: 1, basePort: port, daemonExecutable: ProcessTests.cohortd, readyTimeout: .seconds(20))
            await cluster.stop()
            Issue.record("a daemon started on a port that is in use")
        } catch let error as ClusterError {
            #expect(error.description.contains("daemon d1 exited") && error.description.contains("Address already in use"), "\(error)")
        }
    }
}
