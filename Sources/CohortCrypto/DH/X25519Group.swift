import COpenSSL

/// X25519 (RFC 7748) as a DH group through OpenSSL: "exponentiation" is the X25519 function,
/// scalar multiplication of a Montgomery u-coordinate. It commutes, which is all two-party DH
/// chains need (CKD, STR, TGDH); it has no element products, so BD and GDH need a MODP group.
public final class X25519Group: DHGroup {
    public let name = "x25519"
    public let elementBytes = 32
    /// u = 9, little-endian.
    public let generator = GroupElement(bytes: [9] + [UInt8](repeating: 0, count: 31))

    /// The group.
    public init() {}

    public func power(_ base: GroupElement, _ exponent: Exponent) throws(CryptoError) -> GroupElement {
        guard base.bytes.count == 32, exponent.bytes.count == 32 else { throw .backendFailure("X25519 takes 32-byte points and scalars") }
        guard let secret = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nil, exponent.bytes, 32) else {
            throw OpenSSL.lastError("X25519 scalar")
        }
        defer { EVP_PKEY_free(secret) }
        var output = [UInt8](repeating: 0, count: 32)
        var length = 32
        if base == generator {
            guard EVP_PKEY_get_raw_public_key(secret, &output, &length) == 1 else { throw OpenSSL.lastError("X25519 public key") }
            return GroupElement(bytes: output)
        }
        guard let peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nil, base.bytes, 32) else {
            throw OpenSSL.lastError("X25519 point")
        }
        defer { EVP_PKEY_free(peer) }
        guard let context = EVP_PKEY_CTX_new(secret, nil) else { throw OpenSSL.lastError("X25519 context") }
        defer { EVP_PKEY_CTX_free(context) }
        // OpenSSL refuses an all-zero result (a low-order point): a typed error, not a weak key.
        guard EVP_PKEY_derive_init(context) == 1, EVP_PKEY_derive_set_peer(context, peer) == 1,
              EVP_PKEY_derive(context, &output, &length) == 1, length == 32
        else { throw OpenSSL.lastError("X25519") }
        return GroupElement(bytes: output)
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
