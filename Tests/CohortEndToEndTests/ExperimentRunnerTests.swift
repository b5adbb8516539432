import Foundation
import Testing

/// `cohort-experiments` as a user runs it: small versions of each experiment write their CSV and
/// their entry in meta.json.
@Suite("Experiment runner", .serialized, .timeLimit(.minutes(3)))
struct ExperimentRunnerTests {
    static var runner: URL { ProcessTests.products.appendingPathComponent("cohort-experiments") }

    static func results() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("cohort-results-\(UUID().uuidString)")
    }

    static func meta(_ folder: URL) throws -> [String: Any] {
        let data = try Data(contentsOf: folder.appendingPathComponent("meta.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    // Small runs: the test suite loads the machine, and a daemon starved past the token-loss
    // timeout would start a membership change in the middle of a run.
    @Test("throughput writes one row per size and run, its meta.json and the daemons' counts")
    func throughput() async throws {
        let results = Self.results()
        defer { try? FileManager.default.removeItem(at: results) }
        let run = try await ProcessTests.run(Self.runner, [
            "throughput", "--quick", "--no-build", "--daemons", "2", "--sizes", "200,4096", "--messages", "3000",
            "--architectures", "plain", "--results", results.path, "--name", "t",
        ], timeout: .seconds(150))
        #expect(run.status == 0, "\(run.output)\(run.errors)")
        let csv = try String(contentsOf: results.appendingPathComponent("throughput/t.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n")
        #expect(rows.first?.hasPrefix("architecture,clients,mode,size,run,messages,") == true)
        #expect(rows.count == 3, "\(csv)")
        #expect(rows.dropFirst().allSatisfy { $0.hasPrefix("plain,evs-repeat,self-paced,") })
        let entry = try #require((try Self.meta(results.appendingPathComponent("throughput"))["runs"] as? [String: Any])?["t"] as? [String: Any])
        #expect((entry["parameters"] as? [String: Any])?["daemons"] as? Int == 2)
        #expect(entry["revision"] is String)
        // The listener's daemon delivered every message the sender's daemon received.
        let counts = try #require(((entry["summary"] as? [String: Any])?["daemon_metrics"] as? [String: Any])?["plain"] as? [String: Any])
        let d1 = try #require(counts["d1"] as? [String: Any])
        let d2 = try #require(counts["d2"] as? [String: Any])
        let received = try #require(d1["messages_received_agreed"] as? Double)
        #expect(received == 2 * 3000)
        #expect(d2["messages_delivered_agreed"] as? Double == received)
    }

    @Test("throughput measures an architecture that seals over the Unix socket, its clients with VS and every message sealed")
    func sealedThroughput() async throws {
        let results = Self.results()
        defer { try? FileManager.default.removeItem(at: results) }
        let run = try await ProcessTests.run(Self.runner, [
            "throughput", "--quick", "--no-build", "--daemons", "2", "--sizes", "200", "--messages", "2000",
            "--architectures", "integrated-vs", "--modes", "self-paced,write-only", "--results", results.path, "--name", "s",
        ], timeout: .seconds(150))
        #expect(run.status == 0, "\(run.output)\(run.errors)")
        let csv = try String(contentsOf: results.appendingPathComponent("throughput/s.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n")
        // Write-only is skipped: its sender is no member and holds no key.
        #expect(rows.count == 2, "\(csv)")
        #expect(rows.dropFirst().allSatisfy { $0.hasPrefix("integrated-vs,vs-prepare-each,self-paced,200,") })
        let entry = try #require((try Self.meta(results.appendingPathComponent("throughput"))["runs"] as? [String: Any])?["s"] as? [String: Any])
        #expect((entry["parameters"] as? [String: Any])?["transport"] as? String == "unix")
        let counts = try #require(((entry["summary"] as? [String: Any])?["daemon_metrics"] as? [String: Any])?["integrated-vs"] as? [String: Any])
        // d2 delivered every message to its listener (and the flush layer's few besides).
        let d2 = try #require(counts["d2"] as? [String: Any])
        #expect((d2["messages_delivered_agreed"] as? Double ?? 0) >= 2000)
    }

    @Test("an architecture that seals is refused over plain TCP before anything runs")
    func sealedOverTCP() async throws {
        let run = try await ProcessTests.run(Self.runner, ["throughput", "--architectures", "integrated-vs", "--transport", "tcp", "--no-build"])
        #expect(run.status != 0)
        #expect(run.errors.contains("--transport unix"))
    }

    @Test("rekey times every group's new view after a partition and a merge, per architecture")
    func rekey() async throws {
        let results = Self.results()
        defer { try? FileManager.default.removeItem(at: results) }
        let run = try await ProcessTests.run(Self.runner, [
            "rekey", "--quick", "--no-build", "--daemons", "2", "--groups", "3", "--members", "4",
            "--architectures", "plain,integrated-vs", "--results", results.path, "--name", "r",
        ], timeout: .seconds(150))
        #expect(run.status == 0, "\(run.output)\(run.errors)")
        let csv = try String(contentsOf: results.appendingPathComponent("rekey/r.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        #expect(rows.count == 5, "\(csv)")
        let header = rows[0]
        let column = { (name: String) in header.firstIndex(of: name)! }
        #expect(Set(rows.dropFirst().map { "\($0[column("architecture")])/\($0[column("event")])" })
                == ["plain/partition", "plain/merge", "integrated-vs/partition", "integrated-vs/merge"])
        for row in rows.dropFirst() {
            #expect(row[column("groups")] == "3" && row[column("members")] == "4")
            #expect((Double(row[column("views_ms")]) ?? 0) > 0 && (Double(row[column("membership_ms")]) ?? 0) > 0)
        }
    }

    @Test("latency writes percentiles per receiver")
    func latency() async throws {
        let results = Self.results()
        defer { try? FileManager.default.removeItem(at: results) }
        let run = try await ProcessTests.run(Self.runner, [
            "latency", "--quick", "--no-build", "--daemons", "2", "--rates", "500", "--seconds", "1", "--results", results.path, "--name", "l",
        ], timeout: .seconds(120))
        #expect(run.status == 0, "\(run.output)\(run.errors)")
        let csv = try String(contentsOf: results.appendingPathComponent("latency/l.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        // One row per architecture (plain and integrated-vs, whose sender is a member).
        #expect(rows.count == 3, "\(csv)")
        let header = rows[0]
        #expect(Set(rows.dropFirst().map { $0[header.firstIndex(of: "architecture")!] }) == ["plain", "integrated-vs"])
        for row in rows.dropFirst() {
            let field = { (name: String) in Double(row[header.firstIndex(of: name)!]) ?? -1 }
            #expect(row[header.firstIndex(of: "receiver")!] == "d2")
            #expect(field("messages") == 500)
            #expect(field("p50_us") > 0 && field("p50_us") <= field("p99_us") && field("p99_us") <= field("max_us"))
        }
    }

    @Test("a bad option is refused before anything runs")
    func badOption() async throws {
        let run = try await ProcessTests.run(Self.runner, ["throughput", "--sizes", "0,x", "--no-build"])
        #expect(run.status != 0)
        #expect(run.errors.contains("--sizes"))
    }
}
