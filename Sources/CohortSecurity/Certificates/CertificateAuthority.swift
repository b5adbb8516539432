import Crypto
public import Foundation
import SwiftASN1
public import X509

/// A small certificate authority for TLS between clients and daemons: makes a CA, daemon
/// (server) certificates and client certificates, as PEM. `cohort certs` uses it to set up a test
/// or lab deployment, and the tests use it for certificates that are expired or from another CA.
/// ECDSA P-256 keys, SHA-256 signatures (swift-certificates, swift-crypto). For production, use
/// your organisation's CA: Cohort only needs PEM files.
public struct CertificateAuthority {
    /// The CA certificate.
    public let certificate: Certificate
    private let key: P256.Signing.PrivateKey

    /// A new self-signed CA named `name`, valid from an hour ago for `days`.
    public init(name: String, days: Int = 365, now: Date = Date()) throws {
        key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(name) }
        certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + Double(days) * 86_400,
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(key))
    }

    /// The CA certificate in PEM.
    public var certificatePEM: String {
        get throws { try certificate.serializeAsPEM().pemString }
    }

    /// An issued certificate and its private key, in PEM.
    public struct Issued: Sendable {
        /// The certificate.
        public var certificatePEM: String
        /// Its private key (PKCS#8).
        public var privateKeyPEM: String
    }

    /// A certificate for `commonName`, for a daemon (server authentication, with `hosts` as
    /// subject alternative names: DNS names or IP addresses) or a client (client authentication;
    /// the common name becomes the client's principal). `notValidBefore`/`notValidAfter` default
    /// to an hour ago and `days` from now (tests pass past dates for an expired certificate).
    public func issue(
        commonName: String, hosts: [String] = [], client: Bool, days: Int = 365,
        notValidBefore: Date? = nil, notValidAfter: Date? = nil, now: Date = Date()
    ) throws -> Issued {
        let leafKey = P256.Signing.PrivateKey()
        let names: [GeneralName] = hosts.map { host in
            if let address = IPv4Address(host) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address.bytes))) }
            return .dnsName(host)
        }
        let leaf = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(leafKey.publicKey),
            notValidBefore: notValidBefore ?? now - 3600, notValidAfter: notValidAfter ?? now + Double(days) * 86_400,
            issuer: certificate.subject, subject: try DistinguishedName { CommonName(commonName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([client ? .clientAuth : .serverAuth])
                if !names.isEmpty { SubjectAlternativeNames(names) }
            },
            issuerPrivateKey: .init(key))
        return Issued(certificatePEM: try leaf.serializeAsPEM().pemString, privateKeyPEM: leafKey.pemRepresentation)
    }
}

/// A dotted IPv4 address.
private struct IPv4Address {
    let bytes: [UInt8]
    init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        self.bytes = bytes
    }
}

/// The principal a verified client certificate names: its subject's common name, else its first
/// e-mail or DNS subject alternative name; `nil` for a certificate that names none.
public func certificatePrincipal(derEncoded bytes: [UInt8]) -> String? {
    guard let certificate = try? Certificate(derEncoded: bytes) else { return nil }
    for relativeName in certificate.subject {
        for attribute in relativeName where attribute.type == .RDNAttributeType.commonName {
            let name = attribute.value.description
            if !name.isEmpty { return name }
        }
    }
    guard let alternatives = try? certificate.extensions.subjectAlternativeNames else { return nil }
    for name in alternatives {
        switch name {
        case .rfc822Name(let mail): return mail
        case .dnsName(let host): return host
        default: continue
        }
    }
    return nil
}
