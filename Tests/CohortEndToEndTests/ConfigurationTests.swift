import CohortConfiguration
import CohortCore
import CohortDaemon
import CohortSecurity
import Foundation
import Logging
import Metrics
import Prometheus
import Testing

@Suite("Daemon configuration")
struct ConfigurationTests {
    @Test("a full file parses, and the entry named by --name is resolved")
    func fullFile() throws {
        let yaml = """
            daemons:
              - name: d1
                clientPort: 4803
                daemonPort: 4804
                socketPath: /tmp/d1.sock
              - name: d2
                host: 127.0.0.2
                clientPort: 4805
                daemonPort: 4806
            architecture: plain
            authMethods: [none]
            clientQueueBytesMax: 1048576
            slowClientTimeoutSeconds: 2.5
            handshakeTimeoutSeconds: 3
            clientsMax: 50
            metricsPort: 9100
            logLevel: debug
            limits:
              payloadBytesMax: 2048
              groupsPerClientMax: 7
            membership:
              tokenLossMilliseconds: 500
              packetBytesMax: 8192
            """
        let configuration = try DaemonConfiguration.parse(yaml: yaml)
        #expect(configuration.daemons.map(\.name) == ["d1", "d2"])
        #expect(configuration.daemons[1].host == "127.0.0.2")
        #expect(configuration.limits.payloadBytesMax == 2048)
        #expect(configuration.limits.groupNameBytesMax == 32, "unset limits keep their defaults")
        let settings = try DaemonSettings(configuration: configuration, name: "d2")
        #expect(settings.clientHost == "127.0.0.2")
        #expect(settings.clientPort == 4805)
        #expect(settings.socketPath == nil)
        #expect(settings.clientQueueBytesMax == 1_048_576)
        #expect(settings.slowClientTimeout == .milliseconds(2500))
        #expect(settings.handshakeTimeout == .seconds(3))
        #expect(settings.clientsMax == 50)
        #expect(settings.limits.groupsPerClientMax == 7)
        #expect(settings.peers == [PeerEndpoint(name: "d1", host: "127.0.0.1", port: 4804)])
        #expect(settings.daemonEndpoint == PeerEndpoint(name: "d2", host: "127.0.0.2", port: 4806))
        #expect(settings.membership.tokenLossMilliseconds == 500)
        #expect(settings.membership.joinMilliseconds == DaemonConfiguration.Membership().joinMilliseconds, "unset keys keep their defaults")
        let ring = try settings.membership.ringSettings(for: DaemonID(name: "d2", incarnation: 1))
        #expect(ring.tokenLossTimeout == .milliseconds(500) && ring.packetBytesMax == 8192)
    }

    @Test("a minimal file takes every default")
    func minimal() throws {
        let configuration = try DaemonConfiguration.parse(yaml: "daemons:\n  - name: solo\n    clientPort: 5000\n")
        #expect(configuration == {
            var expected = DaemonConfiguration(daemons: [.init(name: "solo", clientPort: 5000)])
            expected.architecture = "plain"
            return expected
        }())
    }

    @Test("the file cohort cluster writes parses back to the same configuration")
    func roundTrip() throws {
        var configuration = DaemonConfiguration(daemons: [
            .init(name: "d1", daemonPort: 4804, clientPort: 4803, socketPath: "/tmp/x.sock"),
            .init(name: "d2", host: "127.0.0.1", daemonPort: 4806, clientPort: 4805),
        ])
        configuration.logLevel = "notice"
        configuration.metricsPort = 9999
        #expect(try DaemonConfiguration.parse(yaml: configuration.yaml()) == configuration)
    }

    @Test("invalid files are refused with a reason", arguments: [
        ("daemons: []\narchitecture: [", "cannot parse"),
        ("architecture: plain\n", "cannot parse"),
        ("daemons:\n  - name: d1\n    clientPort: 1\n  - name: d1\n    clientPort: 2\n", "listed twice"),
        ("daemons:\n  - name: 'bad name'\n    clientPort: 1\n", "invalid daemon name"),
        ("daemons:\n  - name: d1\n", "neither a client port nor a socket path"),
        ("daemons:\n  - name: d1\n    clientPort: 99999\n", "out of range"),
        ("daemons:\n  - name: d1\n    clientPort: 1\nclientQueueBytesMax: 10\n", "clientQueueBytesMax"),
        ("daemons:\n  - name: d1\n    clientPort: 1\nslowClientTimeoutSeconds: 0\n", "slowClientTimeoutSeconds"),
        ("daemons:\n  - name: d1\n    clientPort: 1\nlimits:\n  groupNameBytesMax: 300\n", "limits"),
        ("daemons:\n  - name: d1\n    clientPort: 1\n  - name: d2\n    clientPort: 2\n", "needs a daemonPort"),
        ("daemons:\n  - name: d1\n    clientPort: 1\nmembership:\n  tokenLossMilliseconds: 0\n", "tokenLossMilliseconds"),
        ("daemons:\n  - name: d1\n    clientPort: 1\nmembership:\n  tokenHoldMilliseconds: 900\n", "token hold"),
        ("daemons:\n  - name: d1\n    clientPort: 1\nmembership:\n  linkIdleMilliseconds: 150\n", "linkIdleMilliseconds"),
        ("daemons:\n  - name: d1\n    clientPort: 1\nmembership:\n  packetBytesMax: 10\n", "packetBytesMax"),
        ("daemons:\n  - name: d1\n    clientPort: 1\n    daemonPort: 2\n    publicKey: \(String(repeating: "A", count: 43))=\n  - name: d2\n    clientPort: 3\n    daemonPort: 4\n",
         "d2 have no publicKey"),
        ("daemons:\n  - name: d1\n    clientPort: 1\n    publicKey: c2hvcnQ=\n", "not the base64 of 32 bytes"),
        ("daemons:\n  - name: d1\n    clientPort: 1\n    tlsClientPort: 2\n", "no tls section"),
        ("daemons:\n  - name: d1\n    clientPort: 1\ntls:\n  certificateFile: c\n  privateKeyFile: k\n  clientCertificates: maybe\n", "none, optional or required"),
        ("daemons:\n  - name: d1\n    clientPort: 1\ntls:\n  certificateFile: c\n  privateKeyFile: k\n  clientCertificates: required\n", "needs tls.clientCAFile"),
        ("daemons:\n  - name: d1\n    clientPort: 1\ntls:\n  certificateFile: c\n  privateKeyFile: k\n", "needs tls.clientCAFile"),
    ])
    func invalid(yaml: String, reason: String) {
        do {
            _ = try DaemonConfiguration.parse(yaml: yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.description.contains(reason), "\(error.description)")
        }
    }

    @Test("an unknown architecture or daemon name is refused when resolving settings")
    func resolveErrors() throws {
        var configuration = try DaemonConfiguration.parse(yaml: "daemons:\n  - name: d1\n    clientPort: 1\n")
        #expect(throws: ConfigurationError.self) { try DaemonSettings(configuration: configuration, name: "d2") }
        configuration.architecture = "layered"
        let available = Architecture.registered.map(\.name).joined(separator: ", ")
        #expect(throws: ConfigurationError.invalid("unknown architecture 'layered'; available: \(available)")) {
            try DaemonSettings(configuration: configuration, name: "d1")
        }
    }
}

@Suite("Metrics endpoint")
struct MetricsEndpointTests {
    @Test("serves the Prometheus text format at /metrics and 404 elsewhere")
    func serves() async throws {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "cohort_test", unitName: "total", helpText: "a test counter")).increment(by: Int64(3))
        var logger = Logger(label: "test.metrics")
        logger.logLevel = .warning
        let endpoint = try await MetricsEndpoint.start(registry: registry, host: "127.0.0.1", port: 0, logger: logger)
        defer { Task { await endpoint.shutdown() } }
        let page = try httpGet(port: endpoint.port, path: "/metrics")
        #expect(page.hasPrefix("HTTP/1.1 200"))
        #expect(page.contains("cohort_test_total 3"))
        let missing = try httpGet(port: endpoint.port, path: "/other")
        #expect(missing.hasPrefix("HTTP/1.1 404"))
    }

    private func httpGet(port: Int, path: String) throws -> String {
        let client = try RawClient(port: port)
        client.send(Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8))
        return client.readText()
    }
}
