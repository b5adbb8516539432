import Cohort
import CohortConfiguration
import CohortCore
import CohortDaemon
import CohortSecurity
import CohortTransport
import Foundation
import Testing

/// Certificates for the TLS tests, written as PEM files into a folder.
private struct TestCertificates {
    let folder: URL
    var ca: String { path("ca.crt") }
    var otherCA: String { path("other-ca.crt") }
    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    init(in folder: URL) throws {
        self.folder = folder
        let authority = try CertificateAuthority(name: "Cohort test CA")
        let other = try CertificateAuthority(name: "Another CA")
        try write(try authority.certificatePEM, "ca.crt")
        try write(try other.certificatePEM, "other-ca.crt")
        try write(try authority.issue(commonName: "d1", hosts: ["127.0.0.1", "localhost"], client: false), "daemon")
        try write(try authority.issue(commonName: "alice", client: true), "alice")
        try write(try authority.issue(
            commonName: "alice", client: true, notValidBefore: Date() - 20 * 86_400, notValidAfter: Date() - 10 * 86_400), "expired")
        try write(try other.issue(commonName: "alice", client: true), "stranger")
    }

    private func write(_ text: String, _ name: String) throws {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    private func write(_ issued: CertificateAuthority.Issued, _ name: String) throws {
        try write(issued.certificatePEM, "\(name).crt")
        try write(issued.privateKeyPEM, "\(name).key")
    }

    /// Client TLS options trusting `roots`, presenting certificate `name` (if any).
    func client(trusting roots: String? = nil, presenting name: String?) -> TLSClientOptions {
        TLSClientOptions(trustRootsFile: roots ?? ca, certificateFile: name.map { path("\($0).crt") }, privateKeyFile: name.map { path("\($0).key") })
    }
}

@Suite("End to end: TLS for client links and method certificate", .timeLimit(.minutes(2)))
struct TLSEndToEndTests {
    /// Runs `body` with a daemon offering methods certificate and none on a TLS port (and TCP),
    /// asking for client certificates as `clientCertificates` says, with fresh certificates.
    fileprivate func withTLSDaemon(
        clientCertificates: String, _ body: (TestDaemon, DaemonAddress, TestCertificates) async throws -> Void
    ) async throws {
        let folder = try makeTemporaryFolder("cohort-tls")
        defer { try? FileManager.default.removeItem(at: folder) }
        let certificates = try TestCertificates(in: folder)
        try await withDaemon(configure: { settings in
            settings.authMethods = ["certificate", "none"]
            settings.tlsClientPort = 0
            settings.tls = DaemonConfiguration.TLS(
                certificateFile: certificates.path("daemon.crt"), privateKeyFile: certificates.path("daemon.key"),
                clientCAFile: certificates.ca, clientCertificates: clientCertificates)
        }) { daemon in
            let tlsAddress = try #require(daemon.server.clientAddresses.first { $0.hasPrefix("tls:") })
            try await body(daemon, try DaemonAddress(parsing: String(tlsAddress.dropFirst(4))), certificates)
        }
    }

    @Test("a verified client certificate names the principal; expired, foreign and missing certificates and an untrusted daemon fail before any session")
    func certificates() async throws {
        try await withTLSDaemon(clientCertificates: "optional") { daemon, address, certificates in
            func options(_ name: String, _ credentials: Credentials, _ tls: TLSClientOptions?) -> ConnectionOptions {
                var options = ConnectionOptions(name: name)
                options.credentials = credentials
                options.tls = tls
                return options
            }
            // The certificate names the principal.
            try await CohortClient.withConnection(to: address, options: options("a", .certificate, certificates.client(presenting: "alice"))) { connection in
                #expect(connection.principal == Principal("alice"))
            }
            // Each failure is a typed client error, and no session is made.
            for (what, tls, expected) in [
                ("an expired client certificate", certificates.client(presenting: "expired"), "it has expired"),
                ("a client certificate of another CA", certificates.client(presenting: "stranger"), "not from a CA the daemon trusts"),
                ("a daemon whose CA the client does not trust", certificates.client(trusting: certificates.otherCA, presenting: "alice"),
                 "the daemon's certificate did not verify"),
            ] {
                do {
                    try await CohortClient.withConnection(to: address, options: options("x", .certificate, tls)) { _ in }
                    Issue.record("\(what): connected")
                } catch let error as CohortError {
                    guard case .tlsFailed(let reason) = error else { Issue.record("\(what): \(error)"); continue }
                    #expect(reason.contains(expected), "\(what): \(reason)")
                } catch {
                    Issue.record("\(what): \(error)")
                }
            }
            // TLS without a client certificate: method certificate refuses, method none works.
            await #expect(throws: CohortError.rejected(.authFailed, reason: "method certificate needs a TLS connection with a verified client certificate")) {
                try await CohortClient.withConnection(to: address, options: options("y", .certificate, certificates.client(presenting: nil))) { _ in }
            }
            try await CohortClient.withConnection(to: address, options: options("z", .none, certificates.client(presenting: nil))) { connection in
                #expect(connection.principal == .anonymous)
            }
            // Method certificate over plain TCP is refused.
            await #expect(throws: CohortError.rejected(.authFailed, reason: "method certificate needs a TLS connection with a verified client certificate")) {
                try await CohortClient.withConnection(to: daemon.tcp, options: options("w", .certificate, nil)) { _ in }
            }
            let status = try await CohortClient.status(of: daemon.tcp)
            #expect(status.clients.filter { !$0.name.hasPrefix("status-") }.isEmpty, "no failed attempt left a session")
        }
    }

    @Test("a daemon that requires client certificates refuses a client without one and accepts one with it")
    func required() async throws {
        try await withTLSDaemon(clientCertificates: "required") { daemon, address, certificates in
            var options = ConnectionOptions(name: "n")
            options.tls = certificates.client(presenting: nil)
            do {
                try await CohortClient.withConnection(to: address, options: options) { _ in }
                Issue.record("connected without a certificate")
            } catch let error as CohortError {
                guard case .tlsFailed(let reason) = error else { Issue.record("\(error)"); return }
                #expect(reason.contains("requires a client certificate") || reason.contains("refused"), "\(reason)")
            }
            options.tls = certificates.client(presenting: "alice")
            options.credentials = .certificate
            try await CohortClient.withConnection(to: address, options: options) { connection in
                #expect(connection.principal == Principal("alice"))
            }
        }
    }
}
