import Crypto
import Foundation

/// X25519 (RFC 7748) as a DH group, through swift-crypto: "exponentiation" is the X25519
/// function, scalar multiplication of a Montgomery u-coordinate. It commutes, which is all
/// two-party DH chains need (CKD, STR, TGDH); it has no element products, so BD and GDH need a
/// MODP group. (OpenSSL's EVP computes a public key whenever a raw private key is loaded, which
/// doubles the cost of every derive; swift-crypto does one scalar multiplication per derive.)
public final class X25519Group: DHGroup {
    public let name = "x25519"
    public let elementBytes = 32
    /// u = 9, little-endian.
    public let generator = GroupElement(bytes: [9] + [UInt8](repeating: 0, count: 31))

    /// The group.
    public init() {}

    public func power(_ base: GroupElement, _ exponent: Exponent) throws(CryptoError) -> GroupElement {
        guard base.bytes.count == 32, exponent.bytes.count == 32 else { throw .backendFailure("X25519 takes 32-byte points and scalars") }
        do {
            let secret = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: exponent.bytes)
            if base == generator {
                return GroupElement(bytes: Array(secret.publicKey.rawRepresentation))
            }
            let peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: base.bytes)
            let shared = try secret.sharedSecretFromKeyAgreement(with: peer).withUnsafeBytes { Array($0) }
            // An all-zero result means a low-order point (RFC 7748 §6.1): refused, not a weak key.
            guard shared.contains(where: { $0 != 0 }) else { throw CryptoError.backendFailure("X25519: low-order point") }
            return GroupElement(bytes: shared)
        } catch let error as CryptoError {
            throw error
        } catch {
            throw .backendFailure("X25519: \(error)")
        }
    }

    public func randomExponent(using random: inout some RandomNumberGenerator) -> Exponent {
        Exponent(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })
    }

    public func validate(_ element: GroupElement) throws(CryptoError) {
        guard element.bytes.count == 32 else { throw .backendFailure("X25519 points are 32 bytes") }
        // A low-order point sends every scalar to zero; any fixed scalar reveals it.
        _ = try power(element, Exponent(bytes: [UInt8](repeating: 0x5A, count: 32)))
    }

    public func exponent(from element: GroupElement) throws(CryptoError) -> Exponent {
        Exponent(bytes: try HKDF.sha256(inputKeyMaterial: element.bytes, info: Array("cohort/dh-exponent/x25519".utf8), outputBytes: 32))
    }
}
