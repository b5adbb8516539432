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

    /// The last scalar loaded and its public point: swift-crypto computes g^x whenever it loads
    /// a scalar, so a tree protocol's g^K right after (b)^K costs nothing more.
    private var lastScalar: [UInt8] = []
    private var lastPublic: GroupElement?

    /// The group.
    public init() {}

    public func power(_ base: GroupElement, _ exponent: Exponent) throws(CryptoError) -> GroupElement {
        guard base.bytes.count == 32, exponent.bytes.count == 32 else { throw .backendFailure("X25519 takes 32-byte points and scalars") }
        if base == generator, exponent.bytes == lastScalar, let lastPublic { return lastPublic }
        do {
            let secret = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: exponent.bytes)
            let publicPoint = GroupElement(bytes: Array(secret.publicKey.rawRepresentation))
            lastScalar = exponent.bytes
            lastPublic = publicPoint
            if base == generator { return publicPoint }
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

    /// Refuses the points of small order (and their non-canonical encodings; the top bit is
    /// ignored, RFC 7748 §5): with them every scalar gives a value an attacker knows.
    /// ``power(_:_:)`` refuses an all-zero result as well, so nothing weak ever becomes a key.
    public func validate(_ element: GroupElement) throws(CryptoError) {
        guard element.bytes.count == 32 else { throw .backendFailure("X25519 points are 32 bytes") }
        var masked = element.bytes
        masked[31] &= 0x7F
        guard !Self.smallOrder.contains(masked) else { throw .backendFailure("X25519: a point of small order") }
    }

    /// 0, 1, the two points of order 8, and p − 1, p, p + 1, little-endian.
    static let smallOrder: Set<[UInt8]> = {
        let ones = String(repeating: "ff", count: 30)
        return [
            [UInt8](repeating: 0, count: 32),
            [1] + [UInt8](repeating: 0, count: 31),
            hexBytes("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            hexBytes("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
            hexBytes("ec" + ones + "7f"),
            hexBytes("ed" + ones + "7f"),
            hexBytes("ee" + ones + "7f"),
        ]
    }()

    public func exponent(from element: GroupElement) throws(CryptoError) -> Exponent {
        Exponent(bytes: try HKDF.sha256(inputKeyMaterial: element.bytes, info: Array("cohort/dh-exponent/x25519".utf8), outputBytes: 32))
    }
}

/// The bytes a hexadecimal string spells (even length, digits only: for constants).
func hexBytes(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}
