public import CohortCore

/// Method `certificate`: a client on a TLS client port whose certificate the daemon verified
/// against its `tls.clientCAFile` during the TLS handshake is the principal the certificate names
/// (subject common name, else its first e-mail or DNS alternative name). Nothing travels in the
/// Cohort handshake: NIOSSL has already checked the chain, the validity dates and the key
/// possession (CertificateVerify); an expired, untrusted or wrong-CA certificate never gets a
/// session (the TLS handshake fails first, and the client library reports the TLS alert).
public struct CertificateAuthentication: AuthenticationMethod {
    public static let name = "certificate"
    public var name: String { Self.name }
    public init() {}

    public func start(_ firstMessage: [UInt8], origin: ClientOrigin) -> AuthenticationStep {
        guard firstMessage.isEmpty else {
            return .refused(AuthenticationRefusal(.authMalformed, reason: "method certificate takes no authentication data", label: "malformed"))
        }
        guard let principal = origin.certificatePrincipal else {
            return .refused(AuthenticationRefusal(
                .authFailed, reason: "method certificate needs a TLS connection with a verified client certificate",
                label: "no_certificate", detail: "client at \(origin.address) presented no verified certificate"))
        }
        return .accepted(Principal(principal), finalData: [])
    }
}
